"""The request path: one pure-ASGI callable that decides who serves each request.

It reads the routing table once per request (a table swapped mid-request does not affect
it), tags the request with an X-Request-ID that reaches the backend and the response, and
hands the request straight to the owning side, so legacy requests never pass through
FastAPI's router.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.asgi import REQUEST_ID_KEY, ASGIApp, Message, Receive, Scope, Send
from gateway.map_schema import Owner
from gateway.reloader import MapHolder
from gateway.shadow import ShadowRunner
from gateway.shadow_io import SHADOW_HEADER
from gateway.table import Route

ROUTE_KEY = "gateway.route"
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


@dataclass(frozen=True)
class Backends:
    legacy: ASGIApp
    native: ASGIApp
    # the gateway's own endpoints under /_gateway/ and /metrics
    admin: ASGIApp


class Dispatcher:
    def __init__(
        self,
        *,
        holder: MapHolder,
        backends: Backends,
        lifespan: Callable[[Scope, Receive, Send], Awaitable[None]],
        request_id_header: str = "X-Request-ID",
        served_by_header: str = "X-Served-By",
        shadow: ShadowRunner | None = None,
    ) -> None:
        self.shadow = shadow
        self.holder = holder
        self.backends = backends
        self._lifespan = lifespan
        self._rid_name = request_id_header.lower().encode("latin-1")
        self._served_by = served_by_header.lower().encode("latin-1") if served_by_header else None
        self._apps = {Owner.LEGACY: backends.legacy, Owner.NEW: backends.native}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/_gateway/") or path == "/metrics":
            await self.backends.admin(scope, receive, send)
            return
        table = self.holder.table
        assert table is not None, "the map is loaded before the first request"
        route = table.lookup(scope.get("method", "GET"), path)
        app = self._apps[route.owner]
        request_id, headers = self._request_id(scope)
        scope = dict(scope)
        scope["headers"] = headers
        scope[REQUEST_ID_KEY] = request_id
        scope[ROUTE_KEY] = route
        if kind != "http":
            await app(scope, receive, send)
            return
        # FastAPI routes answer GET but not HEAD (Flask answers both); so that HEAD keeps
        # working after a route moves, the native side gets a GET and the body is dropped
        head = scope["method"] == "HEAD" and route.owner is Owner.NEW and "HEAD" not in (route.methods or ())
        if head:
            scope["method"] = "GET"
        shadow = self.shadow
        if shadow is not None and kind == "http" and shadow.wanted(route, scope["method"]):
            await shadow.handle(scope, receive, self._tagger(send, route, request_id, head), route, app)
            return
        await app(scope, receive, self._tagger(send, route, request_id, head))

    def _tagger(self, send: Send, route: Route, request_id: str, head: bool) -> Send:
        """The client's `send`, adding the request id and served-by headers."""
        extra = [(self._rid_name, request_id.encode())]
        if self._served_by is not None:
            extra.append((self._served_by, route.owner.value.encode()))
        names = {self._rid_name, self._served_by}

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() not in names
                ] + extra
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        return tagged_send

    def _request_id(self, scope: Scope) -> tuple[str, list[tuple[bytes, bytes]]]:
        headers: list[tuple[bytes, bytes]] = []
        request_id: str | None = None
        for name, value in scope.get("headers", ()):
            if name == SHADOW_HEADER:
                continue  # only the gateway may mark a request as a shadow
            if name == self._rid_name:
                # keep a client's id only if it is safe to log and echo; otherwise replace it
                if request_id is None and _VALID_REQUEST_ID.fullmatch(value):
                    request_id = value.decode("ascii")
                continue
            headers.append((name, value))
        if request_id is None:
            request_id = uuid.uuid4().hex
        headers.append((self._rid_name, request_id.encode("ascii")))
        return request_id, headers
