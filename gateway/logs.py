"""Logging for the gateway's own loggers (uvicorn configures only its own)."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    logger = logging.getLogger("gateway")
    logger.setLevel(level.upper())
    if not any(getattr(h, "_gateway", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._gateway = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
