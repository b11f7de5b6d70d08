"""/api/orders: ownership, ordering with stock checks, and the streamed CSV export."""

from __future__ import annotations

import csv
import inspect
import io
from decimal import Decimal
from typing import Any

from flask import Flask, Response, request_finished
from flask.testing import FlaskClient

from tests.legacy_flask.conftest import collect, error, fields

ORDER_KEYS = {"id", "user_id", "status", "total", "created_at", "items"}


def test_orders_require_login(client: FlaskClient) -> None:
    for response in (
        client.get("/api/orders"),
        client.get("/api/orders/1"),
        client.post("/api/orders", json={"items": [{"product_id": 1, "quantity": 1}]}),
        client.get("/api/orders/export.csv"),
    ):
        assert response.status_code == 401
        assert error(response) == {"code": "unauthorized", "message": "login required"}


def test_customers_see_their_orders_and_admins_all(admin: FlaskClient, alice: FlaskClient) -> None:
    everything = collect(admin, "/api/orders")
    assert [o["id"] for o in everything] == list(range(1, 121))
    mine = collect(alice, "/api/orders")
    assert [o["id"] for o in mine] == [o["id"] for o in everything if o["user_id"] == 2]
    assert len(mine) >= 12  # every tenth seeded order is alice's

    order = mine[0]
    assert set(order) == ORDER_KEYS
    assert set(order["items"][0]) == {"product_id", "quantity", "unit_price"}
    assert 1 <= len(order["items"]) <= 4
    total = sum(Decimal(str(i["unit_price"])) * i["quantity"] for i in order["items"])
    assert Decimal(str(order["total"])) == total

    page = alice.get("/api/orders?per_page=5&page=2").get_json()
    assert page["total"] == len(mine) and page["pages"] == -(-len(mine) // 5)
    assert [o["id"] for o in page["items"]] == [o["id"] for o in mine[5:10]]


def test_list_filters_and_sorts(admin: FlaskClient) -> None:
    everything = collect(admin, "/api/orders")
    paid = collect(admin, "/api/orders?status=paid")
    assert paid and [o["id"] for o in paid] == [o["id"] for o in everything if o["status"] == "paid"]
    by_total = collect(admin, "/api/orders?sort=-total")
    assert by_total == sorted(everything, key=lambda o: o["total"], reverse=True)
    by_created = collect(admin, "/api/orders?sort=created_at&status=shipped")
    assert by_created == sorted(
        (o for o in everything if o["status"] == "shipped"), key=lambda o: o["created_at"]
    )
    assert fields(admin.get("/api/orders?status=lost&sort=user_id")) == {
        "status": "must be one of: cancelled, paid, pending, shipped",
        "sort": "must be one of: id, created_at, total",
    }


def test_get_order_only_if_yours(admin: FlaskClient, alice: FlaskClient) -> None:
    everything = collect(admin, "/api/orders")
    hers = next(o for o in everything if o["user_id"] == 2)
    other = next(o for o in everything if o["user_id"] != 2)
    assert alice.get(f"/api/orders/{hers['id']}").get_json() == hers
    assert admin.get(f"/api/orders/{other['id']}").get_json() == other
    # someone else's order looks exactly like a missing one
    for order_id in (other["id"], 999):
        response = alice.get(f"/api/orders/{order_id}")
        assert response.status_code == 404
        assert error(response) == {"code": "not_found", "message": f"order {order_id} not found"}


def test_create_order_decrements_stock(alice: FlaskClient) -> None:
    before = {pid: alice.get(f"/api/products/{pid}").get_json() for pid in (1, 2)}
    items = [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1},
             {"product_id": 1, "quantity": 1}]
    response = alice.post("/api/orders", json={"items": items})
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/orders/{body['id']}"
    assert body["id"] == 121 and body["user_id"] == 2 and body["status"] == "pending"
    assert body["items"] == [
        {"product_id": i["product_id"], "quantity": i["quantity"],
         "unit_price": before[i["product_id"]]["price"]}
        for i in items
    ]
    expected = Decimal(str(before[1]["price"])) * 3 + Decimal(str(before[2]["price"]))
    assert Decimal(str(body["total"])) == expected
    assert alice.get(response.headers["Location"]).get_json() == body
    assert alice.get("/api/products/1").get_json()["stock"] == before[1]["stock"] - 3
    assert alice.get("/api/products/2").get_json()["stock"] == before[2]["stock"] - 1


