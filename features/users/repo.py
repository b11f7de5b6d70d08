"""SQL for users; nothing here knows about HTTP."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from features.core.db import get_by_id
from features.users.models import User, order_items, orders

_SORT_COLUMNS: dict[str, sa.orm.InstrumentedAttribute[Any]] = {
    "id": User.id,
    "name": User.name,
    "email": User.email,
    "created_at": User.created_at,
}


async def get(session: AsyncSession, user_id: int) -> User | None:
    return await get_by_id(session, User, user_id)


async def email_taken(session: AsyncSession, email: str, *, except_id: int | None = None) -> bool:
    stmt = sa.select(User.id).where(User.email == email)
    if except_id is not None:
        stmt = stmt.where(User.id != except_id)
    return await session.scalar(stmt.limit(1)) is not None


def list_query(*, role: str | None, is_active: bool | None, q: str | None, sort: str) -> sa.Select[User]:
    """`sort` is a column name, `-` for descending; ties go to the lower id."""
    column = _SORT_COLUMNS[sort.removeprefix("-")]
    order = [column.desc() if sort.startswith("-") else column.asc()]
    if column is not User.id:
        order.append(User.id.asc())
    stmt = sa.select(User).order_by(*order)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if is_active is not None:
        stmt = stmt.where(User.is_active == is_active)
    if q is not None:
        stmt = stmt.where(
            sa.or_(User.name.icontains(q, autoescape=True), User.email.icontains(q, autoescape=True))
        )
    return stmt


async def add(session: AsyncSession, user: User) -> User:
    session.add(user)
    await session.flush()
    return user


async def delete_with_orders(session: AsyncSession, user_id: int) -> None:
    # a user's orders go with them (stock is not restored), as on the legacy side: keeping
    # them would break the foreign key on PostgreSQL
    order_ids = sa.select(orders.c.id).where(orders.c.user_id == user_id).scalar_subquery()
    await session.execute(sa.delete(order_items).where(order_items.c.order_id.in_(order_ids)))
    await session.execute(sa.delete(orders).where(orders.c.user_id == user_id))
    await session.execute(sa.delete(User).where(User.id == user_id))
