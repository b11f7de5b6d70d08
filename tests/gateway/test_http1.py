"""gateway.http1, the remote-mode client, against a scripted HTTP server on 127.0.0.1: reuse,
closes, chunked and large bodies, a stale kept-alive connection, failures and timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.http1 import MAX_BUFFER, Pool, UpstreamError, parse_base_url

pytestmark = pytest.mark.anyio


class Upstream:
    """Answers by path; counts connections and remembers every request it read."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append((head, body))
                path = head.split(b" ")[1]
                if not await self.answer(path, body, writer):
                    return
        finally:
            writer.close()

    async def answer(self, path: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        """Write the answer; False closes the connection."""
        if path == b"/keep":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            return True
        if path == b"/close":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            return False
        if path == b"/drop-after":  # keep-alive by the headers, then the server hangs up anyway
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            return False
        if path == b"/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            return True
        if path == b"/big":
            size = MAX_BUFFER * 4
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
            for _ in range(size // 65536):
                writer.write(b"x" * 65536)
                await writer.drain()
            return True
        if path == b"/cut":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
            await writer.drain()
            return False
        if path == b"/slow":
            await asyncio.sleep(5)
            return False
        if path == b"/echo":
            writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
            return True
        if path == b"/head":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
            return True
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        return True

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    yield server
    await server.stop()


async def fetch(pool: Pool, path: str, method: str = "GET", body: bytes = b"") -> tuple[int, bytes]:
    response = await pool.request(method, path, [(b"host", b"up")], body)
    try:
        return response.status, b"".join([c async for c in response.chunks()])
    finally:
        response.release()


async def test_kept_alive_connections_are_reused(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port)
    assert [await fetch(pool, "/keep") for _ in range(5)] == [(200, b"ok")] * 5
    assert upstream.connections == 1
    await pool.aclose()


async def test_connection_close_answers_get_a_new_connection_each(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port, max_connections=1)
    assert [await fetch(pool, "/close") for _ in range(3)] == [(200, b"ok")] * 3
    assert upstream.connections == 3  # and the one slot was freed each time
    await pool.aclose()


async def test_a_stale_kept_alive_connection_is_retried_once_on_a_new_one(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port)
    assert await fetch(pool, "/drop-after") == (200, b"ok")
    await asyncio.sleep(0.05)  # the server has hung up the idle connection by now
    assert await fetch(pool, "/keep") == (200, b"ok")
    assert upstream.connections == 2
    await pool.aclose()


async def test_chunked_answers_are_decoded_and_large_ones_stream_through(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port)
    assert await fetch(pool, "/chunked") == (200, b"hello world")
    status, body = await fetch(pool, "/big")
    assert status == 200 and len(body) == MAX_BUFFER * 4 and set(body) == {ord("x")}
    assert await fetch(pool, "/keep") == (200, b"ok")  # the same connection, still in step
    assert upstream.connections == 1
    await pool.aclose()


async def test_the_body_and_headers_reach_the_upstream(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port)
    assert await fetch(pool, "/echo", "POST", b'{"a": 1}') == (201, b'{"a": 1}')
    head, body = upstream.requests[-1]
    assert head.startswith(b"POST /echo HTTP/1.1\r\n") and b"host: up\r\n" in head
    assert b"content-length: 8\r\n" in head and body == b'{"a": 1}'
    await pool.aclose()


async def test_a_head_answer_is_not_waited_for_and_its_connection_not_reused(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port)
    assert await asyncio.wait_for(fetch(pool, "/head", "HEAD"), 2) == (200, b"")
    assert await fetch(pool, "/keep") == (200, b"ok")
    assert upstream.connections == 2
    await pool.aclose()


async def test_an_answer_cut_short_is_an_error_after_the_head(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port)
    response = await pool.request("GET", "/cut", [], b"")
    assert response.status == 200
    with pytest.raises(UpstreamError, match="the upstream closed the connection") as caught:
        async for _ in response.chunks():
            pass
    assert caught.value.answered and not caught.value.timeout
    response.release()
    assert await fetch(pool, "/keep") == (200, b"ok")  # the pool carries on
    await pool.aclose()


async def test_a_slow_upstream_times_out_and_a_dead_one_is_refused(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port, timeout=0.3)
    with pytest.raises(UpstreamError, match="did not answer in time") as caught:
        await pool.request("GET", "/slow", [], b"")
    assert caught.value.timeout
    await pool.aclose()
    await upstream.stop()
    dead = Pool("127.0.0.1", upstream.port, timeout=2)
    with pytest.raises(UpstreamError, match="cannot connect to the upstream") as refused:
        await dead.request("GET", "/keep", [], b"")
    assert not refused.value.timeout


async def test_the_pool_bounds_connections_and_queues_the_rest(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port, max_connections=2)
    results = await asyncio.gather(*(fetch(pool, "/keep") for _ in range(10)))
    assert results == [(200, b"ok")] * 10
    assert upstream.connections <= 2
    await pool.aclose()


def test_base_urls() -> None:
    assert parse_base_url("http://legacy:8080/app/") == ("legacy", 8080, "/app", False)
    assert parse_base_url("http://127.0.0.1") == ("127.0.0.1", 80, "", False)
    assert parse_base_url("https://legacy.internal") == ("legacy.internal", 443, "", True)
    with pytest.raises(ValueError, match=r"must be http\(s\)://host"):
        parse_base_url("ftp://legacy")


def test_it_runs_on_uvloop_as_uvicorn_serves_it() -> None:
    """Regression: uvloop's transports are not asyncio.Transport subclasses; an isinstance
    check in connection_made failed every request of a gateway served by uvicorn."""
    import uvloop

    async def main() -> list[tuple[int, bytes]]:
        server = Upstream()
        await server.start()
        pool = Pool("127.0.0.1", server.port)
        try:
            return [await fetch(pool, "/keep"), await fetch(pool, "/chunked")]
        finally:
            await pool.aclose()
            await server.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == [(200, b"ok"), (200, b"hello world")]
