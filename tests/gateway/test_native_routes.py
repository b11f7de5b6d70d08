"""The native router's cut-down scan (gateway/native_routes.py): the same answers as FastAPI's
full scan on every tricky route layout, with the routes no URL of the entry can reach skipped."""

# no `from __future__ import annotations`: FastAPI reads the handlers' annotations
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.routing import Host, Router

from gateway.app import Gateway
from gateway.asgi import Receive, Scope, Send
from gateway.native_routes import NativeRoutes, _may_overlap
from gateway.paths import parse_template
from gateway.settings import GatewaySettings

MAP = """\
version: 1
routes:
  - {id: items.special, path: /items/special, methods: [GET], owner: new}
  - {id: users, path: '/api/users/<int:user_id>', methods: [GET, DELETE, POST], owner: new}
  - {id: things, path: /things, methods: [GET], owner: new}
  - {id: files, path: '/static/<path:name>', methods: [GET], owner: new}
  - {id: hosted, path: /hosted, methods: [GET], owner: new}
  - {id: links, path: /links, methods: [GET], owner: new}
  - {id: old, path: '/v1/<name>', methods: [GET], owner: new}
  - {id: rooted, path: /v1/items/special, methods: [GET], owner: new}
  - {id: boom, path: /boom, methods: [GET], owner: new}
"""


