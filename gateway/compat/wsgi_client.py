"""A WSGI face for a running gateway: each WSGI call becomes one HTTP request through its ASGI app.

A Flask app's own test suite talks WSGI (its test client, WebTest). Handing that suite this
callable instead of the app sends every request of the suite through the gateway's whole
request path (dispatcher, bridge or remote client, observers), on an event loop of its own
in a background thread, with the gateway's lifespan run once at start and at close, as a
server would.

The environ is turned into an ASGI scope the way an HTTP server would build one from the same
request; whatever only the test client can carry (Python objects in the environ, such as
Flask's context-preservation hook) travels beside it under a token (`side_channel`), since
no HTTP server can put it on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any
from urllib.parse import quote

from gateway.asgi import ASGIApp, Message, Scope
from gateway.shadow_io import SHADOW_HEADER

SIDE_CHANNEL_HEADER = "x-gateway-compat-token"
_SIDE_CHANNEL_ENVIRON = "HTTP_X_GATEWAY_COMPAT_TOKEN"
_SHADOW_ENVIRON = "HTTP_" + SHADOW_HEADER.decode().upper().replace("-", "_")
# environ keys an HTTP server derives from the request itself; anything else the caller put
# into the environ is Python state for the app, carried by the side channel
_CGI_KEYS = frozenset(
    {
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "REQUEST_URI",
        "RAW_URI",
        "SERVER_SOFTWARE",
        "GATEWAY_INTERFACE",
    }
)
_RESPONSE_WAIT = 120.0  # seconds; a request through the gateway that takes longer is a hang


def scope_from_environ(environ: dict[str, Any]) -> Scope:
    """The ASGI scope an HTTP server would give for the request this environ describes."""
    path_info: str = environ.get("PATH_INFO", "") or ""
    path_bytes = path_info.encode("latin-1")  # WSGI keeps the raw bytes as latin-1 text
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    # what an HTTP client puts on the request line: the caller's own escapes (%2F stays %2F),
    # and whatever a request line cannot carry (spaces, non-ASCII) percent-encoded
    raw = raw_uri.partition("?")[0].encode("latin-1") if raw_uri else path_bytes
    raw_path = quote(raw, safe="/%:@!$&'()*+,;=~").encode()
    headers: list[tuple[bytes, bytes]] = []
    for key, value in environ.items():
        if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            continue  # werkzeug 2.0's test client sets both forms; a server sends the header once
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").lower()
        else:
            continue
        if value == "" and name in ("content-type", "content-length"):
            continue
        headers.append((name.encode("latin-1"), str(value).encode("latin-1")))
    protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": protocol.partition("/")[2] or "1.1",
        "method": environ.get("REQUEST_METHOD", "GET").upper(),
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": path_bytes.decode("utf-8", "surrogateescape"),
        "raw_path": raw_path,
        "root_path": environ.get("SCRIPT_NAME", ""),
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "client": (environ.get("REMOTE_ADDR", "127.0.0.1"), int(environ.get("REMOTE_PORT") or 0)),
        "server": (environ.get("SERVER_NAME", "localhost"), int(environ.get("SERVER_PORT") or 80)),
        "state": {},
    }


def read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        return bytes(stream.read(int(length)))
    if environ.get("wsgi.input_terminated"):
        return bytes(stream.read())
    return b""


def python_state(environ: dict[str, Any]) -> dict[str, Any]:
    """What the caller put into the environ that is not part of the HTTP request."""
    return {k: v for k, v in environ.items() if not (k in _CGI_KEYS or k.startswith(("HTTP_", "wsgi.")))}


class SideChannel:
    """Carries the environ's Python state from the WSGI caller to the legacy app, by token."""

    def __init__(self) -> None:
        self._pending: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def put(self, state: dict[str, Any]) -> str:
        token = str(next(self._ids))
        with self._lock:
            self._pending[token] = state
        return token

    def discard(self, token: str) -> None:
        with self._lock:
            self._pending.pop(token, None)

    def wrap(self, app: Callable[..., Any]) -> Callable[..., Any]:
        """The legacy app, given back the state of the request that its environ's token names."""

        def with_state(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            token = environ.pop(_SIDE_CHANNEL_ENVIRON, None)
            # a shadow copy (or an owner rerun for noise) is the gateway's own request: the
            # caller's hooks (Flask pushing the request's context into the test) are not for it
            if token is not None and _SHADOW_ENVIRON not in environ:
                with self._lock:
                    state = self._pending.get(token)
                if state:
                    # never over what the server built: only keys it does not have
                    for key, value in state.items():
                        environ.setdefault(key, value)
            return app(environ, start_response)

        return with_state


class GatewayWSGI:
    """Serves WSGI calls through `app` (a gateway's ASGI app) on a loop thread of its own."""

    def __init__(
        self,
        app: ASGIApp,
        side_channel: SideChannel | None = None,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._app = app
        self._side_channel = side_channel
        # awaited after each answer, before the caller sees it: e.g. until the request's shadow
        # copy has run, so that a suite's next request cannot change what the copy reads
        self._settle = settle
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="gateway-compat-loop", daemon=True
        )
        self._thread.start()
        self._lifespan_in: asyncio.Queue[Message] | None = None
        self._lifespan_out: queue.Queue[Message] = queue.Queue()
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._start_lifespan()

    def _start_lifespan(self) -> None:
        async def run() -> None:
            self._lifespan_in = asyncio.Queue()
            inbox = self._lifespan_in

            async def send(message: Message) -> None:
                self._lifespan_out.put(message)

            scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
            await inbox.put({"type": "lifespan.startup"})
            await self._app(scope, inbox.get, send)

        self._spawn(run)
        answer = self._lifespan_out.get(timeout=_RESPONSE_WAIT)
        if answer["type"] != "lifespan.startup.complete":
            self._stop_loop()
            raise RuntimeError(f"the gateway did not start: {answer.get('message', answer['type'])}")

    def _spawn(self, coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start `coro` on the loop in an empty context, as a server's request task starts.

        run_coroutine_threadsafe would copy the *caller's* context variables into the task,
        and through the bridge into the app: a test's pushed Flask app context then became
        every request's (its `g` shared by requests on other threads)."""

        def start() -> None:
            task = self._loop.create_task(coro())
            self._tasks.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)

        self._loop.call_soon_threadsafe(start, context=contextvars.Context())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        inbox = self._lifespan_in
        if inbox is not None:
            self._loop.call_soon_threadsafe(inbox.put_nowait, {"type": "lifespan.shutdown"})
            with contextlib.suppress(queue.Empty):
                self._lifespan_out.get(timeout=_RESPONSE_WAIT)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        if self._closed:
            raise RuntimeError("this gateway has been closed")
        scope = scope_from_environ(environ)
        token = None
        if self._side_channel is not None:
            token = self._side_channel.put(python_state(environ))
            scope["headers"].append((SIDE_CHANNEL_HEADER.encode(), token.encode()))
        body = read_body(environ)
        out: queue.Queue[Message | BaseException] = queue.Queue()
        done = asyncio.Event()  # set on the loop when the caller stops reading the answer

        async def receive() -> Message:
            nonlocal body
            if body is not None:
                chunk, body = body, None  # type: ignore[assignment]
                return {"type": "http.request", "body": chunk, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            out.put(message)

        async def serve() -> None:
            try:
                await self._app(scope, receive, send)
                if self._settle is not None:
                    await self._settle()
            except BaseException as exc:  # the caller re-raises it in its own thread
                out.put(exc)
                raise
            finally:
                out.put({"type": "compat.done"})

        self._spawn(serve)

        def next_message() -> Message:
            item = out.get(timeout=_RESPONSE_WAIT)
            if isinstance(item, BaseException):
                raise item
            return item

        try:
            start = next_message()
            while start["type"] not in ("http.response.start", "compat.done"):
                start = next_message()
            if start["type"] == "compat.done":
                raise RuntimeError(f"the gateway sent no answer to {scope['method']} {scope['path']}")
        except BaseException:
            self._finish(done, token)
            raise
        status = int(start["status"])
        reason = _REASONS.get(status, "")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])]
        start_response(f"{status} {reason}".rstrip(), headers)
        body_iter = self._body(next_message, done, token)
        if self._settle is None:
            return body_iter
        # settling must be over before the caller goes on, even one that never reads the body
        # (a test client checking only a redirect's Location): so read it all here
        return iter([b"".join(body_iter)])

    def _body(
        self, next_message: Callable[[], Message], done: asyncio.Event, token: str | None
    ) -> Iterator[bytes]:
        try:
            while True:
                message = next_message()
                if message["type"] == "http.response.body":
                    chunk = message.get("body", b"")
                    if chunk:
                        yield chunk
                    if not message.get("more_body", False):
                        break
                elif message["type"] == "compat.done":
                    return
            # the answer is complete: as a server would, tell the app the exchange is over, and
            # hold the caller until the app has returned (and settled)
            self._loop.call_soon_threadsafe(done.set)
            while next_message()["type"] != "compat.done":
                pass
        finally:
            self._finish(done, token)

    def _finish(self, done: asyncio.Event, token: str | None) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(done.set)
        if token is not None and self._side_channel is not None:
            self._side_channel.discard(token)


def _reasons() -> dict[int, str]:
    from http import HTTPStatus

    return {s.value: s.phrase for s in HTTPStatus}


_REASONS = _reasons()
