"""ASGI plumbing for shadow traffic: read a request body once, replay it, capture a response."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from gateway.asgi import ASGIApp, Message, Receive, Scope
from gateway.exchange import Capture, CapturedRequest

SHADOW_HEADER = b"x-gateway-shadow"
SHADOW_SCOPE_KEY = "gateway.shadow"


@dataclass(slots=True)
class RequestBody:
    chunks: list[bytes]
    complete: bool  # the whole body was read, within the limit
    disconnected: bool = False

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


async def read_body(receive: Receive, limit: int) -> RequestBody:
    """Read the body once, so both sides get the same bytes; stop past `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return RequestBody(chunks, False, disconnected=True)
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            return RequestBody(chunks, size <= limit)
        if size > limit:
            return RequestBody(chunks, False)


def replay(body: RequestBody, then: Receive | None) -> Receive:
    """A `receive` giving the buffered body, then the rest from `then` (the real client).

    Without a client (a shadow copy) nothing more ever arrives: the call ends by itself or
    by its timeout, never by a fake disconnect that would cut a streaming answer short.
    """
    pending = deque(body.chunks or [b""])

    async def receive() -> Message:
        if pending:
            chunk = pending.popleft()
            return {"type": "http.request", "body": chunk, "more_body": bool(pending) or not body.complete}
        if then is not None:
            return await then()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


@dataclass(slots=True)
class ResponseCapture:
    """Records a response as it is sent, keeping at most `limit` body bytes."""

    limit: int
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    complete: bool = False

    def feed(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = tuple(
                (bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
                for k, v in message.get("headers", ())
            )
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            if not self.truncated:
                if len(self.body) + len(chunk) > self.limit:
                    self.truncated = True
                    self.body.clear()  # a truncated body is never compared: do not keep it
                else:
                    self.body.extend(chunk)
            if not message.get("more_body"):
                self.complete = True

    async def send(self, message: Message) -> None:
        self.feed(message)

    def result(self) -> Capture:
        return Capture(self.status, self.headers, bytes(self.body), self.truncated)


def captured_request(scope: Scope, body: bytes) -> CapturedRequest:
    return CapturedRequest(
        method=scope["method"],
        path=scope["path"],
        query=bytes(scope.get("query_string", b"")).decode("latin-1"),
        headers=tuple(
            (bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in scope.get("headers", ())
        ),
        body=body,
    )


def shadow_scope(scope: Scope, mode: str) -> Scope:
    """The copy a shadow side receives: the same request id, marked as a shadow."""
    copy = dict(scope)
    copy["headers"] = [*scope["headers"], (SHADOW_HEADER, mode.encode())]
    copy[SHADOW_SCOPE_KEY] = mode
    if "state" in scope:
        copy["state"] = dict(scope["state"])
    return copy


def replay_bytes(body: bytes) -> Receive:
    """A shadow copy's `receive`: the whole body, then nothing more, ever."""
    return replay(RequestBody([body], True), None)


async def run_copy(
    app: ASGIApp, scope: Scope, body: bytes, timeout_ms: int, max_body_bytes: int
) -> tuple[Capture | None, float, str | None]:
    """One side on a copy of a request, in the caller's task (asyncio.timeout, not wait_for:
    the steps stay the caller's, which the shadow budget's meter counts): the answer and the
    milliseconds it took, or None and why there is no answer. Failures are returned, never raised."""
    capture = ResponseCapture(max_body_bytes)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            await app(scope, replay_bytes(body), capture.send)
    except TimeoutError:
        return None, _ms(started), f"timeout after {timeout_ms} ms"
    except Exception as exc:
        return None, _ms(started), f"{type(exc).__name__}: {exc}"[:300]
    if not capture.complete:
        return None, _ms(started), "no complete response"
    return capture.result(), _ms(started), None


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
