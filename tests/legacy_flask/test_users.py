"""/api/users and /api/me over the seeded database (50 users), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.legacy_flask.conftest import collect, error, fields, login

USER_KEYS = {"id", "email", "name", "role", "is_active", "created_at", "updated_at"}
NEW_USER = {"email": "New.Person@Example.com", "name": "  New Person ", "password": "s3cret-pass"}


def test_list_paginates_with_defaults(client: FlaskClient) -> None:
    body = client.get("/api/users").get_json()
    assert {k: body[k] for k in ("page", "per_page", "total", "pages")} == {
        "page": 1, "per_page": 20, "total": 50, "pages": 3,
    }
    assert [u["id"] for u in body["items"]] == list(range(1, 21))
    assert set(body["items"][0]) == USER_KEYS  # never the password hash
    assert body["items"][0] == {
        "id": 1,
        "email": "admin@example.com",
        "name": "Ada Admin",
        "role": "admin",
        "is_active": True,
        "created_at": "2024-01-01T15:54:00",
        "updated_at": "2024-01-15T15:54:00",
    }

    last = client.get("/api/users?page=3&per_page=20").get_json()
    assert [u["id"] for u in last["items"]] == list(range(41, 51))
    past_the_end = client.get("/api/users?page=9").get_json()
    assert past_the_end["items"] == [] and past_the_end["total"] == 50


def test_list_filters(client: FlaskClient) -> None:
    admins = client.get("/api/users?role=admin").get_json()
    assert [u["email"] for u in admins["items"]] == ["admin@example.com"]

    inactive = collect(client, "/api/users?is_active=false")
    assert [u["id"] for u in inactive] == [10, 19, 28, 37, 46]
    assert len(collect(client, "/api/users?is_active=true")) == 45

    # q: case-insensitive substring of name or email
    assert [u["id"] for u in collect(client, "/api/users?q=ANDERSON")] == [2]
    assert [u["id"] for u in collect(client, "/api/users?q=sam@")] == [3]
    assert len(collect(client, "/api/users?q=Example.COM")) == 50
    # LIKE wildcards in q are literal characters
    assert collect(client, "/api/users?q=%25") == []
    assert collect(client, "/api/users?q=_") == []
    nothing = client.get("/api/users?q=%25&colour=blue").get_json()  # unknown params ignored
    assert nothing == {"items": [], "page": 1, "per_page": 20, "total": 0, "pages": 0}

    staff = collect(client, "/api/users?role=staff&is_active=true&q=s")
    assert [u["email"] for u in staff] == ["sam@example.com"]


def test_list_sorts_with_id_as_tiebreak(client: FlaskClient) -> None:
    assert [u["id"] for u in collect(client, "/api/users?sort=-id")] == list(range(50, 0, -1))
    by_created = collect(client, "/api/users?sort=created_at")
    assert [u["created_at"] for u in by_created] == sorted(u["created_at"] for u in by_created)
    newest = collect(client, "/api/users?sort=-created_at")
    assert [u["id"] for u in newest] == [u["id"] for u in reversed(by_created)]

    # names and emails chosen to sort the same under any collation
    for name, email in [("Sorttest Carl", "c.sorttest@x.io"), ("Sorttest Anna", "b.sorttest@x.io"),
                        ("Sorttest Bert", "a.sorttest@x.io")]:
        created = client.post("/api/users", json={"email": email, "name": name,
                                                  "password": "password1"})
        assert created.status_code == 201
    names = [u["name"] for u in collect(client, "/api/users?q=sorttest&sort=name")]
    assert names == ["Sorttest Anna", "Sorttest Bert", "Sorttest Carl"]
    emails = [u["email"] for u in collect(client, "/api/users?q=sorttest&sort=-email")]
    assert emails == ["c.sorttest@x.io", "b.sorttest@x.io", "a.sorttest@x.io"]


def test_list_rejects_bad_query_values_by_name(client: FlaskClient) -> None:
    response = client.get(
        "/api/users?page=0&per_page=101&role=root&is_active=yes&sort=-password"
    )
    assert fields(response) == {
        "page": "must be >= 1",
        "per_page": "must be <= 100",
        "role": "must be one of: admin, customer, staff",
        "is_active": "must be a boolean",
        "sort": "must be one of: id, name, email, created_at",
    }
    assert fields(client.get("/api/users?page=two&per_page=0")) == {
        "page": "must be an integer",
        "per_page": "must be >= 1",
    }
    assert fields(client.get("/api/users?page=1.5")) == {"page": "must be an integer"}
    assert fields(client.get("/api/users?page=2147483648")) == {"page": "must be <= 2147483647"}


def test_get_user_and_json_404(client: FlaskClient) -> None:
    response = client.get("/api/users/2")
    assert response.status_code == 200
    assert response.get_json()["email"] == "alice@example.com"

    missing = client.get("/api/users/4242")
    assert missing.status_code == 404
    assert error(missing) == {"code": "not_found", "message": "user 4242 not found"}


def test_an_id_past_the_key_range_is_a_404_not_a_500(client: FlaskClient, admin: FlaskClient) -> None:
    huge = 2**63  # found by fuzzing: the driver overflowed and the app answered 500
    for response in (client.get(f"/api/users/{huge}"), client.get(f"/api/products/{huge}"),
                     admin.get(f"/api/orders/{huge}"), admin.delete(f"/api/users/{huge}")):
        assert response.status_code == 404, response.get_data(as_text=True)
        assert error(response)["code"] == "not_found"


def test_create_user(client: FlaskClient) -> None:
    response = client.post("/api/users", json=NEW_USER)
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/users/{body['id']}"
    # emails are stored lowercased, names stripped; role defaults to customer
    assert body["email"] == "new.person@example.com"
    assert body["name"] == "New Person"
    assert body["role"] == "customer" and body["is_active"] is True
    assert body["created_at"] == body["updated_at"]
    assert set(body) == USER_KEYS
    assert client.get(response.headers["Location"]).get_json() == body
    # the password was hashed, and it works
    login(client, "NEW.PERSON@example.com", "s3cret-pass")
    assert client.get("/api/me").get_json()["id"] == body["id"]

    staff = client.post("/api/users", json={**NEW_USER, "email": "s@x.io", "role": "staff"})
    assert staff.get_json()["role"] == "staff"


def test_create_user_duplicate_email_is_409(client: FlaskClient) -> None:
    response = client.post("/api/users", json={**NEW_USER, "email": "ALICE@example.com"})
    assert response.status_code == 409
    assert error(response) == {"code": "conflict", "message": "email already registered"}


def test_create_user_validation(client: FlaskClient) -> None:
    assert fields(client.post("/api/users", json={})) == {
        "email": "is required",
        "name": "is required",
        "password": "is required",
    }
    bad = {"email": 5, "name": None, "password": ["x"], "role": 1, "id": 7}
    assert fields(client.post("/api/users", json=bad)) == {
        "email": "must be a string",
        "name": "must be a string",
        "password": "must be a string",
        "role": "must be a string",
        "id": "unknown field",
    }
    bad = {"email": "not-an-email", "name": "   ", "password": "short", "role": "root"}
    assert fields(client.post("/api/users", json=bad)) == {
        "email": "must be a valid email address",
        "name": "must be 1 to 120 characters",
        "password": "must be at least 8 characters",
        "role": "must be one of: admin, customer, staff",
    }
    long_name = {**NEW_USER, "name": "x" * 121, "email": "a b@example.com"}
    assert fields(client.post("/api/users", json=long_name)) == {
        "name": "must be 1 to 120 characters",
        "email": "must be a valid email address",
    }
    assert client.post("/api/users", json={**NEW_USER, "name": "x" * 120}).status_code == 201


def test_put_replaces_every_field(client: FlaskClient) -> None:
    before = client.get("/api/users/5").get_json()
    new = {"email": "Replaced@Example.com", "name": "Replaced", "role": "staff", "is_active": False}
    response = client.put("/api/users/5", json=new)
    assert response.status_code == 200
    body = response.get_json()
    assert body == {
        **before,
        "email": "replaced@example.com",
        "name": "Replaced",
        "role": "staff",
        "is_active": False,
        "updated_at": body["updated_at"],
    }
    assert body["updated_at"] > before["updated_at"]
    assert client.get("/api/users/5").get_json() == body
    # its own email again is not a conflict
    assert client.put("/api/users/5", json=new).status_code == 200


def test_put_requires_all_fields_and_checks_conflicts(client: FlaskClient) -> None:
    assert fields(client.put("/api/users/5", json={"name": "Only"})) == {
        "email": "is required",
        "role": "is required",
        "is_active": "is required",
    }
    taken = {"email": "alice@example.com", "name": "X", "role": "customer", "is_active": True}
    conflict = client.put("/api/users/5", json=taken)
    assert conflict.status_code == 409
    assert error(conflict)["message"] == "email already registered"
    missing = client.put("/api/users/999", json=taken)
    assert error(missing) == {"code": "not_found", "message": "user 999 not found"}


def test_patch_updates_a_subset(client: FlaskClient) -> None:
    before = client.get("/api/users/6").get_json()
    response = client.patch("/api/users/6", json={"name": "Renamed", "is_active": False})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["name"], body["is_active"], body["email"]) == ("Renamed", False, before["email"])
    assert client.patch("/api/users/6", json={}).get_json()["name"] == "Renamed"

    invalid: dict[str, Any] = {"password": "new-password", "is_active": "yes", "role": "boss"}
    assert fields(client.patch("/api/users/6", json=invalid)) == {
        "password": "unknown field",
        "is_active": "must be a boolean",
        "role": "must be one of: admin, customer, staff",
    }
    conflict = client.patch("/api/users/6", json={"email": "admin@example.com"})
    assert conflict.status_code == 409
    assert client.patch("/api/users/999", json={}).status_code == 404


def test_delete_user_with_orders(alice: FlaskClient, client: FlaskClient) -> None:
    assert collect(alice, "/api/orders")  # alice has order history
    response = client.delete("/api/users/2")
    assert response.status_code == 204
    assert response.data == b""
    assert client.get("/api/users/2").status_code == 404
    assert client.delete("/api/users/2").status_code == 404
    assert client.get("/api/users").get_json()["total"] == 49
    # her orders went with her, and her session no longer authenticates
    assert alice.get("/api/orders").status_code == 401
    admin = login(client, "admin@example.com", "admin-password")
    assert all(order["user_id"] != 2 for order in collect(admin, "/api/orders"))


def test_me_requires_login(client: FlaskClient) -> None:
    response = client.get("/api/me")
    assert response.status_code == 401
    assert error(response) == {"code": "unauthorized", "message": "login required"}
    login(client, "alice@example.com", "alice-password")
    assert client.get("/api/me").get_json()["email"] == "alice@example.com"
