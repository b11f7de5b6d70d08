"""The access log: one JSON line per answered request, on the `gateway.access` logger.

A line carries what the dispatcher's `Exchange` carries (time, request id, method, path,
route id, side, status, latency; `"incomplete": true` when the side broke off mid-answer)
and nothing from the request's headers, query string or body: tokens, cookies and
passwords cannot leak into it because they never reach it.

A shadowed request is compared after its answer has gone out, off the response path. Its
line waits, keyed by request id, until the shadow runner reports the outcome (`match`,
`diff`, `error`, `skipped:<reason>`), and is written then. Lines still waiting at their
deadline (the route's shadow timeout plus a margin) are written with `"shadow": "pending"`
by a periodic sweep; so are lines that find the waiting room full (it is bounded) and every
line still waiting at shutdown. An outcome reported before its line exists (a shadow skipped
before the owner answered) waits for the line the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.dispatcher import SIDE_NAMES, Exchange
from gateway.logs import BatchedStreamHandler

_quote = json.encoder.encode_basestring_ascii  # a JSON string literal, in C

log = logging.getLogger("gateway.access")
PENDING = "pending"


@dataclass(slots=True)
class _Parked:
    line: str  # the JSON object without its closing brace: the outcome goes last
    deadline: float


# ".000Z" to ".999Z": an index instead of an integer format per line
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


class _Clock:
    """ISO 8601 UTC with milliseconds, the seconds part formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        return self.format(time.time())

    def format(self, t: float) -> str:
        second = int(t)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._prefix + _MILLIS[int((t - second) * 1000)]


