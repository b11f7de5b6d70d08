"""The native app's route scan, cut down to the routes a map entry's URLs can reach.

FastAPI's router tries the app's routes in order on every request: in the demo app ~22 µs of
a ~180 µs request go to trying the docs routes and two included routers before the one that
matches, and an app with hundreds of routes pays for each. The gateway has already matched
the request to a map entry, so every route of the app whose path can match no URL of that
entry (a static segment differs, or the number of segments does) is left out of the scan.

What is left is still scanned by FastAPI's own router, in the app's order, so the first
route that matches fully wins as before. Behind the routes kept stands one that matches
everything and runs the app's whole router, so that a request no kept route takes fully
(a 405, a trailing-slash redirect, a low-priority route, a 404) is answered exactly as if
nothing had been left out. The app's middleware stack and exception handlers run as always:
the cut-down scan replaces only the router's innermost step, and `scope["router"]` stays the
app's router, so `url_for` knows every route.

A route whose reach the gateway cannot read (a Host, a route class of the app's own, a
converter it does not know) is always kept. The cut is not used when the scope has a
root_path or a middleware changed the path, nor for a router that has middleware of its own.
Views are built when a routing table first serves a map entry (each map load), from the
routes the app has then; routes added later at the end of the app's list are reached through
the full router. GATEWAY_NATIVE_ROUTE_SHORTCUT=false turns it off.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from starlette.routing import BaseRoute, Match, Mount, Route, Router, WebSocketRoute

from gateway.asgi import Receive, Scope, Send
from gateway.paths import Kind, PathError, PathTemplate, parse_template

log = logging.getLogger("gateway")
# the dispatcher leaves (the path it matched, the cut-down router) here for the native app
VIEW_KEY = "gateway.native_routes"


class _Rest(BaseRoute):
    """The last route of a cut-down scan: matches anything and runs the app's whole router."""

    def __init__(self, full: Any) -> None:
        self._full = full

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return Match.FULL, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._full(scope, receive, send)


class NativeRoutes:
    """Installed as the native router's innermost step; `view_for` builds the cut-down scans."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._full = router.app
        self._rest = _Rest(self._full)
        self._views: dict[str, Router | None] = {}
        self._seen = len(router.routes)

    @classmethod
    def install(cls, app: object) -> NativeRoutes | None:
        """Hook into a Starlette/FastAPI app's router, or None when it has none to hook into."""
        router = getattr(app, "router", None)
        if not isinstance(router, Router):
            return None
        stack = router.middleware_stack
        if isinstance(stack, NativeRoutes):  # a second gateway over the same app object
            return stack
        if stack != router.app:
            log.info("native route shortcut off: the native app's router has middleware of its own")
            return None
        hook = cls(router)
        router.middleware_stack = hook
        return hook

    def view_for(self, source: str) -> Router | None:
        """The cut-down router for a map entry's path, or None when it would leave nothing out."""
        routes = self.router.routes
        if len(routes) != self._seen:  # routes were added or removed since the views were built
            self._views.clear()
            self._seen = len(routes)
        if source not in self._views:
            self._views[source] = self._build(source, routes)
        return self._views[source]

    def _build(self, source: str, routes: list[BaseRoute]) -> Router | None:
        try:
            mine = parse_template(source)
        except PathError:
            return None  # the unmapped route, or a path the table did not take as a template
        kept = [route for route in routes if _may_reach(route, mine)]
        if len(kept) == len(routes):
            return None
        view = copy.copy(self.router)
        view.routes = [*kept, self._rest]
        return view

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cut = scope.get(VIEW_KEY)
        if cut is None or scope.get("root_path") or scope["path"] != cut[0]:
            await self._full(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self.router  # not the view: url_for must know every route
        await cut[1].app(scope, receive, send)


def _may_reach(route: object, mine: PathTemplate) -> bool:
    """Whether the route (or, for an included router, any of its routes) may match a URL of `mine`."""
    contexts = getattr(route, "effective_route_contexts", None)
    if callable(contexts):  # recent FastAPI keeps an included router as one node
        return any(_may_reach(ctx, mine) for ctx in contexts())
    source = _reach(route)
    if source is None:
        return True
    try:
        theirs = parse_template(source)
    except PathError:
        return True
    return _may_overlap(mine, theirs)


def _reach(node: object) -> str | None:
    """The path template a route matches on, or None when it may match more than a path says."""
    starlette_route = getattr(node, "starlette_route", None)
    original = getattr(node, "original_route", None)
    if starlette_route is not None:  # FastAPI's copy of a Starlette route, its path prefixed
        node = starlette_route
    elif original is not None:  # FastAPI's context of one of its routes, with the prefixed path
        path = getattr(node, "path", None)
        return path if isinstance(original, Route) and isinstance(path, str) and path else None
    if isinstance(node, Mount):
        return node.path.rstrip("/") + "/{path:path}"
    if isinstance(node, Route | WebSocketRoute):
        return node.path
    return None


def _may_overlap(mine: PathTemplate, theirs: PathTemplate) -> bool:
    """False only when no URL can match both: a static segment differs, or, with no `path`
    converter before that point, the number of segments does."""
    for a, b in zip(mine.segments, theirs.segments, strict=False):
        if a.kind is Kind.PATH or b.kind is Kind.PATH:
            return True
        if a.kind is Kind.STATIC and b.kind is Kind.STATIC and a.text != b.text:
            return False
    return len(mine.segments) == len(theirs.segments)
