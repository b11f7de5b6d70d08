"""An open-loop HTTP/1.1 load generator: requests go out on a fixed schedule, whatever the server does.

wrk is closed-loop: a stalled server stalls the sender too, and the requests that were never
sent never show up as slow (coordinated omission). Here request i is due at start + i / rate;
it leaves on the first idle keep-alive connection, or waits for one, and its latency runs from
the time it was due. A stall of the server therefore shows in every request due during it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Sample = tuple[float, float, bool]  # (time.time() it was due, latency ms, 2xx)


class _Conn(asyncio.Protocol):
    def __init__(self, owner: OpenLoop) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.due: float | None = None  # the request in flight: when it was due (perf_counter)
        self.due_wall = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        self.owner.idle(self)

    def send(self, due: float, due_wall: float) -> None:
        assert self.transport is not None
        self.due, self.due_wall = due, due_wall
        self.transport.write(self.owner.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : line_end if line_end >= 0 else len(head)])
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            ok = head[9:10] == b"2"
            self.buffer = self.buffer[total:]
            if self.due is not None:
                self.owner.done(self.due_wall, (time.perf_counter() - self.due) * 1000, ok)
                self.due = None
            self.owner.idle(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.due is not None:
            self.owner.done(self.due_wall, (time.perf_counter() - self.due) * 1000, False)
        self.owner.lost(self)


class OpenLoop:
    def __init__(self, host: str, port: int, path: str, *, rate: float, connections: int = 64) -> None:
        self.host, self.port, self.rate, self.connections = host, port, rate, connections
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        self.samples: list[Sample] = []
        self.waiting: list[tuple[float, float]] = []  # due, not yet sent: no connection was idle
        self.free: list[_Conn] = []
        self._stop = False
        self.completed = 0

    def idle(self, conn: _Conn) -> None:
        if self.waiting:
            due, wall = self.waiting.pop(0)
            conn.send(due, wall)
        else:
            self.free.append(conn)

    def done(self, due_wall: float, latency_ms: float, ok: bool) -> None:
        self.completed += 1
        if self.rate > 0:
            self.samples.append((due_wall, latency_ms, ok))

    def lost(self, conn: _Conn) -> None:
        if conn in self.free:
            self.free.remove(conn)

    def stop(self) -> None:
        self._stop = True

    async def _open(self) -> list[tuple[asyncio.Transport, _Conn]]:
        loop = asyncio.get_running_loop()
        out = []
        for _ in range(self.connections):
            out.append(await loop.create_connection(lambda: _Conn(self), self.host, self.port))
        return out

    async def run(self) -> list[Sample]:
        opened = await self._open()
        interval = 1.0 / self.rate
        start = time.perf_counter()
        wall0 = time.time() - (time.perf_counter() - start)
        i = 0
        try:
            while not self._stop:
                now = time.perf_counter()
                while start + i * interval <= now:
                    due = start + i * interval
                    item = (due, wall0 + (due - start))
                    if self.free:
                        self.free.pop().send(*item)
                    else:
                        self.waiting.append(item)
                    i += 1
                await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
            # what was due and never answered counts as slow as it is by now
            deadline = time.perf_counter() + 5
            while any(c.due is not None for _, c in opened) and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            now = time.perf_counter()
            for due, wall in self.waiting:
                self.samples.append((wall, (now - due) * 1000, False))
        finally:
            for t, _ in opened:
                t.close()
        return self.samples


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1, to a hundredth of a percent) of `values`, nearest rank; nan for
    none. The rank is whole-number arithmetic: 0.99 * 1300 in floats is 1286.99..., not 1287."""
    data = sorted(values)
    if not data:
        return float("nan")
    return data[min(len(data) - 1, len(data) * round(q * 10_000) // 10_000)]


async def capacity(host: str, port: int, path: str, *, seconds: float, connections: int = 32) -> float:
    """Closed loop, every connection sending its next request as soon as the last one is answered."""
    gen = OpenLoop(host, port, path, rate=0, connections=connections)
    loop = asyncio.get_running_loop()
    transports, conns = [], []
    for _ in range(connections):
        transport, conn = await loop.create_connection(lambda: _Conn(gen), host, port)
        transports.append(transport)
        conns.append(conn)

    def again(conn: _Conn) -> None:
        conn.send(time.perf_counter(), time.time())

    gen.idle = again  # type: ignore[method-assign]
    for conn in conns:
        again(conn)
    await asyncio.sleep(1.0)
    before, started = gen.completed, time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (gen.completed - before) / (time.perf_counter() - started)
    for t in transports:
        t.close()
    return rate


async def calibrate(
    cores_at: Callable[[float], Awaitable[float]], rate: float, load: float
) -> tuple[float, float]:
    """The open-loop rate at which a server uses `load` of its core, from a first guess
    (`rate`, e.g. that share of wrk's capacity), and the cores it used there; `cores_at(r)`
    drives it at r for a few seconds and returns the cores it used.

    A share of wrk's capacity is not that share of a core: requests arriving one at a time
    each wake the loop (and a WSGI thread) on their own, so a server costs up to twice as
    much per request as under wrk's 32 busy connections. At half wrk's rate the gateway
    already used 0.80-0.92 of its core, the knee where any extra work sets the p99 (bench/
    PROFILE.md, "Round two, fifth pass"). Two corrections, each by the cores the last rate used.
    """
    cores = float("nan")
    for _ in range(2):
        cores = await cores_at(rate)
        rate *= load / max(cores, 0.05)
    return rate, cores
