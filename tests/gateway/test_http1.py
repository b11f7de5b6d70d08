"""gateway.http1, the remote-mode client, against a scripted HTTP server on 127.0.0.1: reuse,
closes, chunked and large bodies, interim (1xx) answers, a stale kept-alive connection, an
upstream hanging up mid-headers or mid-body, TLS, failures and timeouts."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.http1 import MAX_BUFFER, Pool, UpstreamError, parse_base_url
from tests.gateway.scripted_upstream import Upstream, self_signed

pytestmark = pytest.mark.anyio


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


async def test_a_body_that_stops_coming_times_out_and_a_cancelled_reader_stays_cancelled(
    upstream: Upstream,
) -> None:
    pool = Pool("127.0.0.1", upstream.port, timeout=0.3)
    response = await pool.request("GET", "/stall-body", [], b"")
    assert await response.read() == (b"first", True)
    with pytest.raises(UpstreamError, match="stopped sending its answer") as caught:
        await response.read()
    assert caught.value.timeout and caught.value.answered
    response.release()
    stalled = await pool.request("GET", "/stall-body", [], b"")
    assert await stalled.read() == (b"first", True)
    reader = asyncio.ensure_future(stalled.read())
    await asyncio.sleep(0.01)
    reader.cancel()  # the client went away: a cancellation, not the upstream's timeout
    with pytest.raises(asyncio.CancelledError):
        await reader
    stalled.release()
    await pool.aclose()


async def test_a_small_answer_is_read_whole_with_its_end(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port)
    response = await pool.request("GET", "/keep", [], b"")
    assert await response.read() == (b"ok", False)  # one piece, and it says it is the last
    response.release()
    head = await pool.request("HEAD", "/head", [], b"")
    assert await head.read() == (b"", False)
    head.release()
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


async def test_chunked_answers_arriving_piece_by_piece_are_decoded(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port)
    response = await pool.request("GET", "/chunked", [], b"")
    assert (b"x-kind", b"chunks") in response.headers and (b"transfer-encoding", b"chunked") in response.headers
    assert b"".join([c async for c in response.chunks()]) == b"hello world"
    response.release()
    assert await fetch(pool, "/chunked-slowly") == (200, b"abcdef")
    assert await fetch(pool, "/keep") == (200, b"ok")
    assert upstream.connections == 1
    await pool.aclose()


async def test_an_answer_framed_by_connection_close_is_read_to_the_end(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port)
    assert await fetch(pool, "/close-unframed") == (200, b"until the end")
    assert await fetch(pool, "/keep") == (200, b"ok")
    assert upstream.connections == 2  # the closed one was not handed out again
    await pool.aclose()


async def test_interim_answers_are_skipped_and_the_connection_stays_in_step(upstream: Upstream) -> None:
    """Regression: a `100 Continue` (what gunicorn sends for `Expect: 100-continue`) was taken
    for the answer: the client got a bodiless 100 and the real answer was read as the next one."""
    pool = Pool("127.0.0.1", upstream.port)
    response = await pool.request("POST", "/continue", [(b"expect", b"100-continue")], b"payload")
    assert response.status == 201 and response.headers == [(b"content-length", b"7")]
    assert b"".join([c async for c in response.chunks()]) == b"payload"
    response.release()
    assert await fetch(pool, "/early-hints") == (200, b"ok")
    assert await fetch(pool, "/keep") == (200, b"ok")
    assert upstream.connections == 1
    await pool.aclose()


@pytest.mark.parametrize("reused", [False, True])
async def test_an_upstream_hanging_up_mid_headers_is_an_error_never_resent(upstream: Upstream, reused: bool) -> None:
    pool = Pool("127.0.0.1", upstream.port)
    if reused:
        assert await fetch(pool, "/keep") == (200, b"ok")
    with pytest.raises(UpstreamError, match="the upstream closed the connection") as caught:
        await pool.request("POST", "/cut-head", [], b"order=1")
    assert caught.value.answered and not caught.value.timeout
    assert [head.split(b" ")[1] for head, _ in upstream.requests].count(b"/cut-head") == 1  # a write is never sent twice
    assert await fetch(pool, "/keep") == (200, b"ok")
    await pool.aclose()


async def test_an_upstream_hanging_up_without_a_byte_on_a_new_connection_is_not_retried(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port)
    with pytest.raises(UpstreamError, match="the upstream closed the connection") as caught:
        await pool.request("GET", "/silent-close", [], b"")
    assert not caught.value.answered
    assert len(upstream.requests) == 1  # a new connection closed is no stale one: no retry
    await pool.aclose()


async def test_a_chunked_answer_cut_short_is_an_error_after_what_arrived(upstream: Upstream) -> None:
    pool = Pool("127.0.0.1", upstream.port)
    response = await pool.request("GET", "/cut-chunked", [], b"")
    got: list[bytes] = []
    with pytest.raises(UpstreamError, match="the upstream closed the connection") as caught:
        async for chunk in response.chunks():
            got.append(chunk)
    assert caught.value.answered and b"".join(got).startswith(b"hello")
    response.release()
    assert await fetch(pool, "/keep") == (200, b"ok")
    await pool.aclose()


async def test_tls_upstreams_are_verified_and_their_connections_reused(tmp_path: Path) -> None:
    cert = self_signed(tmp_path)
    server = Upstream(tls=cert.server_context())
    await server.start()
    pool = Pool("127.0.0.1", server.port, tls=cert.client_context())
    try:
        assert [await fetch(pool, "/keep") for _ in range(3)] == [(200, b"ok")] * 3
        assert await fetch(pool, "/chunked") == (200, b"hello world")
        assert await fetch(pool, "/echo", "POST", b"x" * 70000) == (201, b"x" * 70000)
        assert await fetch(pool, "/continue", "POST", b"tls") == (201, b"tls")
        assert server.connections == 1
        with pytest.raises(UpstreamError, match="the upstream closed the connection"):
            await pool.request("GET", "/cut-head", [], b"")
    finally:
        await pool.aclose()
    untrusting = Pool("127.0.0.1", server.port, tls=ssl.create_default_context(), timeout=5)
    with pytest.raises(UpstreamError, match=r"cannot connect to the upstream: .*certificate verify failed") as caught:
        await untrusting.request("GET", "/keep", [], b"")
    assert not caught.value.timeout
    await server.stop()


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
