"""gateway.compat.wsgi_client: a WSGI caller's request, answered by an ASGI app as a server would."""

from __future__ import annotations

import contextvars
import io
from typing import Any

import pytest
from werkzeug.test import Client, EnvironBuilder

from gateway.compat.wsgi_client import GatewayWSGI, SideChannel, python_state, scope_from_environ


def _environ(**kw: Any) -> dict[str, Any]:
    return EnvironBuilder(**kw).get_environ()


def test_the_scope_is_what_a_server_builds_from_the_same_request() -> None:
    env = _environ(
        path="/caf%C3%A9/a%2Fb", query_string="q=1&x=%20", method="POST", data=b"abc",
        headers={"X-User-Id": "7", "Cookie": "a=b"}, content_type="text/plain",
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    scope = scope_from_environ(env)

    assert scope["method"] == "POST"
    assert scope["path"] == "/café/a/b"  # decoded, as ASGI says; the raw form keeps %2F
    assert scope["raw_path"] == b"/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == b"q=1&x=%20"
    headers = dict(scope["headers"])
    assert headers[b"x-user-id"] == b"7"
    assert headers[b"content-type"] == b"text/plain"
    assert headers[b"content-length"] == b"3"
    assert headers[b"host"] == b"localhost"
    assert scope["client"] == ("10.1.2.3", 0)
    assert scope["server"] == ("localhost", 80)


def test_a_content_type_given_twice_in_the_environ_is_one_header() -> None:
    """Regression: werkzeug 2.0's test client sets CONTENT_TYPE and HTTP_CONTENT_TYPE; sending
    both made gunicorn refuse flasky's API requests with 400 'Invalid HTTP Header'."""
    env = _environ(path="/", headers={"Content-Type": "application/json"}, data=b"{}")
    env["HTTP_CONTENT_TYPE"] = env["CONTENT_TYPE"]
    env["HTTP_CONTENT_LENGTH"] = env["CONTENT_LENGTH"]
    names = [k for k, _ in scope_from_environ(env)["headers"]]
    assert names.count(b"content-type") == 1
    assert names.count(b"content-length") == 1


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    body = (await receive())["body"]
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-path", scope["path"].encode())]})
    for part in (b"got:", body):  # streamed in two messages
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def test_a_request_goes_through_and_its_streamed_answer_comes_back_whole() -> None:
    wsgi = GatewayWSGI(_echo)
    try:
        response = Client(wsgi).post("/x", data=b"hello")
        assert response.status == "201 Created"
        assert response.headers["x-path"] == "/x"
        assert response.data == b"got:hello"
    finally:
        wsgi.close()


def test_settling_is_over_before_the_caller_goes_on_even_if_it_never_reads_the_body() -> None:
    """Regression: a test checking only a redirect's Location never read the body, so it made
    its next request (and deleted its database) while the last one's shadow copy still ran."""
    import asyncio

    settled: list[bool] = []

    async def settle() -> None:
        await asyncio.sleep(0.05)
        settled.append(True)

    wsgi = GatewayWSGI(_echo, settle=settle)
    try:
        environ = _environ(path="/x", method="POST", data=b"hi")
        wsgi(environ, lambda *a: None)  # the answer's body is never iterated
        assert settled == [True]
    finally:
        wsgi.close()


CALLER_STATE: contextvars.ContextVar[str] = contextvars.ContextVar("caller_state")


def test_the_callers_context_variables_never_reach_the_app() -> None:
    """Regression: a unittest's setUp pushed a Flask app context (a context variable); the
    request tasks copied it, so every request reused that app context and its `g` (flasky's
    logged-in user, loaded in another thread's SQLAlchemy session: 'already attached')."""
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _echo(scope, receive, send)
            return
        seen.append(CALLER_STATE.get("unset"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    CALLER_STATE.set("the test's app context")
    wsgi = GatewayWSGI(app)
    try:
        Client(wsgi).get("/")
        assert seen == ["unset"]
    finally:
        wsgi.close()


def test_python_state_travels_by_token_and_never_overwrites_the_server_environ() -> None:
    channel = SideChannel()
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [])
        return [b""]

    env = _environ(path="/")
    env["werkzeug.debug.preserve_context"] = hook = object()
    env["REMOTE_ADDR"] = "1.2.3.4"
    state = python_state(env)
    assert "werkzeug.debug.preserve_context" in state
    assert not any(k.startswith(("HTTP_", "wsgi.")) or k == "REMOTE_ADDR" for k in state)
    token = channel.put(state)
    server_env = {"HTTP_X_GATEWAY_COMPAT_TOKEN": token, "PATH_INFO": "/from-server"}
    channel.wrap(app)(server_env, lambda *a: None)
    assert seen["werkzeug.debug.preserve_context"] is hook
    assert seen["PATH_INFO"] == "/from-server"
    assert "HTTP_X_GATEWAY_COMPAT_TOKEN" not in seen  # the app never sees the token header


def test_a_shadow_copy_of_the_request_gets_none_of_the_callers_python_state() -> None:
    """Regression: shadow copies carry the request's token too; Flask's context hook reaching
    them pushed the shadow run's request context into the test's `with client:` block."""
    channel = SideChannel()
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        return []

    token = channel.put({"werkzeug.debug.preserve_context": object()})
    channel.wrap(app)({"HTTP_X_GATEWAY_COMPAT_TOKEN": token, "HTTP_X_GATEWAY_SHADOW": "read"}, lambda *a: None)
    assert "werkzeug.debug.preserve_context" not in seen
    assert "HTTP_X_GATEWAY_COMPAT_TOKEN" not in seen


def test_an_app_that_answers_nothing_is_an_error_naming_the_request() -> None:
    async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _echo(scope, receive, send)

    wsgi = GatewayWSGI(silent)
    try:
        with pytest.raises(RuntimeError, match="the gateway sent no answer to GET /nothing"):
            Client(wsgi).get("/nothing")
    finally:
        wsgi.close()


def test_a_gateway_that_fails_to_start_says_why() -> None:
    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no store"})

    with pytest.raises(RuntimeError, match="the gateway did not start: no store"):
        GatewayWSGI(broken)


def test_a_closed_gateway_refuses_requests() -> None:
    wsgi = GatewayWSGI(_echo)
    wsgi.close()
    with pytest.raises(RuntimeError, match="this gateway has been closed"):
        wsgi({"REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}, lambda *a: None)
