"""The legacy side in-process: a WSGI app through a2wsgi, hardened for production.

a2wsgi alone (see DESIGN.md) queues requests on its thread pool without bound, keeps a
streaming thread running after the client has gone, and hands chunked uploads to Werkzeug
as empty bodies. This module keeps a2wsgi's environ building and body reading and adds:

- admission: a request waits at most `acquire_timeout` for a free thread, then gets a 503;
- disconnects: once a response streams, a watcher listens for `http.disconnect` and the
  worker thread stops at its next chunk, closing the WSGI iterable and freeing the thread;
- `wsgi.input_terminated`, so bodies without Content-Length reach the app whole;
- a bounded graceful shutdown.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from a2wsgi import wsgi as a2wsgi_wsgi

from gateway.asgi import REQUEST_ID_KEY, Message, Receive, Scope, Send
from gateway.errors import send_error
from gateway.shadow_io import SHADOW_SCOPE_KEY
from gateway.wsgi_fast import ClientGone, FastResponder, takes_fast_path

log = logging.getLogger("gateway.legacy")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class LegacyUnavailable(Exception):
    """No thread became free in time for a shadow copy (a client gets a 503 instead)."""


class ClientDisconnected(Exception):
    """Raised inside the worker thread to stop a WSGI iterable whose client has gone."""


def _terminated_input(app: WSGIApp) -> WSGIApp:
    # a2wsgi's Body returns b"" at the end of the request body, so the stream is terminated;
    # telling Werkzeug so makes it read chunked bodies instead of treating them as empty.
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return wrapped


class _Receive:
    """Sole reader of the server's `receive` once a disconnect watcher runs."""

    def __init__(self, receive: Receive, disconnected: threading.Event) -> None:
        self._receive = receive
        self._disconnected = disconnected
        self._buffer: deque[Message] = deque()
        self._ready = asyncio.Event()
        self._in_flight = False
        self._watcher: asyncio.Task[None] | None = None

    async def __call__(self) -> Message:
        if self._watcher is not None:
            while not self._buffer:
                self._ready.clear()
                await self._ready.wait()
            return self._buffer.popleft()
        self._in_flight = True
        try:
            return await self._receive()
        finally:
            self._in_flight = False

    def watch(self) -> None:
        if self._watcher is None and not self._in_flight:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            self._buffer.append(message)
            self._ready.set()
            if message["type"] == "http.disconnect":
                self._disconnected.set()
                return

    def close(self) -> None:
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()


# a2wsgi's TypedDict-typed events are narrower than the plain mappings the gateway passes
WSGIResponder: Any = a2wsgi_wsgi.WSGIResponder


class _Responder(WSGIResponder):  # type: ignore[misc]
    def __init__(self, app: WSGIApp, executor: concurrent.futures.ThreadPoolExecutor) -> None:
        super().__init__(app, executor, send_queue_size=10)
        self.disconnected = threading.Event()
        self.receiver: _Receive | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.receiver = _Receive(receive, self.disconnected)
        try:
            await super().__call__(scope, self.receiver, send)
        finally:
            self.receiver.close()

    async def sender(self, send: Send) -> None:
        chunks = 0
        while True:
            message = await self.send_queue.get()
            if message is None:
                break
            if message.get("more_body"):
                chunks += 1
                # a second body chunk means the app streams: from now on, watch for the
                # client leaving so the thread does not produce for nobody
                if chunks >= 2 and self.receiver is not None:
                    self.receiver.watch()
            try:
                await send(message)
            except OSError:  # ASGI servers may raise on send after a disconnect
                self.disconnected.set()
                return
            self.send_queue.task_done()

    def send(self, message: Message | None) -> None:
        """Worker-thread side: hand a message to the loop, or stop if nobody listens."""
        if self.disconnected.is_set():
            raise ClientDisconnected
        future = asyncio.run_coroutine_threadsafe(self.send_queue.put(message), loop=self.loop)
        while True:
            try:
                future.result(timeout=0.25)
                return
            except concurrent.futures.TimeoutError:
                if self.disconnected.is_set():
                    future.cancel()
                    raise ClientDisconnected from None


