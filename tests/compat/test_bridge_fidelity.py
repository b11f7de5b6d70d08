"""What real Flask apps lean on, answered the same directly and through the gateway (both modes).

One Flask app uses each thing the compatibility issue lists (streamed and chunked answers,
uploads, cookies with Path/SameSite, url_for building absolute URLs, redirects, remote_addr
and X-Forwarded-* behind ProxyFix, before_request hooks, HTML error pages, HEAD, odd paths);
each request is made with Flask's test client against the app itself, and again against the
gateway in front of it: in-process (the bridge) and remote (gunicorn behind the gateway's
HTTP client). Status, headers and body must be the same, less what a server adds.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, abort, make_response, redirect, request, stream_with_context, url_for
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client

from gateway.compat.pytest_plugin import _Served

# added by a server or by the gateway, never by the app
_SERVER_HEADERS = {"date", "server", "x-request-id", "connection", "keep-alive"}


def fidelity_app(proxies: int = 1) -> Flask:
    app = Flask(__name__)
    app.secret_key = "fidelity"
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=1, x_host=1)  # type: ignore[method-assign]

    @app.before_request
    def gate() -> Any:
        if request.headers.get("X-Block") == "yes":
            return Response("blocked by before_request\n", status=403)
        return None

    @app.get("/stream")
    def stream() -> Response:
        def parts() -> Iterator[str]:
            for i in range(5):
                yield f"part {i} of {request.args.get('n', '?')}\n"  # needs the request context

        return Response(stream_with_context(parts()), mimetype="text/plain")

    @app.post("/echo")
    def echo() -> Any:
        data = request.get_data()
        return {
            "length": len(data),
            "sha": hashlib.sha256(data).hexdigest(),
            "content_type": request.content_type,
        }

    @app.post("/upload")
    def upload() -> Any:
        f = request.files["file"]
        return {"name": f.filename, "size": len(f.read()), "field": request.form.get("note")}

    @app.get("/cookies")
    def cookies() -> Response:
        r = make_response("cookies\n")
        r.set_cookie("a", "1", path="/cookies", samesite="Lax", httponly=True)
        r.set_cookie("b", "two words", max_age=60, samesite="Strict", secure=True)
        r.set_cookie("gone", "", expires=0)
        return r

    @app.get("/whoami")
    def whoami() -> Any:
        return {
            "remote_addr": request.remote_addr,
            "scheme": request.scheme,
            "host": request.host,
            "url": request.url,
            "external": url_for("whoami", q="x y", _external=True),
        }

    @app.get("/go")
    def go() -> Response:
        return redirect(url_for("whoami"))

    @app.get("/go-external")
    def go_external() -> Response:
        return redirect(url_for("whoami", _external=True), code=301)

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("boom")

    @app.get("/missing")
    def missing() -> Any:
        abort(404)

    @app.errorhandler(404)
    def not_found(e: Any) -> Any:
        return "<html><body><h1>Nothing here</h1></body></html>", 404

    @app.get("/path/<path:rest>")
    def path(rest: str) -> Any:
        return {"rest": rest, "path": request.path, "full": request.full_path, "args": request.args.to_dict()}

    @app.get("/session")
    def session_view() -> Any:
        from flask import session

        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"]}

    @app.get("/empty")
    def empty() -> Response:
        return Response(status=204)

    return app


CASES: list[tuple[str, dict[str, Any]]] = [
    ("GET /stream?n=5", {"method": "GET", "path": "/stream", "query_string": "n=5"}),
    ("HEAD /stream", {"method": "HEAD", "path": "/stream"}),
    (
        "POST /echo binary",
        {
            "method": "POST",
            "path": "/echo",
            "data": bytes(range(256)) * 40,
            "content_type": "application/octet-stream",
        },
    ),
    ("POST /echo empty", {"method": "POST", "path": "/echo"}),
    ("POST /upload", {"method": "POST", "path": "/upload", "upload": True}),
    ("GET /cookies", {"method": "GET", "path": "/cookies"}),
    ("GET /whoami", {"method": "GET", "path": "/whoami"}),
    (
        "GET /whoami behind a proxy",
        {
            "method": "GET",
            "path": "/whoami",
            "headers": {
                "X-Forwarded-For": "203.0.113.9",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "shop.example",
            },
        },
    ),
    ("GET /go", {"method": "GET", "path": "/go"}),
    ("GET /go-external", {"method": "GET", "path": "/go-external"}),
    ("GET /boom", {"method": "GET", "path": "/boom"}),
    ("GET /missing", {"method": "GET", "path": "/missing"}),
    ("GET /no-such-rule", {"method": "GET", "path": "/no-such-rule"}),
    ("POST /whoami (405)", {"method": "POST", "path": "/whoami"}),
    ("GET blocked", {"method": "GET", "path": "/whoami", "headers": {"X-Block": "yes"}}),
    (
        "GET /path unicode",
        {"method": "GET", "path": "/path/caf\u00e9/%2F/a b", "query_string": "x=%C3%A9&x=2&y="},
    ),
    ("GET /empty", {"method": "GET", "path": "/empty"}),
]


def _answer(client: Client, case: dict[str, Any]) -> dict[str, Any]:
    case = dict(case)
    if case.pop("upload", False):  # a file object is read once: a new one per request
        case["data"] = {"file": (io.BytesIO(b"x" * 70_000), "r\u00e9sum\u00e9.pdf"), "note": "hi"}
    # as Flask's own test client does (werkzeug's leaves REMOTE_ADDR out)
    response = client.open(**case, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    headers = sorted((k.lower(), v) for k, v in response.headers.items() if k.lower() not in _SERVER_HEADERS)
    body = response.get_data()
    return {"status": response.status_code, "headers": headers, "body": body}


class Through(Client):
    mode: str


def _through(mode: str, app: Flask, workdir: Path) -> Iterator[Through]:
    if mode == "remote" and not _has_gunicorn():
        problem = "gunicorn is not installed: pip install -e '.[dev]'"
        if os.environ.get("CI") == "true":  # CI installs the dev extra: a skip there hides a broken install
            pytest.fail(problem)
        pytest.skip(problem)
    served = _Served(mode, app, Flask.__call__, workdir)
    try:
        client = Through(served.wsgi)
        client.mode = mode
        yield client
    finally:
        served.close()


@pytest.fixture(scope="module", params=["inprocess", "remote"])
def through(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Through]:
    yield from _through(request.param, fidelity_app(), Path(tmp_path_factory.mktemp(request.param)))


def _has_gunicorn() -> bool:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize(("name", "case"), CASES, ids=[c[0] for c in CASES])
def test_the_answer_through_the_gateway_is_the_answer_direct(
    through: Client, name: str, case: dict[str, Any]
) -> None:
    direct = _answer(Client(fidelity_app()), case)
    gateway = _answer(through, case)
    if case["path"] == "/upload":  # the generated multipart boundary differs between two requests
        assert (
            json.loads(gateway["body"])
            == json.loads(direct["body"])
            == {"name": "r\u00e9sum\u00e9.pdf", "size": 70_000, "field": "hi"}
        )
        return
    if through.mode == "remote" and "headers" in case and "X-Forwarded-For" in case["headers"]:
        # remote mode is one more proxy: ProxyFix(x_for=1) now trusts the gateway's entry, the
        # caller's address; ProxyFix(x_for=2) gives the client again (the next test)
        assert json.loads(gateway["body"]) == {**json.loads(direct["body"]), "remote_addr": "127.0.0.1"}
        return
    assert gateway == direct


def test_in_remote_mode_counting_the_gateway_as_a_proxy_gives_the_client_address(
    tmp_path: Path,
) -> None:
    case = CASES[[name for name, _ in CASES].index("GET /whoami behind a proxy")][1]
    direct = _answer(Client(fidelity_app(proxies=1)), case)
    for client in _through("remote", fidelity_app(proxies=2), tmp_path):
        assert _answer(client, case) == direct
        assert json.loads(direct["body"])["remote_addr"] == "203.0.113.9"


def test_a_session_cookie_round_trips_through_the_gateway(through: Through) -> None:
    assert [json.loads(through.get("/session").get_data())["n"] for _ in range(3)] == [1, 2, 3]
