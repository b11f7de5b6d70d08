"""The users feature on its own: /api/users and /api/me over a seeded database."""

from __future__ import annotations

import re

import httpx
import pytest
from werkzeug.security import check_password_hash

from tests.features.helpers import HASH_ITERATIONS, flask_cookie, scalar, user_id_of

pytestmark = pytest.mark.anyio

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
USER_KEYS = ["created_at", "email", "id", "is_active", "name", "role", "updated_at"]


def validation_error(fields: dict[str, str]) -> dict[str, object]:
    return {"error": {"code": "validation_error", "message": "invalid input", "fields": fields}}


async def test_list_defaults(native: httpx.AsyncClient, seeded_url: str) -> None:
    total = scalar(seeded_url, "select count(*) from users")
    response = await native.get("/api/users")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["items", "page", "pages", "per_page", "total"]
    assert (body["page"], body["per_page"], body["total"]) == (1, 20, total)
    assert body["pages"] == -(-total // 20)
    assert [user["id"] for user in body["items"]] == sorted(u["id"] for u in body["items"])
    first = body["items"][0]
    assert list(first) == USER_KEYS
    assert first["email"] == "admin@example.com"
    assert first["role"] == "admin"
    assert TIMESTAMP.fullmatch(first["created_at"])
    assert "password_hash" not in first


async def test_list_pages_past_the_end_are_empty(native: httpx.AsyncClient) -> None:
    body = (await native.get("/api/users?page=999&per_page=10")).json()
    assert body["items"] == []
    assert body["page"] == 999
    assert body["total"] > 0


async def test_list_filters(native: httpx.AsyncClient, seeded_url: str) -> None:
    staff = (await native.get("/api/users?role=staff")).json()
    assert {u["role"] for u in staff["items"]} == {"staff"}
    assert staff["total"] == scalar(seeded_url, "select count(*) from users where role='staff'")

    inactive = (await native.get("/api/users?is_active=false&per_page=100")).json()
    assert inactive["total"] == scalar(seeded_url, "select count(*) from users where is_active = :f", f=False)
    assert inactive["total"] > 0
    assert not any(u["is_active"] for u in inactive["items"])

    alice = (await native.get("/api/users?q=ALICE")).json()
    assert [u["email"] for u in alice["items"]] == ["alice@example.com"]
    by_name = (await native.get("/api/users?q=ada%20adm")).json()
    assert [u["email"] for u in by_name["items"]] == ["admin@example.com"]
    # LIKE wildcards in q are literal characters
    assert (await native.get("/api/users?q=%25")).json()["total"] == 0
    assert (await native.get("/api/users?q=_")).json()["total"] == 0


async def test_list_sorts_with_ties_broken_by_id(native: httpx.AsyncClient) -> None:
    items = (await native.get("/api/users?sort=-name&per_page=100")).json()["items"]
    keys = [(u["name"], -u["id"]) for u in items]
    assert keys == sorted(keys, reverse=True)
    items = (await native.get("/api/users?sort=email&per_page=100")).json()["items"]
    assert [u["email"] for u in items] == sorted(u["email"] for u in items)
    items = (await native.get("/api/users?sort=-id&per_page=5")).json()["items"]
    assert [u["id"] for u in items] == sorted((u["id"] for u in items), reverse=True)


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("page=0", {"page": "must be >= 1"}),
        ("page=two", {"page": "must be an integer"}),
        ("page=2147483648", {"page": "must be <= 2147483647"}),
        ("per_page=101", {"per_page": "must be <= 100"}),
        ("role=boss", {"role": "must be one of: admin, customer, staff"}),
        ("is_active=1", {"is_active": "must be a boolean"}),
        ("sort=password_hash", {"sort": "must be one of: id, name, email, created_at"}),
        (
            "per_page=0&role=x&sort=-",
            {
                "per_page": "must be >= 1",
                "role": "must be one of: admin, customer, staff",
                "sort": "must be one of: id, name, email, created_at",
            },
        ),
    ],
)
async def test_list_bad_params(native: httpx.AsyncClient, query: str, fields: dict[str, str]) -> None:
    response = await native.get(f"/api/users?{query}")
    assert response.status_code == 400
    assert response.json() == validation_error(fields)


async def test_get(native: httpx.AsyncClient) -> None:
    response = await native.get("/api/users/2")
    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.com"


@pytest.mark.parametrize("path", ["/api/users/999999", "/api/users/0"])
async def test_get_missing(native: httpx.AsyncClient, path: str) -> None:
    response = await native.get(path)
    assert response.status_code == 404
    user_id = path.rsplit("/", 1)[1]
    assert response.json() == {"error": {"code": "not_found", "message": f"user {user_id} not found"}}


@pytest.mark.parametrize("path", ["/api/users/abc", "/api/users/-1", "/api/users/"])
async def test_paths_that_are_no_user_id(native: httpx.AsyncClient, path: str) -> None:
    response = await native.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "not found"}}


