"""One error shape at the edge: domain errors, FastAPI's own validation, routing errors."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Query
from pydantic import BaseModel, Field

from features.core.errors import (
    BadRequest,
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
    install_error_handlers,
)
from features.core.responses import LegacyJSONResponse

pytestmark = pytest.mark.anyio


class Item(BaseModel):
    name: str
    count: int = Field(ge=0, le=10)
    active: bool = True


def app_raising(error: DomainError) -> FastAPI:
    app = FastAPI(default_response_class=LegacyJSONResponse)
    install_error_handlers(app)

    @app.get("/api/boom")
    async def boom() -> None:
        raise error

    @app.get("/api/crash")
    async def crash() -> None:
        raise RuntimeError("a bug")

    @app.get("/api/typed")
    async def typed(page: Annotated[int, Query(ge=1)] = 1, flag: bool = False) -> dict[str, object]:
        return {"page": page, "flag": flag}

    @app.post("/api/typed")
    async def typed_body(item: Item) -> Item:
        return item

    return app


async def call(app: FastAPI, method: str, url: str, **kwargs: object) -> httpx.Response:
    # an unexpected exception still reaches the server (to be logged) after the 500 is sent
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, url, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (NotFound("user 42 not found"), 404, {"code": "not_found", "message": "user 42 not found"}),
        (Conflict("sku already exists"), 409, {"code": "conflict", "message": "sku already exists"}),
        (Unauthorized(), 401, {"code": "unauthorized", "message": "login required"}),
        (Forbidden(), 403, {"code": "forbidden", "message": "admin role required"}),
        (
            BadRequest(),
            400,
            {"code": "bad_request", "message": "request body must be a JSON object"},
        ),
        (
            ValidationFailed({"email": "is required"}),
            400,
            {"code": "validation_error", "message": "invalid input", "fields": {"email": "is required"}},
        ),
    ],
)
async def test_domain_errors_render_the_legacy_shape(
    error: DomainError, status: int, body: dict[str, object]
) -> None:
    response = await call(app_raising(error), "GET", "/api/boom")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": body}


async def test_error_bytes_are_what_flask_writes() -> None:
    response = await call(app_raising(ValidationFailed({"b": "x", "a": "é"})), "GET", "/api/boom")
    # sorted keys, compact, ASCII-escaped, newline-terminated: Flask's jsonify
    assert response.content == (
        b'{"error":{"code":"validation_error","fields":{"a":"\\u00e9","b":"x"},"message":"invalid input"}}\n'
    )


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("page=abc", {"page": "must be an integer"}),
        ("page=0", {"page": "must be >= 1"}),
        ("flag=maybe", {"flag": "must be a boolean"}),
    ],
)
async def test_fastapi_query_validation_becomes_a_legacy_400(query: str, fields: dict[str, str]) -> None:
    response = await call(app_raising(NotFound()), "GET", f"/api/typed?{query}")
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "validation_error", "message": "invalid input", "fields": fields}
    }


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"name": "is required", "count": "is required"}),
        ({"name": 1, "count": "three"}, {"name": "must be a string", "count": "must be an integer"}),
        ({"name": "a", "count": 11}, {"count": "must be <= 10"}),
        ({"name": "a", "count": -1, "active": "x"}, {"count": "must be >= 0", "active": "must be a boolean"}),
    ],
)
async def test_fastapi_body_validation_becomes_a_legacy_400(
    body: dict[str, object], fields: dict[str, str]
) -> None:
    response = await call(app_raising(NotFound()), "POST", "/api/typed", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == fields


@pytest.mark.parametrize("content", [b"", b"[1]", b"not json", b'"text"'])
async def test_a_body_that_is_no_object_is_a_bad_request(content: bytes) -> None:
    response = await call(
        app_raising(NotFound()),
        "POST",
        "/api/typed",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "bad_request", "message": "request body must be a JSON object"}
    }


async def test_unknown_path_is_a_legacy_404() -> None:
    response = await call(app_raising(NotFound()), "GET", "/api/nothing/here")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "not found"}}


async def test_wrong_method_is_a_legacy_405_listing_every_allowed_method() -> None:
    response = await call(app_raising(NotFound()), "DELETE", "/api/typed")
    assert response.status_code == 405
    assert response.json() == {"error": {"code": "method_not_allowed", "message": "method not allowed"}}
    assert response.headers["allow"] == "GET, POST"


async def test_an_unexpected_exception_is_a_legacy_500() -> None:
    response = await call(app_raising(NotFound()), "GET", "/api/crash")
    assert response.status_code == 500
    assert response.content == (b'{"error":{"code":"internal_error","message":"internal server error"}}\n')
