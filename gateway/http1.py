"""A small HTTP/1.1 client for remote mode: keep-alive connections to one upstream, parsed
by httptools (the parser uvicorn uses), on asyncio protocols.

httpx builds request and response models, takes anyio locks and cancel scopes and
normalises headers on every request; bench/PROFILE.md found it was 60 % of a gateway in
remote mode. A reverse proxy needs none of that: bytes of the request head out, status,
raw headers and body chunks back. What it does need is here: a bounded pool of reusable
connections, timeouts on connect and on every wait for the upstream, backpressure on
large bodies, and one retry when a reused connection turns out to have been closed by the
server before it answered (the request is then resent on a fresh connection).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

MAX_BUFFER = 256 * 1024  # body bytes read ahead of the client before reading pauses


class UpstreamError(Exception):
    """The upstream gave no (complete) answer; `timeout` says whether it was too slow."""

    def __init__(self, message: str, *, timeout: bool = False, answered: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.answered = answered  # part of an answer had arrived: a retry would be wrong


class _Connection(asyncio.Protocol):
    """One TCP connection; parses the answer to the request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.closed = self.loop.create_future()
        # one parser for the connection's life, as uvicorn's server side has: it starts on
        # the next answer by itself, and a connection is only reused after a complete one
        self.parser = httptools.HttpResponseParser(self)
        self.body: collections.deque[bytes] = collections.deque()
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done: asyncio.Future[None] = self.loop.create_future()
        self.body.clear()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.interim = False  # parsing a 1xx answer
        self.started = False  # any byte of an answer seen
        self.failure: Exception | None = None
        self._wakeup: asyncio.Future[bool] | None = None  # True: data or an end; False: timed out
        self.paused = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.started = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"invalid HTTP from the upstream: {exc}", answered=True))
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.complete and exc is None and self._ends_at_close():
            self.complete = True  # httptools has no "end of input" call to say it for us
            self._wake()
        if not self.complete:
            why = f": {exc}" if exc else ""
            self._fail(UpstreamError(f"the upstream closed the connection{why}", answered=self.started))

    def _ends_at_close(self) -> bool:
        """An answer with neither a length nor chunks: its body is what came before the close."""
        if not self.head_done.done() or self.failure is not None:
            return False
        return not any(name in (b"content-length", b"transfer-encoding") for name, _ in self.headers)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            # an interim answer (100 Continue, 103 Early Hints) precedes the real one on the
            # same connection: forgotten, as httpx and aiohttp forget them (101 never comes:
            # upgrades are not forwarded)
            self.interim = True
            self.headers = []
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()  # read now: the parser resets it later
        if not self.head_done.done():
            self.head_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > MAX_BUFFER and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.complete = True
        self._wake()

    # the pool's side
    def _fail(self, exc: Exception) -> None:
        self.failure = self.failure or exc
        if not self.head_done.done():
            self.head_done.set_exception(exc)
            self.head_done.exception()  # retrieved: no "never retrieved" warning if unused
        self._wake()

    def too_slow(self) -> None:
        self._fail(UpstreamError("the upstream did not answer in time", timeout=True))
        self.close()

    def _wake(self) -> None:
        if self._wakeup is not None:
            _settle(self._wakeup, True)

    async def next_chunk(self, timeout: float) -> tuple[bytes, bool]:  # noqa: ASYNC109 - per wait
        """The body that has arrived (at least a byte, unless the answer is complete), and
        whether more is to come: (b"", False) at the end."""
        body = self.body
        while not body:
            if self.complete:
                return b"", False
            if self.failure is not None:
                raise self.failure
            await self._wait(timeout)
        # everything that has arrived goes as one piece: a small answer is usually all here
        # along with its head, and then needs one ASGI send in all instead of one per segment
        chunk = body.popleft() if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk, not self.complete

    async def _wait(self, timeout: float) -> None:  # noqa: ASYNC109 - per wait, not overall
        self._wakeup = wakeup = self.loop.create_future()
        # a timer, not asyncio.timeout(): cheaper, and it runs for every wait on a slow body
        timer = self.loop.call_later(timeout, _settle, wakeup, False)
        try:
            woken = await wakeup
        finally:
            timer.cancel()
        if not woken:
            message = "the upstream stopped sending its answer"
            raise UpstreamError(message, timeout=True, answered=True)

    @property
    def reusable(self) -> bool:
        return (
            self.complete
            and self.failure is None
            and self.keep_alive
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Response:
    """An answer being received; `read()` it to its end (or iterate `chunks()`), then
    `release()` (always)."""

    def __init__(self, pool: Pool, conn: _Connection, head: bool) -> None:
        self._pool, self._conn, self._head = pool, conn, head
        self.status = conn.status
        self.headers = conn.headers

    async def read(self) -> tuple[bytes, bool]:
        """The next part of the body and whether more may follow; (b"", False) at its end."""
        if self._head or self.status in (204, 304):
            return b"", False
        return await self._conn.next_chunk(self._pool.timeout)

    async def chunks(self) -> AsyncIterator[bytes]:
        more = True
        while more:
            chunk, more = await self.read()
            if chunk:
                yield chunk

    def release(self) -> None:
        conn = self._conn
        if not self._head and conn.reusable:
            self._pool.put_back(conn)
        else:  # an answer not read to its end, or to a HEAD: the connection cannot be reused
            conn.close()
            self._pool.gone()


class Pool:
    """Connections to one upstream; at most `max_connections`, idle ones reused."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 30.0,
        max_connections: int = 100,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.timeout = timeout
        self._idle: list[_Connection] = []
        self.max_connections = max_connections
        self._open = 0  # connections open, idle or in use
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Response:
        """Send the request and wait for the answer's head; raises UpstreamError."""
        head = _request_head(method, target, headers, self.host, self.port, body)
        for attempt in (1, 2):
            conn, reused = await self._connection()
            assert conn.transport is not None
            conn.transport.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                conn.transport.write(body)
            # a timer, not asyncio.timeout(): this runs for every proxied request
            timer = conn.loop.call_later(self.timeout, conn.too_slow)
            try:
                await conn.head_done
            except UpstreamError as exc:
                conn.close()
                self.gone()
                # a kept-alive connection the server had closed, before any answer: once more
                if reused and attempt == 1 and not exc.answered and not exc.timeout:
                    continue
                raise
            finally:
                timer.cancel()
            return Response(self, conn, method == "HEAD")
        raise AssertionError("unreachable")

    async def _connection(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            while self._idle:
                conn = self._idle.pop()
                if conn.transport is not None and not conn.transport.is_closing():
                    conn._reset()
                    return conn, True
                self._open -= 1  # closed while idle
            if self._open < self.max_connections:
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                message = f"all {self.max_connections} connections to the upstream are busy"
                raise UpstreamError(message, timeout=True) from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._open += 1
        try:
            async with asyncio.timeout_at(deadline):
                name = self.host if self.tls else None
                _, conn = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.tls, server_hostname=name
                )
        except TimeoutError:
            self.gone()
            raise UpstreamError("connecting to the upstream timed out", timeout=True) from None
        except OSError as exc:
            self.gone()
            raise UpstreamError(f"cannot connect to the upstream: {exc.strerror or exc}") from None
        return conn, False

    def put_back(self, conn: _Connection) -> None:
        self._idle.append(conn)
        self._wake_one()

    def gone(self) -> None:
        """A connection closed: room for a new one."""
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            try:
                async with asyncio.timeout(1):
                    await conn.closed
            except TimeoutError:
                pass


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


def _request_head(
    method: str, target: str, headers: list[tuple[bytes, bytes]], host: str, port: int, body: bytes
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1")]
    has_host = False
    for name, value in headers:
        if name == b"host":
            has_host = True
        elif name == b"content-length":
            continue  # set below, from the body actually sent
        lines.append(name + b": " + value)
    if not has_host:
        lines.append(f"host: {host}:{port}".encode("latin-1"))
    if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        lines.append(b"content-length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


def parse_base_url(url: str) -> tuple[str, int, str, bool]:
    """Host, port, path prefix and whether it is TLS, of an http:// or https:// base URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the remote legacy URL must be http(s)://host[:port][/prefix], got {url!r}")
    tls = parts.scheme == "https"
    return parts.hostname, parts.port or (443 if tls else 80), parts.path.rstrip("/"), tls

