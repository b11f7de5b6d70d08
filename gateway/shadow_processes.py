"""Shadow copies run in processes of their own (GATEWAY_SHADOW_PROCESSES): the pool's side.

In-process, a candidate shares the serving loop and its core with client requests, and the
CPU budget (gateway/shadow_budget.py) can only ration it. Here each gateway process starts N
workers (`python -m gateway.shadow_worker`, at idle CPU priority) that load both apps by
import string; a queued shadow copy goes to the worker with the fewest copies in flight, and
what stays in the serving process is the hand-off, the comparison and the record. Copies the
kernel gives no CPU to (the serving processes are using every core) are skipped as
`worker_busy` rather than compared late; a worker that dies is restarted, with a backoff
while it keeps failing, and its copies in flight are skipped as `worker_exited`. Writes that
run their candidate inline, before the owner (`unsafe: rollback`), stay in-process: the
client's answer waits for them, so they must not wait for an idle-priority process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.asgi import REQUEST_ID_KEY, Scope
from gateway.exchange import Capture, Side
from gateway.shadow_io import SHADOW_SCOPE_KEY
from gateway.shadow_worker import STARTED_LATE, frame, read_frame

log = logging.getLogger("gateway.shadow")

# what a copy's scope carries to the worker: the request as the server described it; not the
# routing table's objects, nor the lifespan state (the worker's own native app has its own)
SCOPE_KEYS = (
    "type", "asgi", "http_version", "server", "client", "scheme", "method", "root_path", "path",
    "raw_path", "query_string", "headers", REQUEST_ID_KEY, SHADOW_SCOPE_KEY,
)  # fmt: skip
START_WITHIN_S = 1.0  # a copy not started this long after it reached the worker is skipped
READY_TIMEOUT_S = 120.0  # importing a large app and running its lifespan
RESTART_S = (1.0, 30.0)  # first and longest wait before starting a worker that exited again
HERE = str(Path(__file__).resolve().parents[1])  # the gateway package this process runs


class NoWorker(Exception):
    """No worker could take the copy: the reason is the skip's."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Reply:
    kind: str  # "ok", "error" or "skipped"
    capture: Capture | None
    reason: str | None
    ms: float


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    pid: int | None = None
    ready: bool = False
    waiting: dict[int, asyncio.Future[Reply]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None


class ShadowProcesses:
    def __init__(
        self,
        count: int,
        *,
        native_app: str,
        legacy_app: str,
        legacy_url: str | None,
        remote_timeout: float,
        remote_max_connections: int,
        legacy_threads: int,
    ) -> None:
        self.count = count
        self._hello = {
            "native_app": native_app,
            "legacy_app": legacy_app,
            "legacy_url": legacy_url,
            "remote_timeout": remote_timeout,
            "remote_max_connections": remote_max_connections,
            "legacy_threads": legacy_threads,
            "sys_path": list(sys.path),
        }
        self._workers = [_Worker(i) for i in range(count)]
        self._keepers: list[asyncio.Task[None]] = []
        self._next_id = 0
        self._closing = False

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self._workers if w.ready and w.pid is not None]

    async def start(self, wait_s: float = READY_TIMEOUT_S) -> None:
        """Starts every worker, each kept alive by a task of its own; waits up to `wait_s` for
        them to be ready (one that is not yet skips its copies as `worker_starting`)."""
        started = [asyncio.Event() for _ in self._workers]
        self._keepers = [
            asyncio.create_task(self._keep(w, ev), name=f"shadow-process-{w.index}")
            for w, ev in zip(self._workers, started, strict=True)
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await asyncio.gather(*(ev.wait() for ev in started))

    async def run(self, side: Side, scope: Scope, body: bytes, timeout_ms: int, max_body_bytes: int) -> Reply:
        """One copy through a worker. Raises NoWorker when none could take it or it was lost."""
        live = [w for w in self._workers if w.ready]
        if not live:
            starting = any(w.process is not None and w.process.returncode is None for w in self._workers)
            raise NoWorker("worker_starting" if starting else "no_worker")
        worker = min(live, key=lambda w: len(w.waiting))
        process = worker.process
        assert process is not None and process.stdin is not None
        self._next_id += 1
        rid = self._next_id
        copy = {key: scope[key] for key in SCOPE_KEYS if key in scope}
        # a copy the worker cannot start soon is skipped there (compared late, against an owner
        # answer seconds old, it would say little); with no CPU even for that reply, here
        timeout_s = timeout_ms / 1000
        request = (rid, side.value, copy, body, timeout_ms, max_body_bytes, min(timeout_s, START_WITHIN_S))
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        worker.waiting[rid] = future
        try:
            process.stdin.write(frame(request))
            await process.stdin.drain()
            async with asyncio.timeout(2 * timeout_s + 1.0):
                return await future
        except TimeoutError:
            raise NoWorker(STARTED_LATE) from None
        except (ConnectionError, RuntimeError):  # the pipe broke: the worker is gone
            raise NoWorker("worker_exited") from None
        finally:
            worker.waiting.pop(rid, None)

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Close every worker's stdin (it shuts its native app down and exits); kill the slow."""
        self._closing = True
        for keeper in self._keepers:
            keeper.cancel()
        for keeper in self._keepers:
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        await asyncio.gather(*(self._stop(w, timeout) for w in self._workers))

    # --- one worker's life -----------------------------------------------------------

    async def _keep(self, worker: _Worker, started: asyncio.Event) -> None:
        backoff = RESTART_S[0]
        while not self._closing:
            began = time.monotonic()
            try:
                await self._spawn(worker)
            except Exception as exc:
                log.error("shadow process %d did not start: %s; shadows skip it (reason no_worker)",
                          worker.index, exc)  # fmt: skip
            else:
                started.set()
                assert worker.process is not None
                code = await worker.process.wait()
                if self._closing:
                    return
                log.warning("shadow process %d (pid %s) exited with code %s; restarting it",
                            worker.index, worker.pid, code)  # fmt: skip
            started.set()
            await self._stop(worker, 1.0)  # its copies in flight are skipped as worker_exited
            # a worker that ran for a while is restarted soon; one that keeps failing, ever slower
            if time.monotonic() - began > RESTART_S[1]:
                backoff = RESTART_S[0]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_S[1])

    async def _spawn(self, worker: _Worker) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = HERE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.shadow_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env, limit=2**31 - 1,
        )  # fmt: skip
        worker.process, worker.pid, worker.ready = process, process.pid, False
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(frame(self._hello))
        await process.stdin.drain()
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                answer = await read_frame(process.stdout)
        except (EOFError, TimeoutError):
            code = process.returncode
            how = (
                f"exited with code {code}" if code is not None else f"gave no answer in {READY_TIMEOUT_S:g} s"
            )
            raise RuntimeError(f"it {how} before it was ready (its errors are above in this log)") from None
        if answer[0] != "ready":
            raise RuntimeError(answer[1])
        worker.ready = True
        worker.reader = asyncio.create_task(self._read(worker, process.stdout), name="shadow-process-reader")
        log.info("shadow process %d ready (pid %d)", worker.index, process.pid)

    async def _read(self, worker: _Worker, stdout: asyncio.StreamReader) -> None:
        while True:
            try:
                rid, kind, value, ms = await read_frame(stdout)
            except EOFError:
                worker.ready = False
                return
            future = worker.waiting.get(rid)
            if future is None or future.done():
                continue  # given up on (timed out here)
            if kind == "ok":
                future.set_result(Reply(kind, value, None, ms))
            else:
                future.set_result(Reply(kind, None, value, ms))

    def _lost(self, worker: _Worker, reason: str) -> None:
        worker.ready = False
        for future in worker.waiting.values():
            if not future.done():
                future.set_exception(NoWorker(reason))
        worker.waiting.clear()

    async def _stop(self, worker: _Worker, timeout: float) -> None:  # noqa: ASYNC109
        process = worker.process
        worker.ready = False
        if process is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        if process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if worker.reader is not None:
            worker.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker.reader
            worker.reader = None
        self._lost(worker, "worker_exited")
        worker.process = None