async def test_create(native: httpx.AsyncClient, seeded_url: str) -> None:
    response = await native.post(
        "/api/users",
        json={"email": "  New.Person@Example.COM ", "name": " New Person ", "password": "s3cret-pw"},
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/api/users/{body['id']}"
    assert list(body) == USER_KEYS
    assert body["email"] == "new.person@example.com"
    assert body["name"] == "New Person"
    assert body["role"] == "customer"
    assert body["is_active"] is True
    assert body["created_at"] == body["updated_at"]
    assert (await native.get(response.headers["location"])).json() == body

    stored = scalar(seeded_url, "select password_hash from users where id = :id", id=body["id"])
    assert stored.startswith(f"pbkdf2:sha256:{HASH_ITERATIONS}$")
    # werkzeug, which the legacy login uses, accepts it
    assert check_password_hash(stored, "s3cret-pw")
    assert not check_password_hash(stored, "wrong-password")


async def test_create_with_role(native: httpx.AsyncClient) -> None:
    body = {"email": "s@example.org", "name": "S", "password": "12345678", "role": "staff"}
    response = await native.post("/api/users", json=body)
    assert response.status_code == 201
    assert response.json()["role"] == "staff"


@pytest.mark.parametrize("email", ["alice@example.com", " ALICE@example.com"])
async def test_create_duplicate_email(native: httpx.AsyncClient, email: str) -> None:
    body = {"email": email, "name": "Again", "password": "12345678"}
    response = await native.post("/api/users", json=body)
    assert response.status_code == 409
    assert response.json() == {"error": {"code": "conflict", "message": "email already registered"}}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {},
            {"email": "is required", "name": "is required", "password": "is required"},
        ),
        (
            {"email": "x@y.zz", "name": "", "password": "short", "role": "root"},
            {
                "name": "must be 1 to 120 characters",
                "password": "must be at least 8 characters",
                "role": "must be one of: admin, customer, staff",
            },
        ),
        (
            {"email": "nope", "name": "n" * 121, "password": 12345678, "is_active": True},
            {
                "is_active": "unknown field",
                "email": "must be a valid email address",
                "name": "must be 1 to 120 characters",
                "password": "must be a string",
            },
        ),
    ],
)
async def test_create_invalid(
    native: httpx.AsyncClient, body: dict[str, object], fields: dict[str, str]
) -> None:
    response = await native.post("/api/users", json=body)
    assert response.status_code == 400
    assert response.json() == validation_error(fields)


@pytest.mark.parametrize("content", [b"", b"[]", b"{not json", b'"a string"'])
async def test_create_needs_a_json_object(native: httpx.AsyncClient, content: bytes) -> None:
    response = await native.post("/api/users", content=content)
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "bad_request", "message": "request body must be a JSON object"}
    }


async def test_replace(native: httpx.AsyncClient) -> None:
    before = (await native.get("/api/users/5")).json()
    body = {"email": "Carol@Example.net", "name": "Carol C", "role": "staff", "is_active": False}
    response = await native.put("/api/users/5", json=body)
    assert response.status_code == 200
    after = response.json()
    assert after["email"] == "carol@example.net"
    assert (after["name"], after["role"], after["is_active"]) == ("Carol C", "staff", False)
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] > before["updated_at"]
    assert (await native.get("/api/users/5")).json() == after


async def test_replace_needs_every_field(native: httpx.AsyncClient) -> None:
    response = await native.put("/api/users/5", json={"name": "Only name"})
    assert response.status_code == 400
    assert response.json() == validation_error(
        {"email": "is required", "role": "is required", "is_active": "is required"}
    )


async def test_replace_keeps_its_own_email_but_not_anothers(native: httpx.AsyncClient) -> None:
    own = {"email": "alice@example.com", "name": "Alice", "role": "customer", "is_active": True}
    assert (await native.put("/api/users/2", json=own)).status_code == 200
    taken = {**own, "email": "admin@example.com"}
    response = await native.put("/api/users/2", json=taken)
    assert response.status_code == 409
    assert (await native.get("/api/users/2")).json()["email"] == "alice@example.com"


async def test_missing_user_is_404_before_the_body_is_read(native: httpx.AsyncClient) -> None:
    for method in ("PUT", "PATCH"):
        response = await native.request(method, "/api/users/999999", content=b"not json")
        assert response.status_code == 404, method
    assert (await native.delete("/api/users/999999")).status_code == 404


async def test_patch(native: httpx.AsyncClient) -> None:
    response = await native.patch("/api/users/4", json={"name": "Robert"})
    assert response.status_code == 200
    assert response.json()["name"] == "Robert"
    assert response.json()["email"] == "bob.baker1@example.com"
    assert (await native.patch("/api/users/4", json={})).status_code == 200


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"password": "newpassword"}, {"password": "unknown field"}),
        ({"name": None}, {"name": "must be a string"}),
        ({"is_active": "false"}, {"is_active": "must be a boolean"}),
        ({"role": None, "id": 3}, {"id": "unknown field", "role": "must be a string"}),
    ],
)
async def test_patch_invalid(
    native: httpx.AsyncClient, body: dict[str, object], fields: dict[str, str]
) -> None:
    response = await native.patch("/api/users/4", json=body)
    assert response.status_code == 400
    assert response.json() == validation_error(fields)


async def test_delete_takes_the_users_orders_along(native: httpx.AsyncClient, seeded_url: str) -> None:
    alice = user_id_of(seeded_url, "alice@example.com")
    assert scalar(seeded_url, "select count(*) from orders where user_id = :u", u=alice) > 0
    response = await native.delete(f"/api/users/{alice}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await native.get(f"/api/users/{alice}")).status_code == 404
    assert scalar(seeded_url, "select count(*) from orders where user_id = :u", u=alice) == 0
    orphans = "select count(*) from order_items where order_id not in (select id from orders)"
    assert scalar(seeded_url, orphans) == 0


async def test_me(native: httpx.AsyncClient, seeded_url: str) -> None:
    response = await native.get("/api/me")
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "login required"}}

    alice = user_id_of(seeded_url, "alice@example.com")
    native.cookies.set("session", flask_cookie({"user_id": alice}))
    response = await native.get("/api/me")
    assert response.status_code == 200
    assert response.json() == (await native.get(f"/api/users/{alice}")).json()

    await native.patch(f"/api/users/{alice}", json={"is_active": False})
    assert (await native.get("/api/me")).status_code == 401