class Rewrite:
    """A middleware that moves /v1/<x> to /items/<x> before the router sees it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/") and scope["path"].count("/") == 2:
            scope = {**scope, "path": "/items/" + scope["path"][4:]}
        await self.app(scope, receive, send)


def tricky_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(Rewrite)

    @app.exception_handler(KeyError)
    async def key_error(request: Request, exc: KeyError) -> PlainTextResponse:
        return PlainTextResponse("handled by the app", status_code=418)

    # an earlier route that also matches /items/special: it wins, as in FastAPI
    @app.get("/items/{name}")
    async def item(name: str, request: Request) -> dict[str, Any]:
        return {"item": name, "route": request.scope["route"].path}

    @app.get("/items/special")
    async def special() -> dict[str, str]:
        return {"never": "reached"}

    users = APIRouter(prefix="/api/users")

    @users.get("/{user_id}")
    async def get_user(user_id: int) -> dict[str, int]:
        return {"get": user_id}

    deletes = APIRouter(prefix="/api/users")

    @deletes.delete("/{user_id}")
    async def delete_user(user_id: int) -> dict[str, int]:
        return {"deleted": user_id}

    app.include_router(users)
    app.include_router(deletes)

    @app.get("/things/")  # /things is redirected here by FastAPI's slash handling
    async def things() -> dict[str, str]:
        return {"things": "yes"}

    @app.get("/target", name="target")
    async def target() -> dict[str, str]:
        return {"target": "yes"}

    @app.get("/links")
    async def links(request: Request) -> dict[str, str]:
        return {"target": str(request.url_for("target"))}  # a route the cut leaves out

    @app.get("/boom")
    async def boom() -> None:
        raise KeyError("x")

    static = FastAPI()

    @static.get("/{name:path}")
    async def file(name: str) -> dict[str, str]:
        return {"file": name}

    app.mount("/static", static)

    hosted = Router()
    hosted.add_route("/hosted", lambda request: PlainTextResponse("on the admin host"))
    app.router.routes.append(Host("admin.example.com", app=hosted))

    # last: any URL of two segments or more the routes above leave, and every cut keeps it
    @app.get("/{first}/{rest:path}")
    async def anything(first: str, rest: str) -> dict[str, str]:
        return {"anything": f"{first}/{rest}"}

    return app


async def _gateway(tmp_path: Path, shortcut: bool) -> Gateway:
    map_path = tmp_path / f"map-{shortcut}.yaml"
    map_path.write_text(MAP)
    settings = GatewaySettings(
        map_path=map_path,
        legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
        native_route_shortcut=shortcut,
        store_url=f"sqlite:///{tmp_path}/parity-{shortcut}.db",
    )
    gw = Gateway(settings, native_app=tricky_app())
    await gw.startup({})
    return gw


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[tuple[Gateway, Gateway]]:
    on, off = await _gateway(tmp_path, True), await _gateway(tmp_path, False)
    yield on, off
    await on.shutdown()
    await off.shutdown()


REQUESTS = [
    ("GET", "/items/special", {}),
    ("GET", "/api/users/1", {}),
    ("DELETE", "/api/users/1", {}),
    ("POST", "/api/users/1", {}),  # a path both routers take, a method neither does: 405
    ("GET", "/things", {}),
    ("GET", "/static/css/site.css", {}),
    ("GET", "/hosted", {"host": "admin.example.com"}),
    ("GET", "/hosted", {}),
    ("GET", "/links", {}),
    ("GET", "/v1/thing", {}),
    ("GET", "/boom", {}),
]


async def _answers(gw: Gateway, root_path: str = "") -> list[tuple[int, dict[str, str], bytes]]:
    transport = httpx.ASGITransport(app=gw.dispatcher, root_path=root_path)
    out = []
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        for method, path, headers in REQUESTS if not root_path else [("GET", "/v1/items/special", {})]:
            answer = await client.request(method, path, headers=headers)
            kept = {k: v for k, v in answer.headers.items() if k not in ("x-request-id", "date")}
            out.append((answer.status_code, kept, answer.content))
    return out


@pytest.mark.anyio
async def test_every_answer_is_the_full_scans(gateways: tuple[Gateway, Gateway]) -> None:
    on, off = gateways
    assert on.dispatcher.native_routes is not None and off.dispatcher.native_routes is None
    got, expected = await _answers(on), await _answers(off)
    assert got == expected
    by_request = dict(zip([f"{m} {p} {h}" for m, p, h in REQUESTS], got, strict=True))
    # what FastAPI itself answers, so that the comparison is of real behaviour
    assert by_request["GET /items/special {}"][2] == b'{"item":"special","route":"/items/{name}"}'
    assert by_request["POST /api/users/1 {}"][0] == 405
    assert by_request["POST /api/users/1 {}"][1]["allow"] == "GET"  # FastAPI's first partial match
    assert by_request["DELETE /api/users/1 {}"][2] == b'{"deleted":1}'
    assert by_request["GET /things {}"][0] == 307
    assert by_request["GET /static/css/site.css {}"][2] == b'{"file":"css/site.css"}'
    assert by_request["GET /hosted {'host': 'admin.example.com'}"][2] == b"on the admin host"
    assert by_request["GET /hosted {}"][0] == 307  # to /hosted/, which the catch-all takes
    assert by_request["GET /links {}"][2] == b'{"target":"http://gw/target"}'
    assert by_request["GET /v1/thing {}"][2] == b'{"item":"thing","route":"/items/{name}"}'
    assert by_request["GET /boom {}"][:1] == (418,)


@pytest.mark.anyio
async def test_a_root_path_takes_the_full_scan(gateways: tuple[Gateway, Gateway]) -> None:
    # the router matches /items/special (the path less the root path), which the cut for
    # /v1/items/special left out; /{first}/{rest:path}, which it kept, would have answered instead
    on, off = gateways
    got, expected = await _answers(on, "/v1"), await _answers(off, "/v1")
    assert got == expected
    assert got[0][2] == b'{"item":"special","route":"/items/{name}"}'


@pytest.mark.anyio
async def test_the_cut_skips_what_no_url_of_the_entry_reaches(gateways: tuple[Gateway, Gateway]) -> None:
    on, off = gateways
    tried: list[str] = []
    for gw in (on, off):
        router = gw.native.router  # type: ignore[attr-defined]
        openapi = next(r for r in router.routes if getattr(r, "path", None) == "/openapi.json")
        real = openapi.matches
        openapi.matches = lambda scope, real=real, name=gw.settings.native_route_shortcut: (
            tried.append(f"shortcut={name}") or real(scope)
        )
    for gw in (on, off):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gw.dispatcher), base_url="http://gw"
        ) as c:
            assert (await c.get("/api/users/7")).json() == {"get": 7}
    assert tried == ["shortcut=False"]
    hook = on.dispatcher.native_routes
    assert hook is not None
    view = hook.view_for("/api/users/<int:user_id>")
    assert view is not None
    # of the app's 15 routes, the two included routers, the Host (whose reach depends on a
    # header) and the catch-all, then the full router behind them
    kinds = [type(route).__name__ for route in view.routes]
    assert kinds == ["_IncludedRouter", "_IncludedRouter", "Host", "APIRoute", "_Rest"]
    assert len(hook.router.routes) == 15


def test_overlap_is_ruled_out_only_by_a_differing_static_segment_or_length() -> None:
    def overlap(a: str, b: str) -> bool:
        return _may_overlap(parse_template(a), parse_template(b))

    assert not overlap("/api/users/<int:id>", "/api/products/{id}")
    assert not overlap("/api/users/<int:id>", "/api/users")
    assert not overlap("/a/<x>", "/a/{x}/")  # the trailing slash is a segment of its own
    assert overlap("/api/users/<int:id>", "/api/{kind}/{id}")
    assert overlap("/items/special", "/items/{name}")
    assert overlap("/static/<path:p>", "/static/css/{name}")
    assert overlap("/static/css/x", "/static/{p:path}")
    assert not overlap("/static", "/static/{p:path}")
    assert not overlap("/other/x", "/static/{p:path}")


def test_install_needs_a_router_without_middleware_of_its_own(caplog: pytest.LogCaptureFixture) -> None:
    class Plain:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    assert NativeRoutes.install(Plain()) is None
    app = FastAPI()
    hook = NativeRoutes.install(app)
    assert hook is not None and NativeRoutes.install(app) is hook  # two gateways, one app object
    guarded = starlette_with_router_middleware()
    with caplog.at_level(logging.INFO, logger="gateway"):
        assert NativeRoutes.install(guarded) is None
    assert "native route shortcut off: the native app's router has middleware of its own" in caplog.text


def starlette_with_router_middleware() -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    app = Starlette()
    app.router = Router(middleware=[Middleware(Rewrite)])
    return app
