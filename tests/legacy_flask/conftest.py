"""Apps over a freshly seeded database, and clients logged in as the demo accounts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from legacy_flask import create_app
from legacy_flask.db import get_engine
from legacy_flask.seed import seed

FAST_HASH = "pbkdf2:sha256:1000"
SECRET = "test-secret"

MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[MakeApp]:
    apps: list[Flask] = []

    def make(database_url: str, **config: Any) -> Flask:
        app = create_app(
            {
                "DATABASE_URL": database_url,
                "SECRET_KEY": SECRET,
                "UPLOAD_DIR": str(tmp_path / "uploads"),
                "PASSWORD_HASH_METHOD": FAST_HASH,
                **config,
            }
        )
        apps.append(app)
        return app

    yield make
    # each app owns a pool: without this, PostgreSQL connections pile up across tests
    for app in apps:
        get_engine(app).dispose()


@pytest.fixture
def app(db_url: str, make_app: MakeApp) -> Flask:
    seed(db_url)
    return make_app(db_url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def login(client: FlaskClient, email: str, password: str) -> FlaskClient:
    response = client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    return client


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return login(app.test_client(), "admin@example.com", "admin-password")


@pytest.fixture
def alice(app: Flask) -> FlaskClient:
    return login(app.test_client(), "alice@example.com", "alice-password")


def error(response: Any) -> dict[str, Any]:
    """The error object of a JSON error response."""
    body = response.get_json()
    assert set(body) == {"error"}, body
    result: dict[str, Any] = body["error"]
    return result


def fields(response: Any) -> dict[str, str]:
    """The per-field messages of a 400 validation_error."""
    assert response.status_code == 400, response.get_json()
    body = error(response)
    assert body["code"] == "validation_error"
    assert body["message"] == "invalid input"
    result: dict[str, str] = body["fields"]
    return result


def collect(client: FlaskClient, path: str) -> list[dict[str, Any]]:
    """Every item of a list endpoint, following the pages."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        sep = "&" if "?" in path else "?"
        body = client.get(f"{path}{sep}page={page}&per_page=100").get_json()
        items.extend(body["items"])
        if page >= body["pages"]:
            return items
        page += 1
