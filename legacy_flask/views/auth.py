"""/auth/login and /auth/logout: the session cookie holds ``user_id`` and nothing else."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, redirect, render_template, request, session
from werkzeug.security import check_password_hash

from legacy_flask.db import get_session
from legacy_flask.errors import Unauthorized
from legacy_flask.models import User
from legacy_flask.serialize import user_json
from legacy_flask.validation import Field, json_object, string, validate

bp = Blueprint("auth", __name__, url_prefix="/auth")

BAD_CREDENTIALS = "invalid email or password"
_CREDENTIALS = {"email": Field(string()), "password": Field(string(strip=False))}


def _authenticate(email_address: str, password: str) -> User | None:
    user = get_session().scalar(
        sa.select(User).where(User.email == email_address.strip().lower())
    )
    if user is None or not user.is_active or not check_password_hash(user.password_hash, password):
        return None
    return user


def _safe_next(target: str | None) -> str:
    """Only same-site paths: ``next`` must never turn login into an open redirect."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _log_in(user: User) -> None:
    # a fresh session on login, so nothing set before it (by anyone) survives into it
    session.clear()
    session["user_id"] = user.id


@bp.get("/login")
def login_form() -> str:
    return render_template("login.html", next=request.args.get("next", ""), email="", error=None)


@bp.post("/login")
def login() -> Any:
    if request.is_json:
        data = validate(json_object(), _CREDENTIALS)
        user = _authenticate(data["email"], data["password"])
        if user is None:
            raise Unauthorized(BAD_CREDENTIALS)
        _log_in(user)
        return jsonify(user_json(user))

    email_address = request.form.get("email", "")
    next_url = request.form.get("next") or request.args.get("next", "")
    user = _authenticate(email_address, request.form.get("password", ""))
    if user is None:
        page = render_template("login.html", next=next_url, email=email_address, error=BAD_CREDENTIALS)
        return page, 401
    _log_in(user)
    return redirect(_safe_next(next_url), 302)


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    return Response(status=204)
