"""The legacy side's common case in one thread hop: a request whose body has a known length.

a2wsgi (gateway.bridge's other path) runs the WSGI app on a worker thread and hands every
message back to the event loop as it is produced, blocking the thread until the loop has
taken it: the status and headers, each body chunk, the end, and every read of the request
body, each a round trip between threads. For a small JSON answer that is four hops, and
they cost more than the Flask view. Here the request body (at most MAX_BODY bytes, its
length declared) is read on the loop first; the thread runs the app and, when the answer
declares a Content-Length of at most MAX_BODY, collects the whole body before it returns:
one hop there, one back. An answer without a length (a stream) is handed back after its
headers and pulled chunk by chunk, each on the same thread pool, stopping when the client
leaves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import io
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from a2wsgi.wsgi import build_environ

from gateway.asgi import Message, Receive, Scope, Send

MAX_BODY = 1024 * 1024
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_END = object()


class ClientGone(Exception):
    """Raised on the worker thread to stop producing for a client that has left."""


def takes_fast_path(scope: Scope) -> bool:
    """True when the request body's length is known and small: no chunked upload."""
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding":
            return False
        if name == b"content-length":
            return value.isdigit() and int(value) <= MAX_BODY
    return True


@dataclass(slots=True)
class _Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: list[bytes] = field(default_factory=list)  # all of it, or what came before a stream
    rest: Iterator[bytes] | None = None  # the stream still to pull
    iterable: Iterable[bytes] | None = None  # to close once the stream is done


def _call(app: WSGIApp, environ: dict[str, Any], gone: threading.Event) -> _Answer:
    """Worker thread: run the app, and collect the body if its length is declared and small."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])  # nothing sent yet: the app may retry once
        started[:] = [(status, headers)]
        return written.append  # the legacy write() callable

    iterable = app(environ, start_response)
    try:
        chunks = iter(iterable)
        first = next(chunks, _END) if not started else None  # start_response may wait for the first chunk
        if not started:
            raise RuntimeError("the WSGI app returned without calling start_response")
        status, raw_headers = started[0]
        headers = [(k.strip().lower().encode("latin-1"), v.strip().encode("latin-1")) for k, v in raw_headers]
        body = written
        if first is not None and first is not _END:
            body.append(first)  # type: ignore[arg-type]
        length = next((v for k, v in headers if k == b"content-length"), None)
        answer = _Answer(int(status.split(" ", 1)[0]), headers, body)
        small = length is not None and length.isdigit() and int(length) <= MAX_BODY
        if (small or isinstance(iterable, (list, tuple))) and first is not _END:  # finite, and in hand
            for chunk in chunks:
                if gone.is_set():
                    raise ClientGone
                body.append(chunk)
        elif first is not _END:
            answer.rest, answer.iterable = chunks, iterable
            return answer  # closed by the stream's end
    except BaseException:
        _close(iterable)
        raise
    _close(iterable)
    return answer


def _pull(chunks: Iterator[bytes]) -> bytes | object:
    return next(chunks, _END)


def _close(iterable: Iterable[bytes]) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class FastResponder:
    """One request through the fast path; the bridge's admission and shutdown stay the same."""

    def __init__(self, app: WSGIApp, executor: concurrent.futures.ThreadPoolExecutor) -> None:
        self.app = app
        self.executor = executor
        self.disconnected = threading.Event()
        self.response_started = False
        # every call on the thread pool for this request runs in one context: an app that
        # keeps state in context variables (Flask's stream_with_context) finds it again
        # when its stream is pulled and closed later, from whichever thread
        self.context = contextvars.copy_context()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._read_body(receive)
        if body is None:
            return  # the client left before sending its body
        environ: dict[str, Any] = dict(build_environ(scope, io.BytesIO(body)))  # type: ignore[arg-type]
        environ["wsgi.input_terminated"] = True
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(
            self.executor, self.context.run, _call, self.app, environ, self.disconnected
        )
        self.response_started = True
        try:
            await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
            if answer.rest is None:
                await send({"type": "http.response.body", "body": b"".join(answer.body)})
                return
            for chunk in answer.body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await self._stream(answer.rest, receive, send, loop)
        except OSError:  # a server may raise on send once the client has gone
            self.disconnected.set()
        finally:
            if answer.iterable is not None:
                try:
                    await loop.run_in_executor(self.executor, self.context.run, _close, answer.iterable)
                except RuntimeError:  # no pool any more: close it here
                    self.context.run(_close, answer.iterable)

    async def _read_body(self, receive: Receive) -> bytes | None:
        parts: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                return None
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(parts)

    async def _stream(
        self, rest: Iterator[bytes], receive: Receive, send: Send, loop: asyncio.AbstractEventLoop
    ) -> None:
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            while not self.disconnected.is_set():
                try:
                    pulled = loop.run_in_executor(self.executor, self.context.run, _pull, rest)
                except RuntimeError:  # the pool was shut down (a shutdown that ran out of time)
                    self.disconnected.set()
                    break
                # awaited outside that `try`: the app's own RuntimeError mid-stream is its failure,
                # to raise like any other, not a pool shut down (that would end the answer silently)
                chunk = await pulled
                if chunk is _END or self.disconnected.is_set():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not self.disconnected.is_set():
                await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()

    async def _watch(self, receive: Receive) -> None:
        """A streamed answer: listen for the client leaving, so the thread stops producing."""
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                return
