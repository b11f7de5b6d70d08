"""A write sent by the gateway as a rollback shadow answers like the real one and leaves nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.features.helpers import flask_cookie, scalar, user_id_of

ROLLBACK = {"X-Gateway-Shadow": "rollback"}
NEW_USER = {"email": "shadow@example.com", "name": "Shadow", "password": "long-enough-pw"}

pytestmark = pytest.mark.anyio


async def test_create_answers_201_and_leaves_no_row(native: httpx.AsyncClient, seeded_url: str) -> None:
    before = scalar(seeded_url, "select count(*) from users")
    shadow = await native.post("/api/users", json=NEW_USER, headers=ROLLBACK)
    assert shadow.status_code == 201 and shadow.json()["email"] == NEW_USER["email"]
    assert scalar(seeded_url, "select count(*) from users") == before
    real = await native.post("/api/users", json=NEW_USER)
    assert real.status_code == 201  # no conflict: the shadow's row never existed
    assert scalar(seeded_url, "select count(*) from users") == before + 1


async def test_update_and_delete_are_rolled_back(native: httpx.AsyncClient, seeded_url: str) -> None:
    alice = user_id_of(seeded_url, "alice@example.com")
    native.cookies.set("session", flask_cookie({"user_id": user_id_of(seeded_url, "admin@example.com")}))
    patched = await native.patch(f"/api/users/{alice}", json={"name": "Changed"}, headers=ROLLBACK)
    deleted = await native.delete(f"/api/users/{alice}", headers=ROLLBACK)
    assert (patched.status_code, patched.json()["name"], deleted.status_code) == (200, "Changed", 204)
    assert scalar(seeded_url, "select name from users where id = :id", id=alice) != "Changed"


async def test_a_copy_header_or_garbage_does_not_roll_back(native: httpx.AsyncClient, seeded_url: str) -> None:
    before = scalar(seeded_url, "select count(*) from users")
    r = await native.post("/api/users", json=NEW_USER, headers={"X-Gateway-Shadow": "bogus"})
    assert r.status_code == 201
    assert scalar(seeded_url, "select count(*) from users") == before + 1
