"""The demo apps, extended with the two cheap endpoints the benchmark needs on both sides.

The demo has a cheap JSON GET on both sides (`/api/users/<id>`, one primary-key read) but no
POST that leaves the database as it was, so both apps get, here and only here:

- `GET  /bench/<variant>/items/<int:item_id>`: a small JSON document, no database;
- `POST /bench/<variant>/echo`: parses a JSON object and sends it back;
- `GET  /bench/<variant>/stream` (legacy side only, for bench_http_clients.py): 16 chunks of
  1 KiB from a generator, which a server sends chunked, having no length to announce.

`<variant>` only lets the bench map give each configuration (native, legacy, shadow 25 %,
...) its own entry while both apps serve the same handler. Bodies are byte-identical on both
sides (sorted keys, compact, trailing newline), so shadow comparisons match.
"""

# no `from __future__ import annotations`: FastAPI reads the handlers' annotations, which name
# classes imported inside the factory
from typing import Any

ITEM: dict[str, Any] = {
    "id": 1,
    "sku": "BK-0001",
    "name": "The Pragmatic Programmer",
    "category": "books",
    "price": 39.99,
    "stock": 12,
    "is_active": True,
    "tags": ["paperback", "software"],
    "created_at": "2024-01-01T10:00:00",
    "updated_at": "2024-01-15T10:00:00",
}


def item(item_id: int) -> dict[str, Any]:
    return {**ITEM, "id": item_id}


def native_app() -> Any:
    """features.main's app (the migrated side, with its settings and lifespan) plus the bench routes."""
    from fastapi import APIRouter, Request

    from features.core.responses import LegacyJSONResponse
    from features.main import create_app

    router = APIRouter()

    @router.get("/bench/{variant}/items/{item_id:int}")
    async def bench_item(variant: str, item_id: int) -> LegacyJSONResponse:
        return LegacyJSONResponse(item(item_id))

    @router.post("/bench/{variant}/echo")
    async def bench_echo(variant: str, request: Request) -> LegacyJSONResponse:
        body = await request.json()
        if not isinstance(body, dict):
            return LegacyJSONResponse({"error": {"code": "bad_request"}}, status_code=400)
        return LegacyJSONResponse(body)

    app = create_app()
    app.include_router(router)
    return app


STREAM_CHUNKS, STREAM_CHUNK = 16, b"x" * 1023 + b"\n"


def legacy_app() -> Any:
    """legacy_flask's app (blueprints, session, error handlers) plus the bench routes."""
    from flask import Blueprint, Response, jsonify, request

    from legacy_flask.app import create_app

    bp = Blueprint("bench", __name__)

    @bp.get("/bench/<variant>/items/<int:item_id>")
    def bench_item(variant: str, item_id: int) -> Any:
        return jsonify(item(item_id))

    @bp.post("/bench/<variant>/echo")
    def bench_echo(variant: str) -> Any:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return jsonify({"error": {"code": "bad_request"}}), 400
        return jsonify(body)

    @bp.get("/bench/<variant>/stream")
    def bench_stream(variant: str) -> Any:
        return Response((STREAM_CHUNK for _ in range(STREAM_CHUNKS)), mimetype="application/octet-stream")

    app = create_app()
    app.register_blueprint(bp)
    return app
