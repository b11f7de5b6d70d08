"""The list shape every list endpoint returns, and the query that fills it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class Page(BaseModel, Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int
    pages: int


async def fetch_page(
    session: AsyncSession, stmt: sa.Select[Any], *, page: int, per_page: int
) -> tuple[Sequence[Any], int]:
    """One page of `stmt`'s rows and the total row count; a page past the end is empty."""
    counted = sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())
    total = await session.scalar(counted) or 0
    rows = (await session.scalars(stmt.limit(per_page).offset((page - 1) * per_page))).all()
    return rows, total


def page_count(total: int, per_page: int) -> int:
    return -(-total // per_page)


async def paginate(
    session: AsyncSession, stmt: sa.Select[Any], schema: type[M], *, page: int, per_page: int
) -> Page[M]:
    """One page of `stmt`, each row rendered as `schema`, in the list shape."""
    rows, total = await fetch_page(session, stmt, page=page, per_page=per_page)
    return Page[schema](  # type: ignore[valid-type]
        items=[schema.model_validate(row) for row in rows],
        page=page,
        per_page=per_page,
        total=total,
        pages=page_count(total, per_page),
    )
