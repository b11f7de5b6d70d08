"""Apps that fail on purpose, for the fault tests: a native (ASGI) app with one fault per path,
a legacy (WSGI) app answering the same paths correctly, a TCP server that closes the socket
mid-response, and the demo's native app with its database out of reach.

Every path is `/f/<fault>`. Both sides answer `ok` with the same bytes, so a comparison that
differs is the fault's doing. The legacy faults:

    block         waits for LEGACY_GATE (in-process tests hold the pool's threads with it)
    lslow         the right answer after FAULTY_LEGACY_SLOW_S seconds (1 by default)
    crash         raises before answering
    crash_midway  starts a 200 and raises after its first chunk

The native faults:

    ok       the right answer
    raise    raises before answering
    hang     never answers
    slow     the right answer after FAULTY_SLOW_S seconds (2 by default)
    5xx      500 with a JSON error
    badjson  200, `application/json`, a body that is not JSON
    huge     200 with a JSON body of HUGE_BYTES (over the shadow limit the tests set)
    break    starts a 200 and breaks off mid-body (what a dropped upstream looks like in ASGI)
    close    proxies to FAULTY_UPSTREAM_URL: a real server that closes the connection mid-response
    random   the right answer plus a field of a random name: a new kind of difference each time
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

HUGE_BYTES = 2 * 1024 * 1024
JSON = [(b"content-type", b"application/json")]


def good_body(fault: str) -> bytes:
    return json.dumps({"item": fault, "n": 1}).encode()


LEGACY_GATE = threading.Event()


def _midway(first: bytes) -> Iterator[bytes]:
    yield first
    raise RuntimeError("legacy raised on purpose, mid-answer")


def legacy_app(environ: dict[str, Any], start_response: Any) -> Any:
    fault = environ["PATH_INFO"].rsplit("/", 1)[-1]
    if fault == "crash":
        raise RuntimeError("legacy raised on purpose")
    if fault == "crash_midway":
        start_response("200 OK", [("Content-Type", "application/json")])
        return _midway(b'{"item": "crash_midway", ')
    if fault == "block":
        LEGACY_GATE.wait(10)
    if fault == "lslow":
        time.sleep(float(os.environ.get("FAULTY_LEGACY_SLOW_S", "1")))
    body = good_body(fault)
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [*JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def native_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = "startup" if message["type"] == "lifespan.startup" else "shutdown"
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    fault = scope["path"].rsplit("/", 1)[-1]
    if fault == "raise":
        raise RuntimeError("faulty native raised on purpose")
    if fault == "hang":
        await asyncio.Event().wait()
    if fault == "slow":
        await asyncio.sleep(float(os.environ.get("FAULTY_SLOW_S", "2")))
    if fault == "5xx":
        await _answer(send, 500, b'{"error": {"code": "internal_error", "message": "faulty native 500"}}')
        return
    if fault == "badjson":
        await _answer(send, 200, b'{"item": "badjson", "n": ')
        return
    if fault == "huge":
        chunk = b" " * 65536
        headers = [*JSON, (b"content-length", str(HUGE_BYTES).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"[]", "more_body": True})
        for _ in range((HUGE_BYTES - 2) // len(chunk)):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b" " * ((HUGE_BYTES - 2) % len(chunk))})
        return
    if fault == "break":
        headers = [*JSON, (b"content-length", b"1000")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"item": "br', "more_body": True})
        raise ConnectionResetError("faulty native: upstream closed the connection mid-response")
    if fault == "close":
        await _proxy(os.environ["FAULTY_UPSTREAM_URL"] + scope["path"], send)
        return
    if fault == "random":
        await _answer(send, 200, json.dumps({"item": fault, "n": 1, f"k{uuid.uuid4().hex[:12]}": 1}).encode())
        return
    await _answer(send, 200, good_body(fault))


async def _proxy(url: str, send: Any) -> None:
    """A new side that fetches its answer from another server and streams it on, as thin
    proxies do: when the upstream breaks off, so does this answer (it raises mid-body)."""
    async with httpx.AsyncClient() as client, client.stream("GET", url) as response:
        headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"transfer-encoding"]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def features_without_database() -> Any:
    """The demo's native app, its DATABASE_URL replaced by FAULTY_NATIVE_DATABASE_URL (a dead
    port, a directory that does not exist) while the legacy side keeps the real one."""
    from features.core.settings import Settings
    from features.main import create_app

    return create_app(Settings(database_url=os.environ["FAULTY_NATIVE_DATABASE_URL"]))


class ClosingServer:
    """An HTTP/1.1 server on 127.0.0.1 that reads a request, sends a 200 whose headers promise
    `length` bytes, sends `sent` of them and closes the socket: a backend dying mid-response.
    With `sent=None` it closes before sending anything."""

    def __init__(self, *, length: int = 1000, sent: int | None = 12) -> None:
        self.length, self.sent = length, sent
        self.requests = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.requests += 1
            if self.sent is not None:
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {self.length}\r\n\r\n"
                ).encode()
                conn.sendall(head + b'{"item": "close", "n": 1, "pad": "'[: self.sent].ljust(self.sent, b" "))
            conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone does not
        self._sock.close()


@contextmanager
def closing_server(**kwargs: Any) -> Iterator[ClosingServer]:
    server = ClosingServer(**kwargs)
    try:
        yield server
    finally:
        server.close()


class TcpForwarder:
    """A port that forwards to `target` while up and refuses connections while down: a
    database server that goes away (its connections cut) and comes back on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone does not
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: down
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
