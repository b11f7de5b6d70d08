"""Small legacy (WSGI) and native (ASGI) apps for driving the gateway without the demo."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

# state the tests inspect: how far a stream got and whether its iterable was closed
STREAM_STATE: dict[str, Any] = {"produced": 0, "closed": threading.Event()}
GATE = threading.Event()  # /block waits on it


class _Stream:
    def __init__(self, rows: int, delay: float) -> None:
        self.rows, self.delay = rows, delay

    def __iter__(self) -> Iterator[bytes]:
        for i in range(self.rows):
            time.sleep(self.delay)
            STREAM_STATE["produced"] = i + 1
            yield f"row {i}\n".encode()

    def close(self) -> None:
        STREAM_STATE["closed"].set()


def legacy_app(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ["PATH_INFO"]
    if path == "/echo":
        # read the body the way Werkzeug does for chunked input: until EOF, only when terminated
        stream = environ["wsgi.input"]
        if environ.get("wsgi.input_terminated"):
            body = stream.read()
        else:
            body = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
        payload = {
            "length": len(body),
            "request_id": environ.get("HTTP_X_REQUEST_ID"),
            "terminated": bool(environ.get("wsgi.input_terminated")),
        }
        out = json.dumps(payload).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [out]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _Stream(rows=200, delay=0.01)
    if path == "/block":
        GATE.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"unblocked"]
    if path == "/whoami":  # what the side was told about the request
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"request_id": environ.get("HTTP_X_REQUEST_ID"), "shadow": environ.get("HTTP_X_GATEWAY_SHADOW")}).encode()]
    if path == "/token":  # a field that differs on every call, on either side
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"token": uuid.uuid4().hex, "value": 1}).encode()]
    if path == "/crash":
        raise RuntimeError("legacy blew up")
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Served-By", "spoofed")])
    return [f"legacy {environ['REQUEST_METHOD']} {path}".encode()]


async def native_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["native_started"] = True
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["method"] == "HEAD":  # like a FastAPI GET route: HEAD is not allowed
        await send({"type": "http.response.start", "status": 405, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/fail500":
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"native broke"})
        return
    if scope["path"] == "/raise":
        raise RuntimeError("native raised")
    if scope["path"] == "/hang":
        await asyncio.sleep(30)
    if scope["path"] == "/whoami":
        h = dict(scope["headers"])
        who = {"request_id": h.get(b"x-request-id", b"").decode() or None, "shadow": (h.get(b"x-gateway-shadow") or b"").decode() or None}
        if b"x-gateway-token" in h or b"x-gateway-backend" in h:
            who["leaked"] = "override headers reached the backend"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(who).encode()})
        return
    if scope["path"] == "/token":
        token = json.dumps({"token": uuid.uuid4().hex, "value": 1}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": token})
        return
    headers = dict(scope["headers"])
    body = json.dumps({
        "side": "native",
        "path": scope["path"],
        "request_id": headers.get(b"x-request-id", b"").decode(),
    }).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def native_factory() -> Any:
    return native_app
