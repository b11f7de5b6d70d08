"""Two sides of a migration that disagree until DIVERGENT_FIXED is set: the native side sends
prices as strings. Both stamp `served_at`, which differs on every call (noise, not a bug)."""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import FastAPI
from flask import Flask, jsonify, request

FIXED = "DIVERGENT_FIXED"


def create_legacy() -> Flask:
    app = Flask(__name__)

    @app.get("/api/items/<int:item_id>")
    def get_item(item_id: int) -> Any:
        return jsonify(id=item_id, name=f"item {item_id}", price=10 * item_id, served_at=time.time_ns())

    @app.post("/api/items")
    def create_item() -> Any:
        data = request.get_json()
        return jsonify(name=data["name"], price=data["price"]), 201

    return app


def _price(value: int) -> int | str:
    return value if os.environ.get(FIXED) else str(value)


def create_native() -> FastAPI:
    app = FastAPI()

    @app.get("/api/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": f"item {item_id}", "price": _price(10 * item_id), "served_at": time.time_ns()}

    @app.post("/api/items", status_code=201)
    async def create_item(payload: dict[str, Any]) -> dict[str, Any]:
        return {"name": payload["name"], "price": _price(payload["price"])}

    return app
