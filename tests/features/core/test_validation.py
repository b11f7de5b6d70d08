"""Body and query checkers: the legacy app's messages, every bad field at once."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, PlainValidator

from features.core import params, validation
from features.core.errors import ValidationFailed, install_error_handlers
from features.core.validation import json_body, validate


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, PlainValidator(validation.text(1, 5))]
    note: Annotated[str, PlainValidator(validation.text(strip=False))] = ""
    email: Annotated[str, PlainValidator(validation.email)] = "x@y.z"
    password: Annotated[str, PlainValidator(validation.password)] = "long-enough"
    role: Annotated[str, PlainValidator(validation.choice(("b", "a")))] = "a"
    flag: Annotated[bool, PlainValidator(validation.boolean)] = False
    count: Annotated[int, PlainValidator(validation.integer(0))] = 0
    price: Annotated[Decimal, PlainValidator(validation.money)] = Decimal(0)


def fields_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        validate(Spec, data)
    return caught.value.fields


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({}, {"name": "is required"}),
        ({"name": None}, {"name": "must be a string"}),
        ({"name": "   "}, {"name": "must be 1 to 5 characters"}),
        ({"name": "toolong"}, {"name": "must be 1 to 5 characters"}),
        ({"name": "a", "extra": 1, "other": 2}, {"extra": "unknown field", "other": "unknown field"}),
        ({"name": "a", "email": "nope"}, {"email": "must be a valid email address"}),
        ({"name": "a", "email": "a@b"}, {"email": "must be a valid email address"}),
        ({"name": "a", "email": 5}, {"email": "must be a string"}),
        ({"name": "a", "email": "a" * 251 + "@b.cd"}, {"email": "must be a valid email address"}),
        ({"name": "a", "password": "short"}, {"password": "must be at least 8 characters"}),
        ({"name": "a", "role": "c"}, {"role": "must be one of: b, a"}),
        ({"name": "a", "role": 1}, {"role": "must be a string"}),
        ({"name": "a", "flag": 1}, {"flag": "must be a boolean"}),
        ({"name": "a", "flag": "true"}, {"flag": "must be a boolean"}),
        ({"name": "a", "count": True}, {"count": "must be an integer"}),
        ({"name": "a", "count": 1.0}, {"count": "must be an integer"}),
        ({"name": "a", "count": "1"}, {"count": "must be an integer"}),
        ({"name": "a", "count": -1}, {"count": "must be >= 0"}),
        ({"name": "a", "count": 2**31}, {"count": "must be <= 2147483647"}),
        ({"name": "a", "price": "1.00"}, {"price": "must be a number"}),
        ({"name": "a", "price": False}, {"price": "must be a number"}),
        ({"name": "a", "price": float("nan")}, {"price": "must be a number"}),
        ({"name": "a", "price": float("inf")}, {"price": "must be a number"}),
        ({"name": "a", "price": -0.01}, {"price": "must be >= 0"}),
        ({"name": "a", "price": 100_000_000}, {"price": "must be <= 99999999.99"}),
        ({"name": "a", "price": 1e30}, {"price": "must be <= 99999999.99"}),
        # the range is checked before rounding, not only after
        ({"name": "a", "price": 99999999.994}, {"price": "must be <= 99999999.99"}),
        ({"name": "a", "price": -0.004}, {"price": "must be >= 0"}),
        ({"name": "a", "price": -1e30}, {"price": "must be >= 0"}),
    ],
)
def test_messages(data: dict[str, Any], fields: dict[str, str]) -> None:
    assert fields_of(data) == fields


def test_every_bad_field_is_reported() -> None:
    assert fields_of({"x": 1, "name": 2, "count": -1}) == {
        "x": "unknown field",
        "name": "must be a string",
        "count": "must be >= 0",
    }


def test_an_email_of_255_characters_is_fine() -> None:
    assert validate(Spec, {"name": "a", "email": "a" * 250 + "@b.cd"}).email.endswith("@b.cd")


def test_clean_values() -> None:
    spec = validate(
        Spec,
        {
            "name": "  ab  ",
            "note": "  kept  ",
            "email": "  Mixed@Case.Example ",
            "price": 19.999,
            "count": 3,
        },
    )
    assert spec.name == "ab"
    assert spec.note == "  kept  "
    assert spec.email == "mixed@case.example"
    assert spec.price == Decimal("20.00")
    assert spec.count == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.005, "0.01"), (0.1, "0.10"), (2.675, "2.68"), (7, "7.00"), (99999999.985, "99999999.99")],
)
def test_money_rounds_half_up_on_the_decimal_text(value: float, expected: str) -> None:
    assert validation.money(value) == Decimal(expected)


class Query(BaseModel):
    page: Annotated[int, PlainValidator(params.query_int(1, 100))] = 1
    price: Annotated[Decimal | None, PlainValidator(params.query_number)] = None
    flag: Annotated[bool | None, PlainValidator(params.query_bool)] = None
    kind: Annotated[str | None, PlainValidator(params.query_choice(("x", "y")))] = None
    sort: Annotated[str, PlainValidator(params.query_sort(("id", "name")))] = "id"


def query_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/q")
    async def q(request: Request) -> dict[str, Any]:
        values = params.query_params(request, Query).model_dump()
        return {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}

    @app.post("/b")
    async def b(request: Request) -> dict[str, Any]:
        values = (await json_body(request, Spec)).model_dump()
        return {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}

    return app


async def get(url: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=query_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request("POST" if url == "/b" else "GET", url, **kwargs)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("page=abc", {"page": "must be an integer"}),
        ("page=1.5", {"page": "must be an integer"}),
        ("page=", {"page": "must be an integer"}),
        ("page=+2", {"page": "must be an integer"}),
        ("page=0", {"page": "must be >= 1"}),
        ("page=-3", {"page": "must be >= 1"}),
        ("page=101", {"page": "must be <= 100"}),
        ("price=x", {"price": "must be a number"}),
        ("price=1e3", {"price": "must be a number"}),
        ("price=.5", {"price": "must be a number"}),
        ("price=-1", {"price": "must be >= 0"}),
        ("flag=yes", {"flag": "must be a boolean"}),
        ("flag=True", {"flag": "must be a boolean"}),
        ("kind=z", {"kind": "must be one of: x, y"}),
        ("sort=-", {"sort": "must be one of: id, name"}),
        ("sort=--id", {"sort": "must be one of: id, name"}),
        ("sort=", {"sort": "must be one of: id, name"}),
        (
            "page=0&price=x&flag=1&kind=z&sort=nope",
            {
                "page": "must be >= 1",
                "price": "must be a number",
                "flag": "must be a boolean",
                "kind": "must be one of: x, y",
                "sort": "must be one of: id, name",
            },
        ),
        # the first of a repeated parameter counts, as in Werkzeug
        ("page=x&page=2", {"page": "must be an integer"}),
    ],
)
async def test_query_messages(query: str, fields: dict[str, str]) -> None:
    response = await get(f"/q?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "validation_error",
        "message": "invalid input",
        "fields": fields,
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"page": 1, "price": None, "flag": None, "kind": None, "sort": "id"}),
        (
            "page=2&page=x&price=10.50&flag=false&kind=y&sort=-name&other=ignored",
            {"page": 2, "price": "10.50", "flag": False, "kind": "y", "sort": "-name"},
        ),
        ("page=007&price=0", {"page": 7, "price": "0", "flag": None, "kind": None, "sort": "id"}),
    ],
)
async def test_query_values(query: str, expected: dict[str, Any]) -> None:
    response = await get(f"/q?{query}")
    assert response.status_code == 200
    assert response.json() == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"", {}),
        (b"[]", {"content-type": "application/json"}),
        (b"{", {"content-type": "application/json"}),
        (b"null", {"content-type": "application/json"}),
        (b"\xff\xfe{", {"content-type": "application/json"}),
    ],
)
async def test_body_that_is_no_json_object(content: bytes, headers: dict[str, str]) -> None:
    response = await get("/b", content=content, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "bad_request",
        "message": "request body must be a JSON object",
    }


@pytest.mark.anyio
async def test_body_is_read_as_json_whatever_the_content_type() -> None:
    response = await get("/b", content=b'{"name": "ok"}', headers={"content-type": "text/plain"})
    assert response.status_code == 200
    assert response.json()["name"] == "ok"
