"""Tiny apps for the CLI tests, reached through import strings the way the gateway reaches the demo.

Legacy (Flask) endpoints:
  GET, POST           /api/items
  GET, PUT, PATCH     /api/items/<int:item_id>      (PUT and PATCH are one rule)
  GET                 /pages/<any(about, help):page>  (a converter paths.py does not know)
  GET                 /colors/<color:name>            (a custom converter)
  GET                 /dup/a, /dup/b                  (two rules, one endpoint name)
  GET                 /healthz                        (endpoint name with characters ids reject)
Native (FastAPI) routes: GET /api/items, POST /api/items, GET /api/items/{item_id} (typed in
the signature), GET /native-only, a websocket, a static mount, GET /v2/things/{thing_id} in a
mounted sub-app and /any-method (every method).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket
from flask import Flask
from starlette.endpoints import HTTPEndpoint
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from werkzeug.routing import BaseConverter

SEED_CALLS: list[tuple[str | None, bool]] = []


class ColorConverter(BaseConverter):
    regex = r"(?:red|green|blue)"


def _view(**_: Any) -> str:
    return "legacy"


def create_legacy() -> Flask:
    app = Flask(__name__, static_folder=None)
    app.url_map.converters["color"] = ColorConverter
    app.add_url_rule("/api/items", "items.list", _view, methods=["GET"])
    app.add_url_rule("/api/items", "items.create", _view, methods=["POST"])
    app.add_url_rule("/api/items/<int:item_id>", "items.get", _view, methods=["GET"])
    app.add_url_rule("/api/items/<int:item_id>", "items.change", _view, methods=["PUT", "PATCH"])
    app.add_url_rule("/pages/<any(about, help):page>", "pages.page", _view)
    app.add_url_rule("/colors/<color:name>", "colors.get", _view)
    app.add_url_rule("/dup/a", "dup", _view)
    app.add_url_rule("/dup/b", "dup", _view)
    app.add_url_rule("/healthz", "~health check!", _view)
    return app


def create_tricky_legacy() -> Flask:
    """Rules a map cannot hold as they are: a shadowed twin and a path werkzeug alone reads."""
    app = Flask(__name__, static_folder=None)
    app.add_url_rule("/x/<a>", "first", _view)
    app.add_url_rule("/x/<b>", "second", _view, methods=["GET", "POST"])
    app.add_url_rule("/files/<path:p>/<name>", "files", _view)
    return app


def create_subdomain_legacy() -> Flask:
    """Rules werkzeug tells apart by subdomain, which a map (method and path only) cannot."""
    app = Flask(__name__, static_folder=None, subdomain_matching=True)
    app.config["SERVER_NAME"] = "example.test"
    app.add_url_rule("/users", "api_users", _view, subdomain="api")
    app.add_url_rule("/users", "site_users", _view)
    app.add_url_rule("/profile", "tenant_profile", _view, subdomain="<tenant>")
    app.add_url_rule("/about", "about", _view)
    return app


def create_host_legacy() -> Flask:
    """`host_matching`: every rule has a host, two of them for the same path."""
    app = Flask(__name__, static_folder=None, host_matching=True)
    app.add_url_rule("/", "a_index", _view, host="a.example.test")
    app.add_url_rule("/", "b_index", _view, host="b.example.test")
    app.add_url_rule("/<int:n>", "tenant_item", _view, host="<tenant>.example.test")
    return app


class Middleware:
    """WSGI middleware in the ProxyFix style: the Flask app is one `.app` away."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


def wrapped_legacy() -> Middleware:
    return Middleware(create_legacy())


def plain_wsgi(environ: Any, start_response: Any) -> Any:
    start_response("200 OK", [])
    return [b"no url_map here"]


def broken_factory() -> Any:
    raise RuntimeError("the database is on fire\nsecond line")


def create_native() -> FastAPI:
    app = FastAPI()
    items = APIRouter(prefix="/api/items")

    @items.get("")
    async def list_items() -> list[int]:
        return []

    @items.post("")
    async def create_item() -> int:
        return 1

    @items.get("/{item_id}")
    async def get_item(item_id: int) -> int:
        return item_id

    @app.get("/native-only")
    async def native_only() -> str:
        return "native"

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.close()

    app.include_router(items)
    app.mount("/assets", StaticFiles(directory=Path(__file__).parent), name="assets")
    v2 = FastAPI()

    @v2.get("/things/{thing_id}")
    async def thing(thing_id: int) -> int:
        return thing_id

    app.mount("/v2", v2)
    app.router.routes.append(Route("/any-method", AnyMethod))
    return app


class AnyMethod(HTTPEndpoint):
    """A Starlette Route around an ASGI class: `methods` is None, every method is served."""

    async def get(self, request: Any) -> PlainTextResponse:
        return PlainTextResponse("native")


def fake_seed(database_url: str | None = None, *, if_empty: bool = False) -> int:
    SEED_CALLS.append((database_url, if_empty))
    return 0 if if_empty else 7


def failing_seed(database_url: str | None = None, *, if_empty: bool = False) -> int:
    raise RuntimeError("the database already has users; seed needs an empty one")
