"""The request path: one pure-ASGI callable that decides who serves each request.

It reads the routing table once per request (a table swapped mid-request does not affect
it), tags the request with an X-Request-ID that reaches the backend and the response, picks
the side (the map's owner, unless a runtime state, a canary or an authenticated override
says otherwise) and hands the request straight to it, so legacy requests never pass
through FastAPI's router.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.asgi import REQUEST_ID_KEY, ASGIApp, Message, Receive, Scope, Send
from gateway.errors import send_error
from gateway.fallback import FALLBACK_HEADER, serve_with_fallback
from gateway.map_schema import Owner
from gateway.metrics import AnswerSeries, GatewayMetrics
from gateway.native_routes import VIEW_KEY, NativeRoutes
from gateway.reloader import MapHolder
from gateway.request_limits import LimitedBody, dot_segment
from gateway.rollout.runtime import Rollout
from gateway.shadow import ShadowRunner
from gateway.shadow_io import SHADOW_HEADER
from gateway.table import Route, RoutingTable

log = logging.getLogger("gateway")
Header = tuple[bytes, bytes]
ROUTE_KEY = "gateway.route"
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
OVERRIDE_HEADER = b"x-gateway-backend"
OVERRIDE_TOKEN_HEADER = b"x-gateway-token"
SHUTTING_DOWN = "the gateway is shutting down and this request did not finish in time; retry it"


@dataclass(frozen=True)
class Backends:
    legacy: ASGIApp
    native: ASGIApp
    # the gateway's own endpoints under /_gateway/ and /metrics
    admin: ASGIApp


class AnswerLog(Protocol):
    """The access log, as the dispatcher writes to it (gateway/access_log.py)."""

    def prepared(self, route_id: str, backend: str) -> str: ...

    def answered(
        self,
        prepared: str,
        request_id: str,
        method: str,
        path: str,
        status: int,
        latency_ms: float,
        outcome: str | None = None,
    ) -> None: ...

    def observe(self, exchange: Exchange) -> None: ...


class _Plan:
    """What the request path needs of one (route, side), worked out once per routing table:
    the X-Served-By header, the metrics series, the guard, the access log's route part."""

    __slots__ = (
        "backend", "guard", "log_part", "may_shadow", "native_view", "route", "series", "served_by", "side",
    )  # fmt: skip

    def __init__(self, dispatcher: Dispatcher, route: Route, side: Owner) -> None:
        self.route, self.side = route, side
        self.backend = backend = SIDE_NAMES[side]
        served_by = dispatcher._served_by
        self.served_by = (served_by, _SIDE_BYTES[side]) if served_by is not None else None
        self.series: AnswerSeries = dispatcher.metrics.series(route.id, backend, "primary")
        rollout = dispatcher.rollout
        self.guard = rollout.observe if rollout is not None and route.guard is not None else None
        log = dispatcher.access_log
        self.log_part = log.prepared(route.id, backend) if log is not None else ""
        self.may_shadow = dispatcher.shadow is not None and route.shadow.sample > 0
        # the native router's scan cut down to the routes this entry's URLs can reach, where the
        # native app may be called: the new side (and its fallback), or a shadow copy of legacy
        native = dispatcher.native_routes
        calls_native = side is Owner.NEW or self.may_shadow
        self.native_view = native.view_for(route.path) if native is not None and calls_native else None


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
        rollout: Rollout | None = None,
        metrics: GatewayMetrics | None = None,
        access_log: AnswerLog | None = None,
        observers: tuple[Callable[[Exchange], None], ...] = (),
        max_body_bytes: int = 10 * 1024 * 1024,
        native_routes: NativeRoutes | None = None,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.native_routes = native_routes
        # every answered request is counted (metrics), shown to the route's guard and written
        # to the access log by the dispatcher itself, from what `_Plan` prepared; observers
        # are told of each one too, with an `Exchange` built for them
        self.access_log = access_log
        self.observers = observers
        self.metrics = metrics or GatewayMetrics()
        self.shadow = shadow
        self.rollout = rollout
        self.holder = holder
        self.backends = backends
        self._lifespan = lifespan
        self._rid_name = request_id_header.lower().encode("latin-1")
        self._served_by = served_by_header.lower().encode("latin-1") if served_by_header else None
        self._apps = {Owner.LEGACY: backends.legacy, Owner.NEW: backends.native}
        # response headers only the gateway sets: a backend's own are dropped
        self._ours = {self._rid_name, self._served_by, FALLBACK_HEADER}
        # request headers _read_headers acts on; any other passes through with one set lookup
        self._special = {
            b"content-length", b"transfer-encoding", SHADOW_HEADER, OVERRIDE_HEADER, OVERRIDE_TOKEN_HEADER,
            self._rid_name,
        }  # fmt: skip
        # per routing table: (route id(), side) -> _Plan; a new table starts afresh, so plans
        # of routes no longer served go with the table they belonged to
        self._plans: dict[tuple[int, Owner], _Plan] = {}
        self._plans_table: RoutingTable | None = None

    def _plan(self, table: RoutingTable, route: Route, side: Owner) -> _Plan:
        if table is not self._plans_table:
            self._plans, self._plans_table = {}, table
        key = (id(route), side)  # routes of one table live as long as it: ids stay theirs
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan(self, route, side)
        return plan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        path: str = scope["path"]
        request_id, rid_header, headers, backend, token, length, chunked = self._read_headers(scope)
        limited: LimitedBody | None = None
        if kind == "http":
            refused = self._refusal(path, length) if "/." in path or length is not None else None
            if refused is not None:
                await send_error(send, *refused, request_id, [rid_header])
                return
            if chunked:  # no declared length: counted as it arrives
                limited = LimitedBody(receive, self.max_body_bytes)
                receive = limited
        if path.startswith("/_gateway/") or path == "/metrics":
            await self._admin(scope, receive, send, limited, request_id)
            return
        table = self.holder.table
        assert table is not None, "the map is loaded before the first request"
        route = table.lookup(scope.get("method", "GET"), path)
        scope = dict(scope)
        scope["headers"] = headers
        scope[REQUEST_ID_KEY] = request_id
        scope[ROUTE_KEY] = route
        rollout = self.rollout
        if rollout is None:
            side = route.owner
        else:
            side = rollout.side_for(route, scope, rollout.override(backend, token) if backend else None)
        app = self._apps[side]
        if kind != "http":
            await app(scope, receive, send)
            return
        plan = self._plan(table, route, side)
        if plan.native_view is not None:
            scope[VIEW_KEY] = (path, plan.native_view)
        legacy_scope = scope
        # FastAPI routes answer GET but not HEAD (Flask answers both); so that HEAD keeps
        # working after a route moves, the native side gets a GET and the body is dropped
        head = scope["method"] == "HEAD" and side is Owner.NEW and "HEAD" not in (route.methods or ())
        if head:
            scope = {**scope, "method": "GET"}
        gated = send if limited is None else limited.gate(send)
        tagged = _Tagged(gated, plan, self, rid_header, request_id, head, scope)
        if limited is not None:
            tagged.limited = limited
        fallback = route.fallback
        falls_back = side is Owner.NEW and fallback is not None and legacy_scope["method"] in fallback.methods
        shadow = self.shadow if plan.may_shadow else None
        if shadow is not None and not shadow.wanted(route, scope["method"]):
            shadow = None
        if shadow is not None and not shadow.budget.allows():
            # over the budget (most shadows of a busy gateway): counted here, and the request
            # takes the plain path, its access-log line written at once with the skip in it
            tagged.outcome = shadow.over_budget(route.id)
            shadow = None
        if falls_back:
            shadowed = shadow is not None
            app = self._falling_back(app, legacy_scope, route, gated, request_id, shadowed, tagged.outcome)
        if shadow is not None:
            tagged.shadowed = True  # its access-log line waits for the comparison's outcome
            call: Awaitable[None] = shadow.handle(scope, receive, tagged, route, app, side)
        else:
            call = app(scope, receive, tagged)
        # awaited here, not in a helper coroutine: a frame less on every request. An exception
        # before any response becomes the gateway's own JSON 500, with the request id and the
        # side, and counts as that side's error; one after the response started cuts the
        # answer off, and counts as that side's error too.
        metrics, side_name = self.metrics, plan.backend
        metrics.request_started(side_name)
        try:
            await call
        except Exception:
            if not await self._failed(tagged):
                raise  # the answer had started: nothing better can be sent now
            return
        except asyncio.CancelledError:
            # the server gave up on the request (uvicorn: its graceful shutdown ran out of time);
            # rather than the server's plain-text 500, an answer a client knows to retry
            if tagged.status:
                raise
            log.warning("%s request on route %s cut off by the server's shutdown", side.value, route.id)
            retry = [(b"retry-after", b"1")]
            await send_error(tagged, 503, "shutting_down", SHUTTING_DOWN, tagged.request_id, retry)
            return
        finally:
            metrics.request_ended(side_name)
        if tagged.limited is not None and tagged.limited.exceeded:
            await self._too_large(tagged)

    async def _failed(self, tagged: _Tagged) -> bool:
        """The side raised: answer for it (True), or False when its answer had started."""
        if tagged.limited is not None and tagged.limited.exceeded:
            await self._too_large(tagged)
            return True
        if tagged.status:
            tagged.broke()  # counted as the side's error, whatever status had gone out
            return False
        side, route = tagged.side, tagged.route
        log.exception("%s side raised on route %s", side.value, route.id)
        await send_error(
            tagged, 500, "backend_error", f"the {side.value} side failed to answer", tagged.request_id
        )
        return True

    async def _too_large(self, tagged: _Tagged) -> None:
        """A chunked body went over the limit: the backend's answer was held back; this is sent."""
        assert tagged.limited is not None and tagged.limited.downstream is not None
        tagged.send = tagged.limited.downstream
        tagged.limited = None
        await send_error(tagged, 413, "body_too_large", self._too_large_message(), tagged.request_id)

    def _too_large_message(self, length: int | None = None) -> str:
        declared = f" ({length} bytes)" if length is not None else ""
        limit = f"{self.max_body_bytes} bytes (GATEWAY_MAX_BODY_BYTES)"
        return f"the request body{declared} is larger than {limit}"

    def _refusal(self, path: str, length: int | None) -> tuple[int, str, str] | None:
        segment = dot_segment(path)
        if segment is not None:
            return 400, "bad_path", f"the path has a '{segment}' segment; send the path it stands for"
        if length is not None and length > self.max_body_bytes:
            return 413, "body_too_large", self._too_large_message(length)
        return None

    async def _admin(
        self, scope: Scope, receive: Receive, send: Send, limited: LimitedBody | None, request_id: str
    ) -> None:
        if limited is None:
            await self.backends.admin(scope, receive, send)
            return
        await self.backends.admin(scope, receive, limited.gate(send))
        if limited.exceeded:
            await send_error(send, 413, "body_too_large", self._too_large_message(), request_id)

    def _falling_back(
        self,
        native: ASGIApp,
        legacy_scope: Scope,
        route: Route,
        send: Send,
        request_id: str,
        shadowed: bool,
        outcome: str | None,
    ) -> ASGIApp:
        """The new side with the route's fallback: a failure is answered by legacy, marked
        `X-Gateway-Fallback: <reason>` (X-Served-By says legacy, as it should, and the marker
        tells it from a request whose side is legacy). For a shadowed request, the comparison
        is then skipped for lack of a new answer (the shadow runner sees no answer go through
        its capture)."""
        settings = route.fallback
        assert settings is not None
        table = self.holder.table
        assert table is not None
        plan = self._plan(table, route, Owner.LEGACY)
        rid_header = (self._rid_name, request_id.encode("ascii"))
        send_legacy = _Tagged(send, plan, self, rid_header, request_id, False, legacy_scope)
        # a shadowed request's access-log line waits for the skip, like the new side's would
        send_legacy.shadowed = shadowed
        send_legacy.outcome = outcome

        def unchecked(reason: str) -> None:
            self.metrics.fallback_unchecked.labels(route.id, reason).inc()

        def fell_back(reason: str) -> None:
            send_legacy.extra.append((FALLBACK_HEADER, reason.encode("latin-1")))
            self._fell_back(route, reason)

        async def owner(scope: Scope, receive: Receive, send_new: Send) -> None:
            await serve_with_fallback(
                native=native,
                native_scope=scope,
                legacy=self._apps[Owner.LEGACY],
                legacy_scope=legacy_scope,
                receive=receive,
                send_new=send_new,
                send_legacy=send_legacy,
                settings=settings,
                on_fallback=fell_back,
                on_unchecked=unchecked,
            )

        return owner

    def _fell_back(self, route: Route, reason: str) -> None:
        self.metrics.fallbacks.labels(route.id, reason).inc()
        if self.rollout is not None and route.guard is not None:
            self.rollout.observe(route, Owner.NEW, None if reason != "5xx" else 500, 0.0)

    def _read_headers(
        self, scope: Scope
    ) -> tuple[str, Header, list[Header], bytes | None, bytes | None, int | None, bool]:
        """The request id (and its header), the headers the backends get, the override header
        and token, the declared body length and whether the body comes chunked."""
        headers: list[Header] = []
        request_id: str | None = None
        backend = token = None
        length: int | None = None
        chunked = False
        special = self._special
        for name, value in scope.get("headers", ()):
            if name not in special:
                headers.append((name, value))
                continue
            if name == b"content-length":
                # the HTTP server has checked it is one valid number; larger ones win regardless
                length = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                chunked = True
            if name == SHADOW_HEADER:
                continue  # only the gateway may mark a request as a shadow
            if name == OVERRIDE_HEADER:
                backend = value
                continue
            if name == OVERRIDE_TOKEN_HEADER:
                token = value  # never forwarded: backends and their logs do not see it
                continue
            if name == self._rid_name:
                # keep a client's id only if it is safe to log and echo; otherwise replace it
                if request_id is None and _VALID_REQUEST_ID.fullmatch(value):
                    request_id = value.decode("ascii")
                continue
            headers.append((name, value))
        if request_id is None:
            request_id = _new_request_id()
        rid_header = (self._rid_name, request_id.encode("ascii"))
        headers.append(rid_header)
        return request_id, rid_header, headers, backend, token, length, chunked and length is None


