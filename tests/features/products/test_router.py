"""The products feature on its own: /api/products over a seeded database."""

from __future__ import annotations

import httpx
import pytest

from tests.features.helpers import flask_cookie, scalar, user_id_of

pytestmark = pytest.mark.anyio

PRODUCT_KEYS = [
    "category",
    "created_at",
    "description",
    "id",
    "image_url",
    "is_active",
    "name",
    "price",
    "sku",
    "stock",
    "updated_at",
]
NEW = {"sku": "NEW-001", "name": "Brand New", "price": 19.99, "category": "toys"}


def validation_error(fields: dict[str, str]) -> dict[str, object]:
    return {"error": {"code": "validation_error", "message": "invalid input", "fields": fields}}


def log_in(client: httpx.AsyncClient, url: str, email: str) -> None:
    client.cookies.set("session", flask_cookie({"user_id": user_id_of(url, email)}))


@pytest.fixture
def admin(native: httpx.AsyncClient, seeded_url: str) -> httpx.AsyncClient:
    log_in(native, seeded_url, "admin@example.com")
    return native


async def test_list_shows_only_active_products(native: httpx.AsyncClient, seeded_url: str) -> None:
    active = scalar(seeded_url, "select count(*) from products where is_active = :t", t=True)
    assert active < scalar(seeded_url, "select count(*) from products")
    body = (await native.get("/api/products?per_page=100")).json()
    assert body["total"] == active == len(body["items"])
    assert all(p["is_active"] for p in body["items"])
    first = body["items"][0]
    assert list(first) == PRODUCT_KEYS
    assert isinstance(first["price"], float)
    assert first["image_url"] is None


async def test_list_filters(native: httpx.AsyncClient) -> None:
    books = (await native.get("/api/products?category=books&per_page=100")).json()["items"]
    assert books and {p["category"] for p in books} == {"books"}

    deluxe = (await native.get("/api/products?q=DELUXE&per_page=100")).json()["items"]
    assert deluxe and all("deluxe" in (p["name"] + p["description"]).lower() for p in deluxe)

    ranged = (await native.get("/api/products?min_price=20&max_price=50.5&per_page=100")).json()
    assert ranged["items"] and all(20 <= p["price"] <= 50.5 for p in ranged["items"])

    in_stock = (await native.get("/api/products?in_stock=true&per_page=100")).json()
    sold_out = (await native.get("/api/products?in_stock=false&per_page=100")).json()
    assert all(p["stock"] > 0 for p in in_stock["items"])
    assert sold_out["items"] and all(p["stock"] == 0 for p in sold_out["items"])
    everything = (await native.get("/api/products")).json()["total"]
    assert in_stock["total"] + sold_out["total"] == everything


async def test_list_sorts(native: httpx.AsyncClient) -> None:
    items = (await native.get("/api/products?sort=-price&per_page=100")).json()["items"]
    keys = [(p["price"], -p["id"]) for p in items]
    assert keys == sorted(keys, reverse=True)
    items = (await native.get("/api/products?sort=stock&per_page=100")).json()["items"]
    keys = [(p["stock"], p["id"]) for p in items]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("min_price=cheap", {"min_price": "must be a number"}),
        ("max_price=-5", {"max_price": "must be >= 0"}),
        ("in_stock=yes", {"in_stock": "must be a boolean"}),
        ("sort=sku", {"sort": "must be one of: id, name, price, stock, created_at"}),
        (
            "page=x&per_page=1000&min_price=1e2",
            {
                "page": "must be an integer",
                "per_page": "must be <= 100",
                "min_price": "must be a number",
            },
        ),
    ],
)
async def test_list_bad_params(native: httpx.AsyncClient, query: str, fields: dict[str, str]) -> None:
    response = await native.get(f"/api/products?{query}")
    assert response.status_code == 400
    assert response.json() == validation_error(fields)


async def test_get_reaches_inactive_products(native: httpx.AsyncClient, seeded_url: str) -> None:
    hidden = scalar(seeded_url, "select min(id) from products where is_active = :f", f=False)
    response = await native.get(f"/api/products/{hidden}")
    assert response.status_code == 200
    assert response.json()["is_active"] is False


async def test_get_missing(native: httpx.AsyncClient) -> None:
    response = await native.get("/api/products/424242")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "product 424242 not found"}}