class AccessLog:
    def __init__(
        self,
        *,
        max_parked: int = 10_000,
        margin_s: float = 3.0,
        sweep_interval: float = 0.5,
        logger: logging.Logger = log,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_parked = max_parked
        self.margin_s = margin_s
        self.sweep_interval = sweep_interval
        self._logger = logger
        self._clock = clock
        # request id -> lines waiting for their shadow outcome, oldest first (a client may
        # send the same X-Request-ID twice); `_count` is how many lines in all
        self._parked: dict[str, list[_Parked]] = {}
        self._count = 0
        # request id -> (outcome, deadline): outcomes that came before their line
        self._early: dict[str, tuple[str, float]] = {}
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        # everything runs on the event loop today; the lock keeps it right if a thread reports
        self._lock = threading.Lock()
        self._time = _Clock()
        # with the gateway's own handler (`_batched`), lines wait here in the order they came
        # and are handed over a batch at a time (`_drain`: when the handler's batch is full,
        # and at every flush): one lock and one call per batch instead of per line
        self._batched: BatchedStreamHandler | None = None
        self._pending: deque[str] = deque()

    @property
    def parked(self) -> int:
        return self._count

    def prepared(self, route_id: str, backend: str) -> str:
        """The part of a line that is the same for every answer of one route and side."""
        return f'"route":"{route_id}","backend":"{backend}"'

    def answered(
        self,
        prepared: str,
        request_id: str,
        method: str,
        path: str,
        status: int,
        latency_ms: float,
        outcome: str | None = None,
    ) -> None:
        """The dispatcher's path for a complete answer with no comparison to wait for: the
        line `observe` would write for its Exchange, with the route's part made once
        (`prepared`); `outcome` is a shadow's outcome known before the answer (a skip)."""
        end = "}" if outcome is None else f',"shadow":{_quote(outcome)}}}'
        self._emit(
            f'{{"time":"{self._time.now()}","request_id":"{request_id}",'
            f'"method":{_quote(method)},"path":{_quote(path)},'  # never the query
            f'{prepared},"status":{status},"latency_ms":{latency_ms:.1f}{end}'
        )

    def observe(self, exchange: Exchange) -> None:
        """The dispatcher observer: write the line, or park it until the shadow outcome."""
        # built by hand, once per request: json.dumps of a dict costs several times more.
        # Strings a client controls go through the JSON encoder; the others cannot hold a
        # quote (request ids and route ids are validated, the side is ours).
        line = (
            f'{{"time":"{self._time.now()}","request_id":"{exchange.request_id}",'
            f'"method":{_quote(exchange.method)},"path":{_quote(exchange.path)},'  # never the query
            f'"route":"{exchange.route.id}","backend":"{SIDE_NAMES[exchange.side]}",'
            f'"status":{exchange.status},"latency_ms":{exchange.latency_ms:.1f}'
        )
        if not exchange.complete:  # the side broke off after its status went out
            line += ',"incomplete":true'
        if exchange.shadow_outcome is not None:  # known before the answer: nothing to wait for
            self._write(f'{line},"shadow":{_quote(exchange.shadow_outcome)}')
            return
        if exchange.shadowed:
            request_id = exchange.request_id
            deadline = self._clock() + exchange.route.shadow.timeout_ms / 1000 + self.margin_s
            with self._lock:
                early = self._early.pop(request_id, None)
                if early is None and not self._closed and self._count < self.max_parked:
                    self._parked.setdefault(request_id, []).append(_Parked(line, deadline))
                    self._count += 1
                    return
            line += f',"shadow":{_quote(early[0] if early is not None else PENDING)}'
        self._write(line)

    def resolve(self, request_id: str, outcome: str) -> None:
        """The shadow runner's outcome hook: write the line waiting for this outcome."""
        with self._lock:
            waiting = self._parked.get(request_id)
            if not waiting:
                if not self._closed and len(self._early) < self.max_parked:
                    self._early[request_id] = (outcome, self._clock() + self.margin_s)
                return
            parked = waiting.pop(0)
            if not waiting:
                del self._parked[request_id]
            self._count -= 1
        self._write(f"{parked.line},\"shadow\":{_quote(outcome)}")

    def sweep(self, *, everything: bool = False) -> int:
        """Write the lines whose outcome is overdue as pending; how many were written."""
        now = self._clock()
        overdue: list[_Parked] = []
        with self._lock:
            for request_id in list(self._parked):
                waiting = self._parked[request_id]
                kept = [p for p in waiting if not everything and p.deadline > now]
                if len(kept) == len(waiting):
                    continue
                overdue.extend(p for p in waiting if everything or p.deadline <= now)
                if kept:
                    self._parked[request_id] = kept
                else:
                    del self._parked[request_id]
            self._count -= len(overdue)
            stale = [r for r, (_, deadline) in self._early.items() if everything or deadline <= now]
            for request_id in stale:
                del self._early[request_id]
        overdue.sort(key=lambda p: p.deadline)
        for parked in overdue:
            self._write(f"{parked.line},\"shadow\":{_quote(PENDING)}")
        return len(overdue)

    async def start(self) -> None:
        self._closed = False
        self._batched = self._batch_handler()
        self._task = asyncio.create_task(self._sweeper(), name="access-log-sweep")

    async def stop(self) -> None:
        """Write every waiting line (as pending); later shadowed lines are written at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with self._lock:
            self._closed = True
        self.sweep(everything=True)
        self.flush()  # and later lines are written at once

    def flush(self) -> None:
        """Hand buffered lines to the stream (the gateway's handler writes in batches)."""
        self._drain()
        # the logger's configuration, looked at again: lines wait only for the gateway's handler
        self._batched = None if self._closed else self._batch_handler()
        for handler in self._logger.handlers:
            handler.flush()

    def _drain(self) -> None:
        """Hand every waiting line over, in order."""
        with self._lock:  # one drain at a time; appends need no lock (a deque's are atomic)
            pending = self._pending
            lines = [pending.popleft() for _ in range(len(pending))]
        if lines:
            self._hand_over(lines)

    def _batch_handler(self) -> BatchedStreamHandler | None:
        """The gateway's own handler, when it is all the logger writes to."""
        logger = self._logger
        handlers = logger.handlers
        if (
            len(handlers) == 1
            and type(handlers[0]) is BatchedStreamHandler
            and not logger.propagate
            and not logger.filters
            and not handlers[0].filters
            and logger.isEnabledFor(logging.INFO)
        ):
            return handlers[0]
        return None

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                self.sweep()
                self.flush()
            except Exception:  # a broken handler must not end the sweeps
                logging.getLogger("gateway").exception("access log sweep failed")

    def _write(self, line: str) -> None:
        """A line without its closing brace (the shadow outcome may still be added)."""
        self._emit(line + "}")

    def _emit(self, line: str) -> None:
        batched = self._batched
        if batched is not None:
            handlers = self._logger.handlers
            if len(handlers) == 1 and handlers[0] is batched:
                pending = self._pending
                pending.append(line)  # after the answers waiting before it
                if len(pending) >= batched.batch:
                    self._drain()
                return
        self._hand_over([line])

    def _hand_over(self, lines: list[str]) -> None:
        handler = self._batch_handler()
        if handler is not None:
            # the gateway's own configuration: the lines go straight to its batch, without a
            # LogRecord, a formatter or the handler's filters, which cost more than the line
            handler.add_lines(lines)
            return
        logger = self._logger
        if logger.isEnabledFor(logging.INFO):
            for line in lines:
                # the record made directly: logger.info() would walk the stack for a caller
                # the line never shows
                logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, line, (), None))
