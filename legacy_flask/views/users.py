"""/api/users and /api/me."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, request, url_for
from sqlalchemy.exc import IntegrityError

from legacy_flask.db import get_by_id, get_session
from legacy_flask.errors import Conflict, NotFound
from legacy_flask.models import ROLES, Order, OrderItem, User, utcnow
from legacy_flask.params import QueryParams, paginate
from legacy_flask.security import hash_password, require_user
from legacy_flask.serialize import user_json
from legacy_flask.validation import Field, boolean, choice, email, json_object, password, string
from legacy_flask.validation import validate as validate_body

bp = Blueprint("users", __name__, url_prefix="/api")

_EDITABLE = {
    "email": Field(email),
    "name": Field(string(1, 120)),
    "role": Field(choice(ROLES)),
    "is_active": Field(boolean),
}
_CREATE = {
    "email": Field(email),
    "name": Field(string(1, 120)),
    "password": Field(password),
    "role": Field(choice(ROLES), default="customer"),
}
_SORTS = {"id": User.id, "name": User.name, "email": User.email, "created_at": User.created_at}


def _get_user(user_id: int) -> User:
    user = get_by_id(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def _check_email_free(email_address: str, *, except_id: int | None = None) -> None:
    stmt = sa.select(User.id).where(User.email == email_address)
    if except_id is not None:
        stmt = stmt.where(User.id != except_id)
    if get_session().scalar(stmt) is not None:
        raise Conflict("email already registered")


def _commit() -> None:
    # the pre-check above can lose a race with a concurrent insert: same answer either way
    try:
        get_session().commit()
    except IntegrityError as exc:
        get_session().rollback()
        raise Conflict("email already registered") from exc


@bp.get("/users")
def list_users() -> dict[str, Any]:
    params = QueryParams(request.args)
    page, per_page = params.page()
    role = params.choice("role", ROLES)
    is_active = params.boolean("is_active")
    q = params.text("q")
    order = params.sort(_SORTS, User.id)
    params.check()

    stmt = sa.select(User).order_by(*order)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if is_active is not None:
        stmt = stmt.where(User.is_active == is_active)
    if q is not None:
        stmt = stmt.where(
            sa.or_(User.name.icontains(q, autoescape=True), User.email.icontains(q, autoescape=True))
        )
    return paginate(get_session(), stmt, page, per_page, user_json)


@bp.get("/users/<int:user_id>")
def get_user(user_id: int) -> dict[str, Any]:
    return user_json(_get_user(user_id))


@bp.post("/users")
def create_user() -> tuple[Response, int, dict[str, str]]:
    data = validate_body(json_object(), _CREATE)
    _check_email_free(data["email"])
    now = utcnow()
    user = User(
        email=data["email"],
        name=data["name"],
        role=data["role"],
        is_active=True,
        password_hash=hash_password(data["password"]),
        created_at=now,
        updated_at=now,
    )
    get_session().add(user)
    _commit()
    location = url_for("users.get_user", user_id=user.id)
    return jsonify(user_json(user)), 201, {"Location": location}


@bp.put("/users/<int:user_id>")
def replace_user(user_id: int) -> dict[str, Any]:
    return _update(user_id, partial=False)


@bp.patch("/users/<int:user_id>")
def update_user(user_id: int) -> dict[str, Any]:
    return _update(user_id, partial=True)


def _update(user_id: int, *, partial: bool) -> dict[str, Any]:
    user = _get_user(user_id)
    data = validate_body(json_object(), _EDITABLE, partial=partial)
    if "email" in data:
        _check_email_free(data["email"], except_id=user.id)
    for key, value in data.items():
        setattr(user, key, value)
    user.updated_at = utcnow()
    _commit()
    return user_json(user)


@bp.delete("/users/<int:user_id>")
def delete_user(user_id: int) -> tuple[str, int]:
    user = _get_user(user_id)
    session = get_session()
    # a user's orders go with them (stock is not restored): keeping orders of a deleted
    # user would break the foreign key on PostgreSQL
    order_ids = sa.select(Order.id).where(Order.user_id == user.id).scalar_subquery()
    session.execute(sa.delete(OrderItem).where(OrderItem.order_id.in_(order_ids)))
    session.execute(sa.delete(Order).where(Order.user_id == user.id))
    session.execute(sa.delete(User).where(User.id == user.id))
    session.commit()
    return "", 204


@bp.get("/me")
def me() -> dict[str, Any]:
    return user_json(require_user())