# Enum.value is a descriptor call: the request path reads these instead
SIDE_NAMES = {side: side.value for side in Owner}
_SIDE_BYTES = {side: side.value.encode() for side in Owner}
_ID_PREFIX = os.urandom(8).hex()  # this process's; with the counter, ids do not repeat across workers
_ID_COUNTER = itertools.count(1)


def _reseed_ids() -> None:
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX, _ID_COUNTER = os.urandom(8).hex(), itertools.count(1)


os.register_at_fork(after_in_child=_reseed_ids)  # forked workers must not share a prefix


def _new_request_id() -> str:
    """A request id for a request that came without one: unique, and cheaper than uuid4()."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One answered request, as the observers see it."""

    route: Route
    side: Owner
    method: str
    path: str
    status: int
    latency_ms: float
    request_id: str
    shadowed: bool = False  # a copy went to the other side; its outcome is reported later
    # False: the side raised after its status went out, so the client got a cut-off answer;
    # observers count it as that side's error, whatever the status said
    complete: bool = True
    # the shadow's outcome when it was known before the answer (a skip for the budget)
    shadow_outcome: str | None = None


class _Tagged:
    """The client's `send`: adds the request id and served-by headers; counts the answer,
    shows it to the route's guard and the access log, and tells the observers."""

    __slots__ = (
        "dispatcher",
        "done",
        "extra",
        "head",
        "limited",
        "outcome",
        "plan",
        "request_id",
        "scope",
        "send",
        "shadowed",
        "started",
        "status",
    )

    def __init__(
        self,
        send: Send,
        plan: _Plan,
        dispatcher: Dispatcher,
        rid_header: Header,
        request_id: str,
        head: bool,
        scope: Scope,
    ) -> None:
        self.send, self.plan, self.dispatcher, self.request_id = send, plan, dispatcher, request_id
        served_by = plan.served_by
        self.extra = [rid_header, served_by] if served_by is not None else [rid_header]
        self.head, self.scope = head, scope
        self.started = time.perf_counter()
        self.status = 0
        self.done = False
        self.shadowed = False
        self.outcome: str | None = None  # the shadow's, when known before the answer (a skip)
        self.limited: LimitedBody | None = None  # a chunked body counted against the limit

    @property
    def route(self) -> Route:
        return self.plan.route

    @property
    def side(self) -> Owner:
        return self.plan.side

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = int(message["status"])
            ours = self.dispatcher._ours
            headers = message.get("headers", ())
            message["headers"] = [(k, v) for k, v in headers if k.lower() not in ours] + self.extra
        elif kind == "http.response.body":
            if self.head:
                message = {**message, "body": b""}
            if not message.get("more_body"):
                self.done = True
                self._tell(complete=True)
        await self.send(message)

    def broke(self) -> None:
        """The side failed after its answer had started: the observers hear of it once."""
        if self.status and not self.done:
            self.done = True
            self._tell(complete=False)

    def _tell(self, *, complete: bool) -> None:
        latency_ms = (time.perf_counter() - self.started) * 1000
        plan, dispatcher = self.plan, self.dispatcher
        status = self.status if complete else None  # cut off: an error, whatever it began as
        plan.series.add(status, latency_ms)
        if plan.guard is not None:
            plan.guard(plan.route, plan.side, status, latency_ms)
        log, observers = dispatcher.access_log, dispatcher.observers
        scope = self.scope
        if log is not None and complete and not self.shadowed:
            method, path = scope["method"], scope["path"]
            log.answered(plan.log_part, self.request_id, method, path, self.status, latency_ms, self.outcome)
            log = None
        if log is None and not observers:
            return
        exchange = Exchange(
            plan.route,
            plan.side,
            scope["method"],
            scope["path"],
            self.status,
            latency_ms,
            self.request_id,
            self.shadowed,
            complete,
            self.outcome,
        )
        if log is not None:
            log.observe(exchange)
        for observer in observers:
            observer(exchange)