def test_create_order_out_of_stock_is_409_and_changes_nothing(
    alice: FlaskClient, admin: FlaskClient
) -> None:
    stock = alice.get("/api/products/1").get_json()["stock"]
    # each line alone fits, together they do not
    items = [{"product_id": 2, "quantity": 1}, {"product_id": 1, "quantity": stock},
             {"product_id": 1, "quantity": 1}]
    response = alice.post("/api/orders", json={"items": items})
    assert response.status_code == 409
    assert error(response) == {"code": "conflict", "message": "insufficient stock for product 1"}
    assert alice.get("/api/products/1").get_json()["stock"] == stock
    assert admin.get("/api/orders").get_json()["total"] == 120

    exact = alice.post("/api/orders", json={"items": [{"product_id": 1, "quantity": stock}]})
    assert exact.status_code == 201
    assert alice.get("/api/products/1").get_json()["stock"] == 0


def test_create_order_validation(alice: FlaskClient) -> None:
    def post(body: Any) -> Any:
        return alice.post("/api/orders", json=body)

    assert fields(post({})) == {"items": "is required"}
    assert fields(post({"items": [], "note": "x"})) == {
        "items": "must be a non-empty list",
        "note": "unknown field",
    }
    assert fields(post({"items": {"product_id": 1}})) == {"items": "must be a non-empty list"}
    bad_items = [
        "one",
        {"quantity": 1},
        {"product_id": "1", "quantity": 0},
        {"product_id": 1, "quantity": 2.0, "price": 1},
    ]
    assert fields(post({"items": bad_items})) == {
        "items[0]": "must be an object",
        "items[1].product_id": "is required",
        "items[2].product_id": "must be an integer",
        "items[2].quantity": "must be >= 1",
        "items[3].quantity": "must be an integer",
        "items[3].price": "unknown field",
    }
    # unknown and discontinued (10) products
    unknown = [{"product_id": 1, "quantity": 1}, {"product_id": 999, "quantity": 1},
               {"product_id": 10, "quantity": 1}]
    assert fields(post({"items": unknown})) == {
        "items[1].product_id": "unknown product",
        "items[2].product_id": "unknown product",
    }
    assert alice.get("/api/orders").get_json()["total"] == len(collect(alice, "/api/orders"))


def test_export_requires_an_admin(alice: FlaskClient) -> None:
    response = alice.get("/api/orders/export.csv")
    assert response.status_code == 403
    assert error(response) == {"code": "forbidden", "message": "admin role required"}


def test_export_streams_one_row_per_chunk(app: Flask, admin: FlaskClient) -> None:
    seen: list[Response] = []

    def keep(_sender: Flask, response: Response, **_: Any) -> None:
        seen.append(response)

    with request_finished.connected_to(keep, app):
        response = admin.get("/api/orders/export.csv", buffered=False)
    # the view handed Werkzeug a generator, not a list or a string
    assert len(seen) == 1 and inspect.isgenerator(seen[0].response)
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == "attachment; filename=orders.csv"
    assert "Content-Length" not in response.headers
    chunks = list(response.response)
    response.close()
    assert len(chunks) == 121  # the header, then one chunk per order
    assert chunks[0] == b"id,user_id,status,total,created_at\r\n"
    assert all(chunk.endswith(b"\r\n") and chunk.count(b"\r\n") == 1 for chunk in chunks)

    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    orders = collect(admin, "/api/orders")
    assert rows[1:] == [
        [str(o["id"]), str(o["user_id"]), o["status"], f"{Decimal(str(o['total'])):.2f}",
         o["created_at"]]
        for o in orders
    ]
