"""/api/products over the seeded catalogue (60 products, 54 active, 6 categories)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from tests.legacy_flask.conftest import collect, error, fields

PRODUCT_KEYS = {"id", "sku", "name", "description", "category", "price", "stock", "is_active",
                "image_url", "created_at", "updated_at"}
CATEGORIES = {"books", "electronics", "garden", "home", "sports", "toys"}
NEW_PRODUCT = {"sku": "NEW-001", "name": "New Thing", "price": 19.99, "category": "toys"}


def test_list_shows_only_active_products(client: FlaskClient) -> None:
    body = client.get("/api/products").get_json()
    assert (body["total"], body["pages"], body["per_page"], body["page"]) == (54, 3, 20, 1)
    assert set(body["items"][0]) == PRODUCT_KEYS
    assert body["items"][0] == {
        "id": 1,
        "sku": "BOO-001",
        "name": "Classic Novel",
        "description": "A classic novel from our books range.",
        "category": "books",
        "price": 226.29,
        "stock": 70,
        "is_active": True,
        "image_url": None,
        "created_at": body["items"][0]["created_at"],
        "updated_at": body["items"][0]["updated_at"],
    }
    everything = collect(client, "/api/products")
    assert len(everything) == 54 and all(p["is_active"] for p in everything)
    assert 10 not in {p["id"] for p in everything}  # the discontinued one
    assert {p["category"] for p in everything} == CATEGORIES


def test_list_filters(client: FlaskClient) -> None:
    everything = collect(client, "/api/products")
    toys = collect(client, "/api/products?category=toys")
    assert [p["id"] for p in toys] == [p["id"] for p in everything if p["category"] == "toys"]
    assert len(toys) == 9

    # q: case-insensitive, name or description
    deluxe = collect(client, "/api/products?q=DELUXE")
    assert deluxe and all("Deluxe" in p["name"] for p in deluxe)
    assert len(collect(client, "/api/products?q=toys range")) == 9  # description only

    cheap = collect(client, "/api/products?min_price=10&max_price=50.5")
    expected = [p["id"] for p in everything if 10 <= p["price"] <= 50.5]
    assert [p["id"] for p in cheap] == expected and expected

    in_stock = collect(client, "/api/products?in_stock=true")
    sold_out = collect(client, "/api/products?in_stock=false")
    assert all(p["stock"] > 0 for p in in_stock) and all(p["stock"] == 0 for p in sold_out)
    assert sold_out and len(in_stock) + len(sold_out) == 54

    combined = collect(client, "/api/products?category=home&in_stock=true&q=classic")
    assert [p["id"] for p in combined] == [
        p["id"] for p in everything
        if p["category"] == "home" and p["stock"] > 0 and "Classic" in p["name"]
    ]


def test_list_sorts(client: FlaskClient) -> None:
    by_id = collect(client, "/api/products")
    assert [p["id"] for p in by_id] == sorted(p["id"] for p in by_id)
    for name in ("price", "stock", "created_at"):
        # ties broken by ascending id both ways (sorted() is stable, even with reverse=True)
        ascending = collect(client, f"/api/products?sort={name}")
        assert ascending == sorted(by_id, key=lambda p, n=name: p[n])  # type: ignore[misc]
        descending = collect(client, f"/api/products?sort=-{name}")
        assert descending == sorted(by_id, key=lambda p, n=name: p[n], reverse=True)  # type: ignore[misc]
    assert [p["id"] for p in collect(client, "/api/products?sort=-id")] == [
        p["id"] for p in reversed(by_id)
    ]
    by_name = collect(client, "/api/products?category=books&sort=-name")
    assert [p["name"] for p in by_name] == [
        "Deluxe Novel", "Deluxe Cookbook", "Deluxe Biography", "Deluxe Atlas",
        "Classic Poetry Collection", "Classic Novel", "Classic Cookbook", "Classic Biography",
        "Classic Atlas",
    ]


def test_list_rejects_bad_query_values(client: FlaskClient) -> None:
    response = client.get(
        "/api/products?min_price=cheap&max_price=-1&in_stock=1&sort=rating&per_page=x"
    )
    assert fields(response) == {
        "min_price": "must be a number",
        "max_price": "must be >= 0",
        "in_stock": "must be a boolean",
        "sort": "must be one of: id, name, price, stock, created_at",
        "per_page": "must be an integer",
    }


def test_get_product_including_inactive(client: FlaskClient) -> None:
    assert client.get("/api/products/1").get_json()["sku"] == "BOO-001"
    # hidden from the list, still reachable by id
    assert client.get("/api/products/10").get_json()["is_active"] is False
    missing = client.get("/api/products/999")
    assert missing.status_code == 404
    assert error(missing) == {"code": "not_found", "message": "product 999 not found"}


def test_create_requires_an_admin(client: FlaskClient, alice: FlaskClient) -> None:
    anonymous = client.post("/api/products", json=NEW_PRODUCT)
    assert anonymous.status_code == 401
    assert error(anonymous) == {"code": "unauthorized", "message": "login required"}
    customer = alice.post("/api/products", json=NEW_PRODUCT)
    assert customer.status_code == 403
    assert error(customer) == {"code": "forbidden", "message": "admin role required"}
    assert client.get("/api/products?q=New Thing").get_json()["total"] == 0


def test_create_product(admin: FlaskClient) -> None:
    response = admin.post("/api/products", json=NEW_PRODUCT)
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/products/{body['id']}"
    assert body == {
        **NEW_PRODUCT,
        "id": body["id"],
        "description": "",
        "stock": 0,
        "is_active": True,
        "image_url": None,
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
    }
    assert admin.get(response.headers["Location"]).get_json() == body

    # money is rounded half-up to cents; integers are fine as prices
    rounded = admin.post("/api/products", json={**NEW_PRODUCT, "sku": "NEW-002", "price": 2.005,
                                                "description": " kept as is ", "stock": 3})
    assert (rounded.get_json()["price"], rounded.get_json()["description"]) == (2.01, " kept as is ")
    whole = admin.post("/api/products", json={**NEW_PRODUCT, "sku": "NEW-003", "price": 7})
    assert whole.get_json()["price"] == 7.0


def test_create_product_duplicate_sku_is_409(admin: FlaskClient) -> None:
    response = admin.post("/api/products", json={**NEW_PRODUCT, "sku": "BOO-001"})
    assert response.status_code == 409
    assert error(response) == {"code": "conflict", "message": "sku already exists"}


def test_create_product_validation(admin: FlaskClient) -> None:
    assert fields(admin.post("/api/products", json={"stock": 1})) == {
        "sku": "is required",
        "name": "is required",
        "price": "is required",
        "category": "is required",
    }
    bad = {"sku": "X" * 41, "name": "n" * 201, "price": "12.50", "category": "", "stock": 1.5,
           "description": 3, "colour": "red"}
    assert fields(admin.post("/api/products", json=bad)) == {
        "sku": "must be 1 to 40 characters",
        "name": "must be 1 to 200 characters",
        "price": "must be a number",
        "category": "must be 1 to 60 characters",
        "stock": "must be an integer",
        "description": "must be a string",
        "colour": "unknown field",
    }
    bad = {**NEW_PRODUCT, "price": -0.01, "stock": -1}
    assert fields(admin.post("/api/products", json=bad)) == {
        "price": "must be >= 0",
        "stock": "must be >= 0",
    }
    bad = {**NEW_PRODUCT, "price": 100000000, "stock": True}
    assert fields(admin.post("/api/products", json=bad)) == {
        "price": "must be <= 99999999.99",
        "stock": "must be an integer",
    }
    for price, message in [(1e30, "must be <= 99999999.99"), (-1e30, "must be >= 0"),
                           (99999999.995, "must be <= 99999999.99"), (float("nan"), "must be a number")]:
        assert fields(admin.patch("/api/products/1", json={"price": price})) == {"price": message}


def test_patch_product(admin: FlaskClient, alice: FlaskClient, client: FlaskClient) -> None:
    assert alice.patch("/api/products/1", json={"stock": 5}).status_code == 403
    assert client.patch("/api/products/1", json={"stock": 5}).status_code == 401

    before = admin.get("/api/products/1").get_json()
    response = admin.patch("/api/products/1", json={"price": 9.5, "stock": 5, "name": "Renamed"})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["price"], body["stock"], body["name"], body["sku"]) == (9.5, 5, "Renamed",
                                                                         "BOO-001")
    assert body["updated_at"] > before["updated_at"]

    assert admin.patch("/api/products/1", json={"is_active": False}).status_code == 200
    assert 1 not in {p["id"] for p in collect(client, "/api/products")}

    assert fields(admin.patch("/api/products/1", json={"sku": "X", "is_active": 1})) == {
        "sku": "unknown field",
        "is_active": "must be a boolean",
    }
    missing = admin.patch("/api/products/999", json={})
    assert error(missing) == {"code": "not_found", "message": "product 999 not found"}


def test_upload_image(admin: FlaskClient, client: FlaskClient, tmp_path: Path) -> None:
    data = {"image": (io.BytesIO(b"\x89PNG fake"), "../../My Photo.PNG")}
    response = admin.post("/api/products/3/image", data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    body = response.get_json()
    # secure_filename strips the path, prefixed with the product id
    assert body["image_url"] == "/uploads/3_My_Photo.PNG"
    assert (tmp_path / "uploads" / "3_My_Photo.PNG").read_bytes() == b"\x89PNG fake"
    assert client.get("/api/products/3").get_json()["image_url"] == "/uploads/3_My_Photo.PNG"
    with client.get("/uploads/3_My_Photo.PNG") as served:
        assert served.status_code == 200 and served.data == b"\x89PNG fake"
    assert client.get("/uploads/..%2Fsecret").status_code == 404


def test_upload_image_errors(admin: FlaskClient, alice: FlaskClient, client: FlaskClient) -> None:
    def upload(c: FlaskClient, filename: str, product_id: int = 3) -> Any:
        data = {"image": (io.BytesIO(b"data"), filename)}
        return c.post(f"/api/products/{product_id}/image", data=data,
                      content_type="multipart/form-data")

    assert upload(client, "a.png").status_code == 401
    assert upload(alice, "a.png").status_code == 403
    assert error(upload(admin, "a.png", 999))["message"] == "product 999 not found"
    assert fields(upload(admin, "notes.txt")) == {
        "image": "must be one of: gif, jpeg, jpg, png, webp"
    }
    assert fields(upload(admin, "../..")) == {"image": "is required"}
    no_file = admin.post("/api/products/3/image", data={"other": "x"},
                         content_type="multipart/form-data")
    assert fields(no_file) == {"image": "is required"}
    assert admin.get("/api/products/3").get_json()["image_url"] is None
