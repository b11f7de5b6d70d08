"""The app factory: settings from the environment, overridable by the caller."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, Response, request

from legacy_flask import db, errors, views

request_log = logging.getLogger("legacy_flask.request")


def _settings_from_env() -> dict[str, Any]:
    return {
        "DATABASE_URL": os.environ.get("DATABASE_URL", "sqlite:///demo.db"),
        "SECRET_KEY": os.environ.get("SECRET_KEY", "dev-secret-change-me"),
        "UPLOAD_DIR": os.environ.get("UPLOAD_DIR", "./uploads"),
        # werkzeug's default; tests and seed data use a fast pbkdf2 instead
        "PASSWORD_HASH_METHOD": "scrypt",
    }


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(_settings_from_env())
    app.config.update(config or {})
    app.config["DATABASE_URL"] = db.normalise_url(app.config["DATABASE_URL"])
    # absolute once, here: saving resolves a relative path against the working directory,
    # send_from_directory against the package directory
    app.config["UPLOAD_DIR"] = os.path.abspath(app.config["UPLOAD_DIR"])

    db.init_app(app)
    errors.register(app)
    views.register(app)
    app.after_request(_log_request)
    return app


def _log_request(response: Response) -> Response:
    # X-Request-ID is only logged, so a gateway's id can be found in the legacy logs
    request_log.info(
        "%s %s %s request_id=%s",
        request.method,
        request.path,
        response.status_code,
        request.headers.get("X-Request-ID", "-"),
        extra={"request_id": request.headers.get("X-Request-ID")},
    )
    return response
