"""The list shape every list endpoint returns, and the query that fills it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


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
