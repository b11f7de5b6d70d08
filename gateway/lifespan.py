"""Runs a mounted ASGI app's lifespan (startup/shutdown) from inside the gateway's own."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.asgi import ASGIApp, Message

log = logging.getLogger("gateway.lifespan")


class LifespanError(RuntimeError):
    pass


class ChildLifespan:
    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.name = name
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._supported = True

    async def startup(self, state: dict[str, Any] | None) -> None:
        # the child writes into the same state dict the server copies into every request
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": state if state is not None else {},
        }
        self._task = asyncio.create_task(self._run(scope))
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._from_app.get()
        if message["type"] == "lifespan.startup.failed":
            raise LifespanError(f"{self.name} app failed to start: {message.get('message', '')}")

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._to_app.get, self._from_app.put)
        except Exception as exc:
            # an app without lifespan support raises on the lifespan scope; like uvicorn's
            # "auto" mode, treat that as "nothing to start", but say so
            if self._supported and self._from_app.empty():
                log.info("%s app does not support lifespan (%s); continuing", self.name, exc)
                self._supported = False
                await self._from_app.put({"type": "lifespan.startup.complete"})
                return
            raise

    async def shutdown(self, timeout: float) -> None:  # noqa: ASYNC109
        if self._task is None or not self._supported or self._task.done():
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        try:
            message = await asyncio.wait_for(self._from_app.get(), timeout)
            if message["type"] == "lifespan.shutdown.failed":
                log.error("%s app failed to shut down: %s", self.name, message.get("message", ""))
        except TimeoutError:
            log.error("%s app did not shut down within %g s", self.name, timeout)
            self._task.cancel()
