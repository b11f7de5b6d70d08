"""SQL for products; nothing here knows about HTTP."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from features.core.db import get_by_id
from features.products.models import Product

_SORT_COLUMNS: dict[str, sa.orm.InstrumentedAttribute[Any]] = {
    "id": Product.id,
    "name": Product.name,
    "price": Product.price,
    "stock": Product.stock,
    "created_at": Product.created_at,
}


async def get(session: AsyncSession, product_id: int) -> Product | None:
    return await get_by_id(session, Product, product_id)


async def sku_taken(session: AsyncSession, sku: str) -> bool:
    return await session.scalar(sa.select(Product.id).where(Product.sku == sku)) is not None


def list_query(
    *,
    category: str | None,
    q: str | None,
    min_price: Decimal | None,
    max_price: Decimal | None,
    in_stock: bool | None,
    sort: str,
) -> sa.Select[Product]:
    """Active products only; `sort` is a column name, `-` for descending, ties by id."""
    column = _SORT_COLUMNS[sort.removeprefix("-")]
    order = [column.desc() if sort.startswith("-") else column.asc()]
    if column is not Product.id:
        order.append(Product.id.asc())
    stmt = sa.select(Product).where(Product.is_active.is_(True)).order_by(*order)
    if category is not None:
        stmt = stmt.where(Product.category == category)
    if q is not None:
        stmt = stmt.where(
            sa.or_(
                Product.name.icontains(q, autoescape=True),
                Product.description.icontains(q, autoescape=True),
            )
        )
    if min_price is not None:
        stmt = stmt.where(Product.price >= min_price)
    if max_price is not None:
        stmt = stmt.where(Product.price <= max_price)
    if in_stock is not None:
        stmt = stmt.where(Product.stock > 0 if in_stock else Product.stock == 0)
    return stmt


async def add(session: AsyncSession, product: Product) -> Product:
    session.add(product)
    await session.flush()
    return product
