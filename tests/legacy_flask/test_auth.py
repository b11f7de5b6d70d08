"""/auth/login (form and JSON) and /auth/logout over Flask's signed session cookie."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.legacy_flask.conftest import SECRET, error, fields, login

ALICE = {"email": "alice@example.com", "password": "alice-password"}


def session_of(app: Flask, client: FlaskClient) -> dict[str, object]:
    """The decoded session cookie, read the way a migrated feature would read it."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert serializer is not None and app.secret_key == SECRET
    data: dict[str, object] = serializer.loads(cookie.value)
    return data


def test_login_form_page(client: FlaskClient) -> None:
    response = client.get("/auth/login?next=/api/me")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert '<form class="login" method="post" action="/auth/login">' in html
    assert '<input type="hidden" name="next" value="/api/me">' in html


def test_form_login_sets_the_session_and_redirects(app: Flask, client: FlaskClient) -> None:
    response = client.post("/auth/login", data=ALICE)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert session_of(app, client) == {"user_id": 2}
    assert client.get("/api/me").get_json()["email"] == "alice@example.com"


def test_form_login_follows_only_local_next(client: FlaskClient) -> None:
    for next_url, location in [
        ("/api/me?x=1", "/api/me?x=1"),
        ("https://evil.example/", "/"),  # never an open redirect
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("relative", "/"),
    ]:
        response = client.post("/auth/login", data={**ALICE, "next": next_url})
        assert response.headers["Location"] == location, next_url
    # the form carries next from the query string; a post straight to the URL works too
    query = client.post("/auth/login?next=/api/orders", data=ALICE)
    assert query.headers["Location"] == "/api/orders"


def test_form_login_with_bad_credentials_shows_the_form_again(client: FlaskClient) -> None:
    for data in ({**ALICE, "password": "wrong-password"}, {"email": "nobody@example.com",
                                                             "password": "x"}, {}):
        response = client.post("/auth/login", data=data)
        assert response.status_code == 401
        assert response.mimetype == "text/html"
        assert "invalid email or password" in response.get_data(as_text=True)
        assert client.get_cookie("session") is None


def test_json_login(client: FlaskClient) -> None:
    response = client.post("/auth/login", json={**ALICE, "email": " Alice@Example.com"})
    assert response.status_code == 200
    assert response.get_json()["id"] == 2 and "password_hash" not in response.get_json()

    bad = client.post("/auth/login", json={**ALICE, "password": "nope"})
    assert bad.status_code == 401
    assert error(bad) == {"code": "unauthorized", "message": "invalid email or password"}
    assert fields(client.post("/auth/login", json={"email": 1})) == {
        "email": "must be a string",
        "password": "is required",
    }
    not_object = client.post("/auth/login", data="[]", content_type="application/json")
    assert error(not_object)["code"] == "bad_request"


def test_inactive_users_cannot_log_in_or_stay_logged_in(
    admin: FlaskClient, client: FlaskClient
) -> None:
    # user 10 is a seeded, deactivated customer
    assert admin.get("/api/users/10").get_json()["is_active"] is False
    response = client.post("/auth/login", json={"email": admin.get("/api/users/10").get_json()[
        "email"], "password": "demo-password"})
    assert response.status_code == 401

    login(client, **ALICE)
    assert admin.patch("/api/users/2", json={"is_active": False}).status_code == 200
    assert client.get("/api/me").status_code == 401


def test_logout_clears_the_session(app: Flask, client: FlaskClient) -> None:
    login(client, **ALICE)
    response = client.post("/auth/logout")
    assert response.status_code == 204 and response.data == b""
    assert client.get("/api/me").status_code == 401
    assert client.post("/auth/logout").status_code == 204  # logged out already: still fine


def test_a_forged_cookie_is_ignored(app: Flask, client: FlaskClient) -> None:
    other = Flask("forger")
    other.secret_key = "not-the-secret"
    serializer = other.session_interface.get_signing_serializer(other)  # type: ignore[attr-defined]
    client.set_cookie("session", serializer.dumps({"user_id": 1}))
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/orders/export.csv").status_code == 401
