"""Remote mode: the legacy side is a real HTTP server (wsgiref, or the scripted upstream of
test_http1 for framing, interim answers, hang-ups and TLS), reached through the pooled client."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from gateway.app import Gateway
from gateway.settings import GatewaySettings
from tests.gateway.scripted_upstream import Upstream, self_signed
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


# -- against a scripted upstream: framing, interim answers, early hang-ups, TLS ----------------


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[Gateway, Upstream]]:
    upstream = Upstream()
    await upstream.start()
    gw = await make_gateway(tmp_path, upstream.url)
    yield gw, upstream
    await gw.shutdown()
    await upstream.stop()


@pytest.mark.anyio
async def test_chunked_and_connection_close_answers_reach_the_client_reframed(
    scripted: tuple[Gateway, Upstream],
) -> None:
    gw, upstream = scripted
    async with asgi_client(gw.dispatcher) as c:
        chunked = await c.get("/chunked")
        closes = [await c.get("/close") for _ in range(3)]
        unframed = await c.get("/close-unframed")
    assert (chunked.status_code, chunked.text, chunked.headers["x-kind"]) == (200, "hello world", "chunks")
    assert "transfer-encoding" not in chunked.headers  # hop-by-hop: the gateway's server frames its own answer
    assert [(r.status_code, r.text, r.headers.get("connection")) for r in closes] == [(200, "ok", None)] * 3
    assert (unframed.status_code, unframed.text) == (200, "until the end")
    assert upstream.connections == 4  # /chunked's, reused for the first /close; then one after each close


@pytest.mark.anyio
async def test_an_expect_100_continue_request_is_sent_whole_without_the_expectation(
    scripted: tuple[Gateway, Upstream],
) -> None:
    gw, upstream = scripted
    async with asgi_client(gw.dispatcher) as c:
        echoed = await c.post("/echo", content=b"a" * 3000, headers={"Expect": "100-continue"})
        # an upstream that answers 100 Continue anyway (unasked) is followed to its real answer
        continued = await c.post("/continue", content=b"b" * 10, headers={"Expect": "100-continue"})
    assert (echoed.status_code, echoed.content) == (201, b"a" * 3000)
    assert (continued.status_code, continued.content) == (201, b"b" * 10)
    heads = [head.lower() for head, _ in upstream.requests]
    assert heads and not any(b"\r\nexpect:" in head for head in heads)
    assert [len(body) for _, body in upstream.requests] == [3000, 10]


@pytest.mark.anyio
async def test_an_upstream_hanging_up_mid_headers_is_a_502(scripted: tuple[Gateway, Upstream]) -> None:
    gw, upstream = scripted
    async with asgi_client(gw.dispatcher) as c:
        cut = await c.post("/cut-head", content=b"order=1", headers={"X-Request-ID": "cut-1"})
        after = await c.get("/keep")
    assert cut.status_code == 502
    assert cut.json()["error"] == {"code": "legacy_unreachable", "request_id": "cut-1",
                                   "message": f"cannot reach the legacy server at {upstream.url}"}
    assert [h.split(b" ")[1] for h, _ in upstream.requests] == [b"/cut-head", b"/keep"]  # not sent twice
    assert (after.status_code, after.text) == (200, "ok")


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/cut", "/cut-chunked"])
async def test_an_upstream_hanging_up_mid_body_leaves_the_answer_unfinished(
    scripted: tuple[Gateway, Upstream], caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """The head has gone out by then: what arrived is passed on and the final body message is
    never sent, so the ASGI server closes the client's connection instead of ending the answer
    as if it were whole."""
    from gateway.remote import RemoteLegacy

    _, upstream = scripted
    remote = RemoteLegacy(upstream.url, timeout=2)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"host", b"gw")], "scheme": "http", "client": ("127.0.0.1", 5000)}
    try:
        await remote(scope, receive, send)
    finally:
        await remote.aclose()
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    arrived = {"/cut": b"only part", "/cut-chunked": b"helloonly"}[path]  # a chunk's start too
    assert b"".join(m["body"] for m in sent[1:]) == arrived  # type: ignore[misc]
    assert all(m.get("more_body") for m in sent[1:])
    assert "broke off a response" in caplog.text


@pytest.mark.anyio
async def test_a_tls_legacy_server_is_reached_with_the_ca_the_system_is_told_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSL_CERT_FILE (read by OpenSSL's default verify paths) is how an internal CA is trusted."""
    cert = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert.cert))
    upstream = Upstream(tls=cert.server_context())
    await upstream.start()
    gw = await make_gateway(tmp_path, upstream.url)
    try:
        async with asgi_client(gw.dispatcher) as c:
            answers = [await c.get("/keep"), await c.get("/chunked"), await c.post("/echo", content=b"z" * 100)]
    finally:
        await gw.shutdown()
        await upstream.stop()
    assert [(r.status_code, r.content) for r in answers] == [(200, b"ok"), (200, b"hello world"), (201, b"z" * 100)]
    assert upstream.connections == 1
