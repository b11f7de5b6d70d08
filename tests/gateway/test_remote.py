"""Remote mode: the legacy side is a real HTTP server, reached through the pooled client."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from gateway.app import Gateway
from gateway.settings import GatewaySettings
from tests.gateway.wsgi_fixtures import legacy_app
from tests.support import asgi_client

MAP = "version: 1\nroutes:\n  - {id: users.get, path: '/api/users/<int:id>', methods: [GET], owner: new}\n"


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass



@pytest.fixture
def legacy_server() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, legacy_app, server_class=_ThreadingServer, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


async def make_gateway(tmp_path: Path, legacy_url: str) -> Gateway:
    map_path = tmp_path / "m.yaml"
    map_path.write_text(MAP)
    gw = Gateway(GatewaySettings(map_path=map_path, legacy_url=legacy_url, remote_timeout=2,
                                 native_app="tests.gateway.wsgi_fixtures:native_app"))
    await gw.startup({})
    return gw


@pytest.fixture
async def gateway(tmp_path: Path, legacy_server: str) -> AsyncIterator[Gateway]:
    gw = await make_gateway(tmp_path, legacy_server)
    yield gw
    await gw.shutdown()


@pytest.mark.anyio
async def test_unmapped_requests_are_proxied_to_the_remote_legacy(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        r = await c.get("/api/orders?page=2")
        native = await c.get("/api/users/3")
    assert (r.status_code, r.text, r.headers["x-served-by"]) == (200, "legacy GET /api/orders", "legacy")
    assert r.headers.get_list("x-served-by") == ["legacy"]  # the remote's own header is replaced
    assert native.headers["x-served-by"] == "new"


@pytest.mark.anyio
async def test_body_and_request_id_reach_the_remote(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        r = await c.post("/echo", content=b"x" * 5000, headers={"X-Request-ID": "remote-1"})
    assert r.json()["length"] == 5000 and r.json()["request_id"] == "remote-1"
    assert r.headers["x-request-id"] == "remote-1"


@pytest.mark.anyio
async def test_dead_remote_is_a_502_that_says_so(tmp_path: Path) -> None:
    from tests.e2e.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    gw = await make_gateway(tmp_path, url)
    try:
        async with asgi_client(gw.dispatcher) as c:
            r = await c.get("/api/orders", headers={"X-Request-ID": "dead-1"})
            native = await c.get("/api/users/1")
    finally:
        await gw.shutdown()
    assert r.status_code == 502
    assert r.json() == {"error": {"code": "legacy_unreachable",
                                  "message": f"cannot reach the legacy server at {url}", "request_id": "dead-1"}}
    assert native.status_code == 200
