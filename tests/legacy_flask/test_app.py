"""The factory's settings, the JSON error handlers on /api and request-id logging."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from legacy_flask import create_app
from legacy_flask.db import get_engine, get_session, normalise_url
from legacy_flask.models import Base, User
from tests.legacy_flask.conftest import MakeApp, error


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("postgres://u:p@h/db?sslmode=require", "postgresql+psycopg://u:p@h/db?sslmode=require"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///demo.db", "sqlite:///demo.db"),
    ],
)
def test_postgres_urls_are_sent_to_psycopg3(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://someone@db/shop")
    monkeypatch.setenv("SECRET_KEY", "from-env")
    monkeypatch.setenv("UPLOAD_DIR", str(tmp_path / "media"))
    app = create_app()
    assert app.config["DATABASE_URL"] == "postgresql+psycopg://someone@db/shop"
    assert app.config["SECRET_KEY"] == "from-env"
    assert app.config["UPLOAD_DIR"] == str(tmp_path / "media")


def test_config_overrides_the_environment_and_defaults_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("DATABASE_URL", "SECRET_KEY", "UPLOAD_DIR"):
        monkeypatch.delenv(name, raising=False)
    app = create_app()
    assert app.config["DATABASE_URL"] == "sqlite:///demo.db"
    assert app.config["SECRET_KEY"] == "dev-secret-change-me"
    # made absolute once, so saving and serving files agree on where they are
    assert app.config["UPLOAD_DIR"] == os.path.abspath("./uploads")

    monkeypatch.setenv("SECRET_KEY", "from-env")
    app = create_app({"SECRET_KEY": "from-config", "DATABASE_URL": "postgresql://x@y/z"})
    assert app.config["SECRET_KEY"] == "from-config"
    assert app.config["DATABASE_URL"] == "postgresql+psycopg://x@y/z"


def test_healthz(sqlite_url: str, make_app: MakeApp) -> None:
    response = make_app(sqlite_url).test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_unknown_api_path_is_a_json_404_and_pages_keep_html(
    sqlite_url: str, make_app: MakeApp
) -> None:
    client = make_app(sqlite_url).test_client()
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert error(response) == {"code": "not_found", "message": "not found"}

    page = client.get("/nothing-here")
    assert page.status_code == 404
    assert page.mimetype == "text/html"


def test_wrong_method_is_a_json_405_with_allow(sqlite_url: str, make_app: MakeApp) -> None:
    response = make_app(sqlite_url).test_client().delete("/api/products")
    assert response.status_code == 405
    assert error(response) == {"code": "method_not_allowed", "message": "method not allowed"}
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_unhandled_error_is_a_json_500_and_the_transaction_is_dropped(
    db_url: str, make_app: MakeApp
) -> None:
    app = make_app(db_url)
    Base.metadata.create_all(get_engine(app))

    def half_done() -> str:
        get_session().add(User(email="x@example.com", name="X", password_hash="-"))
        get_session().flush()
        raise RuntimeError("boom")

    app.add_url_rule("/api/boom", view_func=half_done)
    app.add_url_rule("/boom", endpoint="page_boom", view_func=half_done)
    client = app.test_client()

    response = client.get("/api/boom")
    assert response.status_code == 500
    assert error(response) == {"code": "internal_error", "message": "internal server error"}
    assert client.get("/boom").mimetype == "text/html"
    with get_engine(app).connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_body_that_is_not_a_json_object_is_bad_request(
    sqlite_url: str, make_app: MakeApp
) -> None:
    client = make_app(sqlite_url).test_client()
    for body in ("[1, 2]", "not json", '"text"', ""):
        response = client.post("/api/users", data=body, content_type="application/json")
        assert response.status_code == 400, body
        assert error(response) == {
            "code": "bad_request",
            "message": "request body must be a JSON object",
        }


def test_request_id_is_logged(
    sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app(sqlite_url).test_client()
    with caplog.at_level(logging.INFO, logger="legacy_flask.request"):
        response = client.get("/healthz", headers={"X-Request-ID": "req-123"})
        client.get("/healthz")
    # logged only: the legacy app does not echo it back
    assert "X-Request-ID" not in response.headers
    lines = [r.getMessage() for r in caplog.records if r.name == "legacy_flask.request"]
    assert lines == ["GET /healthz 200 request_id=req-123", "GET /healthz 200 request_id=-"]
    assert caplog.records[0].request_id == "req-123"
