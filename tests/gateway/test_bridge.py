"""The hardened a2wsgi bridge, driven with raw ASGI messages so disconnects can be staged."""

import asyncio
import json
import time
from typing import Any

import pytest

from gateway.bridge import LegacyBridge
from tests.gateway.wsgi_fixtures import GATE, STREAM_STATE, legacy_app
from tests.support import eventually


def scope(path: str, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "http_version": "1.1", "method": method, "path": path, "raw_path": path.encode(),
            "root_path": "", "scheme": "http", "query_string": b"", "headers": headers or [],
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "gateway.request_id": "rid"}


class Client:
    """Plays the server: feeds body chunks, records what the app sends, can hang up."""

    def __init__(self, chunks: list[bytes] | None = None) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for i, chunk in enumerate(chunks or [b""]):
            self.incoming.put_nowait({"type": "http.request", "body": chunk, "more_body": i < len(chunks or [b""]) - 1})
        self.sent: list[dict[str, Any]] = []
        self.first_body = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body":
            self.first_body.set()

    def hang_up(self) -> None:
        self.incoming.put_nowait({"type": "http.disconnect"})

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


@pytest.mark.anyio
async def test_chunked_body_without_content_length_reaches_the_app_whole() -> None:
    bridge = LegacyBridge(legacy_app, threads=2)
    client = Client([b"a" * 1000, b"b" * 1000, b"c" * 500])
    await bridge(scope("/echo", "POST", [(b"transfer-encoding", b"chunked")]), client.receive, client.send)
    assert client.status == 200
    assert json.loads(client.body)["length"] == 2500


@pytest.mark.anyio
async def test_disconnect_during_stream_closes_iterable_and_frees_thread() -> None:
    STREAM_STATE["closed"].clear()
    bridge = LegacyBridge(legacy_app, threads=1)
    client = Client()
    task = asyncio.create_task(bridge(scope("/stream"), client.receive, client.send))
    await eventually(lambda: STREAM_STATE["produced"] >= 5, what="stream started")
    client.hang_up()
    await asyncio.wait_for(task, 2)  # the ASGI call ends: the thread is back in the pool
    assert bridge.busy == 0
    assert STREAM_STATE["closed"].is_set()
    assert STREAM_STATE["produced"] < 200  # it stopped early, not after producing everything
    # the one thread serves the next request at once
    after = Client()
    await asyncio.wait_for(bridge(scope("/hello"), after.receive, after.send), 2)
    assert after.body == b"legacy GET /hello"


@pytest.mark.anyio
async def test_full_pool_answers_503_within_the_timeout() -> None:
    GATE.clear()
    bridge = LegacyBridge(legacy_app, threads=2, acquire_timeout=0.3)
    blockers = [Client(), Client()]
    tasks = [asyncio.create_task(bridge(scope("/block"), c.receive, c.send)) for c in blockers]
    await eventually(lambda: bridge.busy == 2, what="both threads busy")
    rejected = Client()
    started = time.monotonic()
    await bridge(scope("/hello"), rejected.receive, rejected.send)
    waited = time.monotonic() - started
    GATE.set()
    await asyncio.gather(*tasks)
    assert rejected.status == 503
    assert 0.25 <= waited < 2
    assert (b"retry-after", b"1") in rejected.sent[0]["headers"]
    assert json.loads(rejected.body) == {"error": {
        "code": "legacy_unavailable",
        "message": "all 2 legacy worker threads are busy and none became free within 0.3 s; retry shortly",
        "request_id": "rid"}}
    assert bridge.rejected == 1 and bridge.busy == 0
    assert [c.body for c in blockers] == [b"unblocked", b"unblocked"]


@pytest.mark.anyio
async def test_shutdown_waits_for_in_flight_requests_within_a_bound() -> None:
    GATE.clear()
    bridge = LegacyBridge(legacy_app, threads=1)
    client = Client()
    task = asyncio.create_task(bridge(scope("/block"), client.receive, client.send))
    await eventually(lambda: bridge.busy == 1, what="thread busy")
    started = time.monotonic()
    assert await bridge.aclose(0.2) is False  # bounded: it gives up rather than hang
    assert time.monotonic() - started < 1
    GATE.set()
    await task
    assert client.body == b"unblocked"
    assert await bridge.aclose(0.2) is True


def test_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        LegacyBridge(legacy_app, threads=0)
