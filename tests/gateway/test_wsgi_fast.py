"""The legacy fast path (gateway.wsgi_fast): one thread hop for bodies of known length, and
WSGI's corners kept: lazy start_response, write(), streams, disconnects, errors."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.bridge import LegacyBridge
from gateway.wsgi_fast import MAX_BODY, takes_fast_path
from tests.gateway.test_bridge import Client, scope
from tests.support import eventually

pytestmark = pytest.mark.anyio
THREADS: set[str] = set()
CLOSED = threading.Event()
PRODUCED: list[int] = [0]
REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request")
SEEN_AT_CLOSE: list[str] = []


def app(environ: dict[str, Any], start_response: Any) -> Any:
    THREADS.add(threading.current_thread().name)
    path = environ["PATH_INFO"]
    if path == "/sized":
        body = json.dumps({"got": environ["wsgi.input"].read().decode(), "len": environ.get("CONTENT_LENGTH")}).encode()
        start_response("201 Created", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body[:5], body[5:]]
    if path == "/lazy":  # start_response only once the first chunk is asked for
        def lazy() -> Iterator[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"late "
            yield b"start"
        return lazy()
    if path == "/write":  # the legacy write() callable, then the iterable
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"returned"]
    if path == "/stream":
        def rows() -> Iterator[bytes]:
            try:
                for i in range(10_000):
                    PRODUCED[0] = i
                    yield f"row {i}\n".encode()
            finally:
                CLOSED.set()
        start_response("200 OK", [("Content-Type", "text/csv")])
        return rows()
    if path == "/context":  # as Flask's stream_with_context: state in a context variable
        REQUEST.set("this request")

        def chunks() -> Iterator[bytes]:
            try:
                for _ in range(3):
                    yield REQUEST.get("LOST").encode() + b";"
            finally:
                SEEN_AT_CLOSE.append(REQUEST.get("LOST"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return chunks()
    if path == "/no-start":
        return [b"oops"]
    raise RuntimeError("boom")


def test_only_bodies_of_known_small_length_take_the_fast_path() -> None:
    assert takes_fast_path(scope("/x"))
    assert takes_fast_path(scope("/x", "POST", [(b"content-length", str(MAX_BODY).encode())]))
    assert not takes_fast_path(scope("/x", "POST", [(b"content-length", str(MAX_BODY + 1).encode())]))
    assert not takes_fast_path(scope("/x", "POST", [(b"transfer-encoding", b"chunked")]))


async def test_a_sized_answer_is_one_body_message_and_the_request_body_arrives_whole() -> None:
    bridge = LegacyBridge(app, threads=2)
    client = Client([b'{"a": ', b"1}"])
    await bridge(scope("/sized", "POST", [(b"content-length", b"8")]), client.receive, client.send)
    assert client.status == 201
    bodies = [m for m in client.sent if m["type"] == "http.response.body"]
    assert len(bodies) == 1 and not bodies[0].get("more_body")  # collected on the thread: one hop back
    assert json.loads(client.body) == {"got": '{"a": 1}', "len": "8"}
    await bridge.aclose(1)


@pytest.mark.parametrize(("path", "body"), [("/lazy", b"late start"), ("/write", b"written returned")])
async def test_lazy_start_response_and_write_are_kept(path: str, body: bytes) -> None:
    bridge = LegacyBridge(app, threads=1)
    client = Client()
    await bridge(scope(path), client.receive, client.send)
    assert (client.status, client.body) == (200, body)
    await bridge.aclose(1)


async def test_a_stream_is_pulled_chunk_by_chunk_and_stops_when_the_client_leaves() -> None:
    CLOSED.clear()
    bridge = LegacyBridge(app, threads=1)
    client = Client()
    task = asyncio.create_task(bridge(scope("/stream"), client.receive, client.send))
    await eventually(lambda: PRODUCED[0] >= 20, what="rows streamed")
    assert all(m.get("more_body") for m in client.sent[1:])  # sent as they come, not collected
    client.hang_up()
    await asyncio.wait_for(task, 3)
    assert CLOSED.is_set() and PRODUCED[0] < 9_999 and bridge.busy == 0
    await bridge.aclose(1)


@pytest.mark.parametrize("path", ["/raise", "/no-start"])
async def test_an_app_that_fails_before_answering_gives_the_json_500(path: str) -> None:
    bridge = LegacyBridge(app, threads=1)
    client = Client()
    await bridge(scope(path), client.receive, client.send)
    assert client.status == 500
    assert json.loads(client.body)["error"]["code"] == "legacy_error"
    await bridge.aclose(1)


async def test_the_app_runs_on_the_bridge_threads() -> None:
    THREADS.clear()
    bridge = LegacyBridge(app, threads=1)
    client = Client()
    await bridge(scope("/sized", "POST", [(b"content-length", b"2")]), Client([b"{}"]).receive, client.send)
    assert THREADS and all(name.startswith("legacy-wsgi") for name in THREADS)
    await bridge.aclose(1)


async def test_a_stream_sees_the_context_its_request_set_when_pulled_and_closed() -> None:
    """Regression: each chunk was pulled in a fresh context, so Flask's streamed CSV export
    lost its app context and its teardown raised, cutting the response short."""
    SEEN_AT_CLOSE.clear()
    bridge = LegacyBridge(app, threads=2)
    client = Client()
    await bridge(scope("/context"), client.receive, client.send)
    assert client.body == b"this request;" * 3
    assert SEEN_AT_CLOSE == ["this request"]
    await bridge.aclose(1)
