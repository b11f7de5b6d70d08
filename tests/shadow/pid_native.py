"""The demo's native app, telling which process ran each request (for GATEWAY_SHADOW_PROCESSES).

Every HTTP request appends this process's pid to the file SHADOW_PID_FILE names. With
FAIL_IN_SHADOW_PROCESS=1 its start-up fails in a shadow process (`python -m
gateway.shadow_worker`) and only there: the gateway itself starts as usual.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from features.main import create_app as create_native


def in_shadow_process() -> bool:
    main = sys.modules.get("__main__")
    return getattr(main, "__spec__", None) is not None and main.__spec__.name == "gateway.shadow_worker"  # type: ignore[union-attr]


class TellsPid:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and os.environ.get("FAIL_IN_SHADOW_PROCESS") == "1" and in_shadow_process():
            message = await receive()
            assert message["type"] == "lifespan.startup"
            await send({"type": "lifespan.startup.failed", "message": "no database in a shadow process"})
            return
        if scope["type"] == "http" and os.environ.get("SHADOW_PID_FILE"):
            with open(os.environ["SHADOW_PID_FILE"], "a") as f:  # noqa: ASYNC230 (one short append)
                f.write(f"{os.getpid()}\n")
        await self.app(scope, receive, send)


def create_app() -> TellsPid:
    return TellsPid(create_native())
