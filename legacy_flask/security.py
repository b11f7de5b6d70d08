"""Who is logged in: Flask's signed session cookie carries ``user_id``, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, session
from werkzeug.security import generate_password_hash

from legacy_flask.db import get_session
from legacy_flask.errors import Forbidden, Unauthorized
from legacy_flask.models import User

F = TypeVar("F", bound=Callable[..., Any])


def current_user() -> User | None:
    """The session's user, or None when logged out, deleted or deactivated since login."""
    if "current_user" not in g:
        user_id = session.get("user_id")
        user = get_session().get(User, user_id) if isinstance(user_id, int) else None
        g.current_user = user if user is not None and user.is_active else None
    user_or_none: User | None = g.current_user
    return user_or_none


def require_user() -> User:
    user = current_user()
    if user is None:
        raise Unauthorized("login required")
    return user


def require_admin() -> User:
    user = require_user()
    if user.role != "admin":
        raise Forbidden("admin role required")
    return user


def admin_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        require_admin()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def hash_password(password: str) -> str:
    # configurable so tests can trade werkzeug's slow default (scrypt) for a fast hash
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])