class LegacyBridge:
    """ASGI app serving a WSGI app on a bounded thread pool."""

    def __init__(
        self, app: WSGIApp, *, threads: int = 10, acquire_timeout: float = 5.0, abandonable: bool = False
    ) -> None:
        if threads < 1:
            raise ValueError("legacy thread pool needs at least one thread")
        self.wsgi_app = app
        self.threads = threads
        self.acquire_timeout = acquire_timeout
        # set for callers that may cancel a request midway (shadow calls with a timeout)
        self.abandonable = abandonable
        self._app = _terminated_input(app)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="legacy-wsgi"
        )
        self._slots: asyncio.Semaphore | None = None
        self._idle: asyncio.Event | None = None
        self.busy = 0  # requests holding a thread right now
        self.on_busy: Callable[[int], None] | None = None  # told +1 / -1 as threads are taken
        self.rejected = 0  # requests answered 503 because no thread became free
        self.on_rejected: Callable[[], None] | None = None  # told of each (the metric)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _ignore_lifespan(receive, send)
            return
        if scope["type"] != "http":  # a WSGI app cannot take a websocket
            await send({"type": "websocket.close", "code": 1000})
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.threads)
            self._idle = asyncio.Event()
        try:
            if self._slots.locked():
                await asyncio.wait_for(self._slots.acquire(), self.acquire_timeout)
            else:  # a free thread: take it without wait_for's extra task
                await self._slots.acquire()
        except TimeoutError:
            self.rejected += 1
            if self.on_rejected is not None:
                self.on_rejected()
            message = (
                f"all {self.threads} legacy worker threads are busy and none became free "
                f"within {self.acquire_timeout:g} s; retry shortly"
            )
            if scope.get(SHADOW_SCOPE_KEY):
                # a shadow copy: the shadow runner records this as the candidate's error; a 503
                # of the gateway's own would be compared as if the legacy app had answered it
                raise LegacyUnavailable(message) from None
            await send_error(
                send, 503, "legacy_unavailable", message, scope.get(REQUEST_ID_KEY), [(b"retry-after", b"1")]
            )
            return
        self.busy += 1
        if self.on_busy is not None:
            self.on_busy(1)
        responder: _Responder | FastResponder
        if takes_fast_path(scope):  # a body of known length: one thread hop (gateway.wsgi_fast)
            responder = FastResponder(self._app, self._executor)
        else:  # a chunked upload: read by the app as it arrives, through a2wsgi
            responder = _Responder(self._app, self._executor)
        if not self.abandonable:
            try:
                await self._serve(responder, scope, receive, send)
            finally:
                self._release()
            return
        task = asyncio.ensure_future(self._serve(responder, scope, receive, send))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # The caller gave up (a shadow's timeout): a thread cannot be interrupted, so it
            # is told to stop at its next chunk and keeps its slot until it really ends;
            # otherwise a hanging app would pile abandoned work onto the executor's queue.
            responder.disconnected.set()
            task.add_done_callback(lambda _: self._release())
            raise
        self._release()

    async def _serve(
        self, responder: _Responder | FastResponder, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            await responder(scope, receive, send)
        except (ClientDisconnected, ClientGone):
            log.info("client went away during a streamed legacy response; stopped its thread")
        except Exception:
            if responder.response_started:
                raise
            log.exception("legacy WSGI app raised before starting a response")
            await send_error(
                send, 500, "legacy_error", "the legacy app failed to answer", scope.get(REQUEST_ID_KEY)
            )

    def _release(self) -> None:
        self.busy -= 1
        if self.on_busy is not None:
            self.on_busy(-1)
        assert self._slots is not None
        self._slots.release()
        if self.busy == 0 and self._idle is not None:
            self._idle.set()

    async def aclose(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait up to `timeout` for in-flight legacy requests; True if all finished."""
        finished = True
        if self.busy and self._idle is not None:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                finished = False
                log.warning("shutdown: %d legacy requests still running after %g s", self.busy, timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)
        return finished


async def _ignore_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
