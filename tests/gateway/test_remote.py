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


def _seen_by_legacy(scope_headers: list[tuple[bytes, bytes]], scheme: str = "http") -> dict[bytes, bytes]:
    from gateway.remote import _forwarded_headers

    scope = {"headers": scope_headers, "client": ("10.0.0.7", 5000), "scheme": scheme}
    sent = _forwarded_headers(scope)
    names = [k for k, _ in sent]
    assert len(names) == len(set(names)), f"a header sent twice: {names}"
    return dict(sent)


def test_the_gateway_adds_itself_as_one_proxy_hop() -> None:
    sent = _seen_by_legacy([(b"host", b"shop.example")], scheme="https")
    assert sent[b"x-forwarded-for"] == b"10.0.0.7"
    assert sent[b"x-forwarded-proto"] == b"https"
    assert sent[b"host"] == b"shop.example"  # url_for builds the client's URLs, not the upstream's


def test_behind_a_proxy_the_chain_grows_and_the_scheme_it_said_is_kept() -> None:
    """Regression: a second X-Forwarded-Proto (the gateway's http beside the balancer's https)
    made gunicorn refuse every request from behind a proxy with 400 'Contradictory scheme headers'."""
    sent = _seen_by_legacy(
        [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-for", b"198.51.100.2"), (b"x-forwarded-proto", b"https")]
    )
    assert sent[b"x-forwarded-for"] == b"203.0.113.9, 198.51.100.2, 10.0.0.7"
    assert sent[b"x-forwarded-proto"] == b"https"


def test_a_path_byte_a_request_line_cannot_carry_goes_out_percent_encoded() -> None:
    """Regression: a raw path with a space or raw UTF-8 (which uvicorn lets through) was written
    onto the request line as it was, and gunicorn answered 400 'Invalid HTTP request line'."""
    from gateway.remote import _request_line_safe

    assert _request_line_safe("/caf\u00e9/a b".encode()) == "/caf%C3%A9/a%20b"
    assert _request_line_safe(b"/already%20fine/%2F?x") == "/already%20fine/%2F?x"
    assert _request_line_safe(b"q=a\tb") == "q=a%09b"
