"""What the users endpoints do; raises domain errors, never HTTP ones."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from features.core.errors import Conflict, NotFound
from features.core.pagination import Page, paginate
from features.users import repo
from features.users.models import User
from features.users.passwords import hash_password_off_loop
from features.users.schemas import UserListQuery, UserOut

EMAIL_TAKEN = "email already registered"


def utcnow() -> datetime:
    # naive UTC, as the shared schema stores it
    return datetime.now(UTC).replace(tzinfo=None)


async def list_users(session: AsyncSession, *, query: UserListQuery) -> Page[UserOut]:
    stmt = repo.list_query(role=query.role, is_active=query.is_active, q=query.q, sort=query.sort)
    return await paginate(session, stmt, UserOut, page=query.page, per_page=query.per_page)


async def _load(session: AsyncSession, user_id: int) -> User:
    user = await repo.get(session, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


async def ensure_exists(session: AsyncSession, *, user_id: int) -> None:
    await _load(session, user_id)


async def get_user(session: AsyncSession, *, user_id: int) -> UserOut:
    return UserOut.model_validate(await _load(session, user_id))


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    password: str,
    role: str,
    hash_iterations: int,
) -> UserOut:
    if await repo.email_taken(session, email):
        raise Conflict(EMAIL_TAKEN)
    now = utcnow()
    user = User(
        email=email,
        name=name,
        role=role,
        is_active=True,
        password_hash=await hash_password_off_loop(password, iterations=hash_iterations),
        created_at=now,
        updated_at=now,
    )
    try:
        await repo.add(session, user)
    except IntegrityError as exc:  # lost a race with a concurrent insert of the same email
        raise Conflict(EMAIL_TAKEN) from exc
    return UserOut.model_validate(user)


async def update_user(session: AsyncSession, *, user_id: int, changes: Mapping[str, Any]) -> UserOut:
    """Apply `changes` (validated fields only); the caller has checked the user exists."""
    user = await _load(session, user_id)
    if "email" in changes and await repo.email_taken(session, changes["email"], except_id=user.id):
        raise Conflict(EMAIL_TAKEN)
    for key, value in changes.items():
        setattr(user, key, value)
    user.updated_at = utcnow()
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(EMAIL_TAKEN) from exc
    return UserOut.model_validate(user)


async def delete_user(session: AsyncSession, *, user_id: int) -> None:
    await _load(session, user_id)
    await repo.delete_with_orders(session, user_id)
