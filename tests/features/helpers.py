"""Shared test helpers: the native app under test settings, Flask-signed session cookies."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from flask import Flask

from features.core.settings import Settings
from features.main import create_app

SECRET = "features-test-secret"
# cheap hashes: tests create users, not real passwords
HASH_ITERATIONS = 1000


def native_app(url: str) -> FastAPI:
    settings = Settings(database_url=url, secret_key=SECRET, password_hash_iterations=HASH_ITERATIONS)
    return create_app(settings)


def flask_cookie(data: dict[str, Any], secret: str = SECRET) -> str:
    """A `session` cookie exactly as Flask signs it."""
    app = Flask(__name__)
    app.secret_key = secret
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert serializer is not None
    with app.app_context():
        return str(serializer.dumps(data))


def scalar(url: str, sql: str, **params: Any) -> Any:
    """One value straight from the database, bypassing both apps."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(sa.text(sql), params)
    finally:
        engine.dispose()


def user_id_of(url: str, email: str) -> int:
    user_id = scalar(url, "select id from users where email = :email", email=email)
    assert isinstance(user_id, int), email
    return user_id