async def test_writes_need_a_login(native: httpx.AsyncClient) -> None:
    for response in (
        await native.post("/api/products", json=NEW),
        await native.patch("/api/products/1", json={"stock": 1}),
    ):
        assert response.status_code == 401
        assert response.json() == {"error": {"code": "unauthorized", "message": "login required"}}


async def test_writes_need_the_admin_role(native: httpx.AsyncClient, seeded_url: str) -> None:
    log_in(native, seeded_url, "alice@example.com")
    for response in (
        await native.post("/api/products", json=NEW),
        await native.patch("/api/products/1", json={"stock": 1}),
        # the role check comes before the 404 and the body
        await native.patch("/api/products/424242", content=b"junk"),
    ):
        assert response.status_code == 403
        assert response.json() == {"error": {"code": "forbidden", "message": "admin role required"}}


async def test_create(admin: httpx.AsyncClient) -> None:
    response = await admin.post("/api/products", json=NEW)
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/api/products/{body['id']}"
    assert list(body) == PRODUCT_KEYS
    assert {k: body[k] for k in NEW} == NEW
    assert (body["description"], body["stock"], body["is_active"]) == ("", 0, True)
    assert (await admin.get(response.headers["location"])).json() == body


@pytest.mark.parametrize(("price", "stored"), [(19.999, 20.0), (0.005, 0.01), (7, 7.0), (0, 0.0)])
async def test_create_rounds_the_price_to_cents(
    admin: httpx.AsyncClient, price: float, stored: float
) -> None:
    response = await admin.post("/api/products", json={**NEW, "price": price})
    assert response.status_code == 201
    assert response.json()["price"] == stored
    assert (await admin.get(response.headers["location"])).json()["price"] == stored


async def test_create_duplicate_sku(admin: httpx.AsyncClient) -> None:
    response = await admin.post("/api/products", json={**NEW, "sku": "BOO-001"})
    assert response.status_code == 409
    assert response.json() == {"error": {"code": "conflict", "message": "sku already exists"}}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {},
            {
                "sku": "is required",
                "name": "is required",
                "price": "is required",
                "category": "is required",
            },
        ),
        (
            {**NEW, "price": "19.99", "stock": -1, "description": 5, "image_url": "x"},
            {
                "image_url": "unknown field",
                "price": "must be a number",
                "stock": "must be >= 0",
                "description": "must be a string",
            },
        ),
        (
            {**NEW, "sku": "S" * 41, "category": " ", "price": 100_000_000, "stock": 1.5},
            {
                "sku": "must be 1 to 40 characters",
                "category": "must be 1 to 60 characters",
                "price": "must be <= 99999999.99",
                "stock": "must be an integer",
            },
        ),
    ],
)
async def test_create_invalid(
    admin: httpx.AsyncClient, body: dict[str, object], fields: dict[str, str]
) -> None:
    response = await admin.post("/api/products", json=body)
    assert response.status_code == 400
    assert response.json() == validation_error(fields)


async def test_patch(admin: httpx.AsyncClient) -> None:
    before = (await admin.get("/api/products/1")).json()
    response = await admin.patch(
        "/api/products/1", json={"price": 5, "stock": 0, "description": "  spaced  "}
    )
    assert response.status_code == 200
    after = response.json()
    assert (after["price"], after["stock"], after["description"]) == (5.0, 0, "  spaced  ")
    assert after["sku"] == before["sku"]
    assert after["updated_at"] > before["updated_at"]


async def test_patch_deactivating_hides_from_the_list(admin: httpx.AsyncClient) -> None:
    assert (await admin.patch("/api/products/2", json={"is_active": False})).status_code == 200
    listed = (await admin.get("/api/products?per_page=100")).json()["items"]
    assert 2 not in [p["id"] for p in listed]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"sku": "NEW"}, {"sku": "unknown field"}),
        ({"name": ""}, {"name": "must be 1 to 200 characters"}),
        ({"stock": None, "is_active": 1}, {"stock": "must be an integer", "is_active": "must be a boolean"}),
    ],
)
async def test_patch_invalid(
    admin: httpx.AsyncClient, body: dict[str, object], fields: dict[str, str]
) -> None:
    response = await admin.patch("/api/products/1", json=body)
    assert response.status_code == 400
    assert response.json() == validation_error(fields)


async def test_patch_missing_is_404_before_the_body_is_read(admin: httpx.AsyncClient) -> None:
    response = await admin.patch("/api/products/424242", content=b"junk")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "product 424242 not found"
