"""Logging for the gateway's own loggers (uvicorn configures only its own).

`gateway.*` lines are JSON objects (time, level, logger, message) by default, or the text
FORMAT below with `text`. The access log (`gateway.access`) writes lines that are already
JSON, one per request, whatever the format; it logs at INFO even when GATEWAY_LOG_LEVEL is
higher, since GATEWAY_ACCESS_LOG is what turns it off.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER = "gateway.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line = {
            "time": when.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"))


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(FORMAT)
    logger = logging.getLogger("gateway")
    logger.setLevel(level.upper())
    _own_handler(logger, formatter)
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.INFO)
    _own_handler(access, logging.Formatter("%(message)s"), BatchedStreamHandler)


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines in batches: one write per `batch` lines or per flush() (the access log
    flushes every half second and at shutdown), instead of one system call per request."""

    def __init__(self, stream: Any = None, batch: int = 256) -> None:
        super().__init__(stream)
        self.batch = batch
        self._lines: list[str] = []

    def add_line(self, line: str) -> None:
        """A line already formatted, handed over without a LogRecord (the access log's path)."""
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(line)
            if len(self._lines) >= self.batch:
                self.flush()

    def add_lines(self, lines: list[str]) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._lines.extend(lines)
            if len(self._lines) >= self.batch:
                self.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.add_line(line)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._lines = self._lines, []
            if lines:
                self.stream.write("\n".join(lines) + "\n")
            super().flush()


def _own_handler(
    logger: logging.Logger,
    formatter: logging.Formatter,
    kind: type[logging.StreamHandler] = logging.StreamHandler,  # type: ignore[type-arg]
) -> None:
    handler = next((h for h in logger.handlers if getattr(h, "_gateway", False)), None)
    if handler is None:
        handler = kind(sys.stderr)
        handler._gateway = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    handler.setFormatter(formatter)
