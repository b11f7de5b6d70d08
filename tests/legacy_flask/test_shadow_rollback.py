"""The legacy app honours the gateway's rollback shadow: a write answers, and leaves nothing."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from legacy_flask.db import get_engine

ROLLBACK = {"X-Gateway-Shadow": "rollback"}
NEW_USER = {"email": "shadow@example.com", "name": "Shadow", "password": "long-enough-pw"}


def count(app: Flask, table: str) -> int:
    with get_engine(app).connect() as conn:
        return int(conn.scalar(sa.text(f"select count(*) from {table}")) or 0)


def test_create_answers_201_and_leaves_no_row(app: Flask, client: FlaskClient) -> None:
    before = count(app, "users")
    shadow = client.post("/api/users", json=NEW_USER, headers=ROLLBACK)
    assert shadow.status_code == 201 and shadow.get_json()["email"] == NEW_USER["email"]
    assert count(app, "users") == before
    assert client.post("/api/users", json=NEW_USER).status_code == 201
    assert count(app, "users") == before + 1


def test_order_with_stock_change_is_rolled_back(app: Flask, alice: FlaskClient) -> None:
    orders, stock = count(app, "orders"), alice.get("/api/products/1").get_json()["stock"]
    r = alice.post("/api/orders", json={"items": [{"product_id": 1, "quantity": 1}]}, headers=ROLLBACK)
    assert r.status_code == 201, r.get_json()
    assert count(app, "orders") == orders
    assert alice.get("/api/products/1").get_json()["stock"] == stock


def test_conflict_inside_a_shadow_still_answers_409(app: Flask, client: FlaskClient) -> None:
    taken = {**NEW_USER, "email": "alice@example.com"}
    r = client.post("/api/users", json=taken, headers=ROLLBACK)
    assert r.status_code == 409
    assert client.get("/api/users/1").status_code == 200  # the app carries on normally
