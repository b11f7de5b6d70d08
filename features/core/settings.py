"""Typed settings, read by the app factory (never at import time).

The names are the legacy app's own (`DATABASE_URL`, `SECRET_KEY`, no prefix): both sides
must read the same database and verify the same session cookie, so they share one env.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = "sqlite:///demo.db"
    secret_key: str = Field(default="dev-secret-change-me", min_length=1)
    # Flask's PERMANENT_SESSION_LIFETIME (its default too): older signed cookies are rejected
    permanent_session_lifetime: timedelta = timedelta(days=31)
    # werkzeug's pbkdf2 default; hashes name their iterations, so any count logs in on both sides
    password_hash_iterations: int = Field(default=1_000_000, ge=1)
