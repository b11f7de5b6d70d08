"""A shadow process: runs the candidate side of shadowed requests away from the serving process.

`python -m gateway.shadow_worker`, started by gateway/shadow_processes.py when
GATEWAY_SHADOW_PROCESSES is set. It lowers its own CPU priority (SCHED_IDLE, else nice 19,
as the map parser does), loads both apps by the import strings the gateway was given, runs
the native app's lifespan, then answers copies of requests until its stdin closes: the
serving process keeps only the hand-off (a pickle each way), the comparison and the record.

Frames on both pipes are a 4-byte big-endian length and a pickle. The gateway sends one
hello, `{"native_app", "legacy_app", "legacy_url", "remote_timeout", "remote_max_connections",
"legacy_threads", "sys_path"}`, and the worker answers `("ready", pid)` or `("failed", reason)`;
then requests `(id, side, scope, body, timeout_ms, max_body_bytes, start_within_s)` and, for
each, a reply `(id, "ok", Capture, ms)`, `(id, "error", reason, ms)` or `(id, "skipped",
reason, 0.0)`. A request this process could not start within `start_within_s` (the
serving processes had every core) is skipped, not run late: its answer would only be
compared against a stale owner answer, and late work is what the idle priority is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import struct
import sys
import time
from typing import Any

from gateway.asgi import ASGIApp
from gateway.bridge import LegacyBridge
from gateway.exchange import Side
from gateway.lifespan import ChildLifespan
from gateway.loading import load_app
from gateway.map_worker import lower_priority
from gateway.remote import RemoteLegacy
from gateway.shadow_io import run_copy

log = logging.getLogger("gateway.shadow")
HEADER = struct.Struct(">I")
STARTED_LATE = "worker_busy"


def frame(obj: object) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next object; EOFError when the other side closed its end."""
    try:
        size = HEADER.unpack(await reader.readexactly(HEADER.size))[0]
        data = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise EOFError from None
    return pickle.loads(data)


class Candidates:
    """The two apps as this process runs them, and one copy of a request through one of them."""

    def __init__(self, hello: dict[str, Any]) -> None:
        self.native: ASGIApp = load_app(hello["native_app"])
        self.legacy: LegacyBridge | RemoteLegacy
        if hello["legacy_url"]:
            self.legacy = RemoteLegacy(
                hello["legacy_url"],
                timeout=hello["remote_timeout"],
                max_connections=hello["remote_max_connections"],
            )
        else:
            wsgi = load_app(hello["legacy_app"])
            self.legacy = LegacyBridge(
                wsgi, threads=hello["legacy_threads"], acquire_timeout=1.0, abandonable=True
            )
        self.lifespan = ChildLifespan(self.native, "native")
        self.state: dict[str, Any] = {}

    async def run(self, request: tuple[Any, ...], received: float) -> tuple[Any, ...]:
        rid, side, scope, body, timeout_ms, max_body, start_within = request
        if time.monotonic() - received > start_within:
            return rid, "skipped", STARTED_LATE, 0.0
        app = self.native if side == Side.NEW.value else self.legacy
        if "state" not in scope:
            scope["state"] = dict(self.state)
        capture, ms, error = await run_copy(app, scope, body, timeout_ms, max_body)
        return (rid, "ok", capture, ms) if capture is not None else (rid, "error", error, ms)

    async def close(self) -> None:
        await self.lifespan.shutdown(5.0)
        with contextlib.suppress(Exception):
            if isinstance(self.legacy, LegacyBridge):
                await self.legacy.aclose(0)
            else:
                await self.legacy.aclose()


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    try:
        hello = await read_frame(reader)
    except EOFError:  # the gateway stopped before it said hello
        return 0
    sys.path[:] = hello["sys_path"]
    try:
        candidates = Candidates(hello)
        await candidates.lifespan.startup(candidates.state)
    except BaseException as exc:  # an import error, a failed lifespan: the gateway says so and retries
        writer.write(frame(("failed", f"{type(exc).__name__}: {exc}"[:500])))
        await writer.drain()
        return 1
    writer.write(frame(("ready", os.getpid())))
    await writer.drain()
    running: set[asyncio.Task[None]] = set()

    async def one(request: tuple[Any, ...], received: float) -> None:
        reply = await candidates.run(request, received)
        writer.write(frame(reply))
        await writer.drain()

    try:
        while True:
            try:
                request = await read_frame(reader)
            except EOFError:  # the gateway closed the pipe, or died
                break
            task = asyncio.create_task(one(request, time.monotonic()))
            running.add(task)
            task.add_done_callback(running.discard)
    finally:
        for task in list(running):
            task.cancel()
        await candidates.close()
    return 0


async def _main() -> int:
    loop = asyncio.get_running_loop()
    # the pipe to the gateway is this process's fd 1 as it started; from here on fd 1 is stderr,
    # so that nothing an app prints can reach the pipe
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    reader = asyncio.StreamReader(limit=2**31 - 1)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return await serve(reader, writer)


def main() -> int:
    lower_priority()
    # Ctrl-C reaches the whole process group; the gateway ends this process, by closing its pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="shadow worker %(process)d: %(levelname)s %(message)s")
    return asyncio.run(_main())


if __name__ == "__main__":
    raise SystemExit(main())
