"""What the products endpoints do; raises domain errors, never HTTP ones."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from features.core.errors import Conflict, NotFound
from features.core.pagination import Page, paginate
from features.products import repo
from features.products.models import Product
from features.products.schemas import ProductListQuery, ProductOut

SKU_TAKEN = "sku already exists"


def utcnow() -> datetime:
    # naive UTC, as the shared schema stores it
    return datetime.now(UTC).replace(tzinfo=None)


async def list_products(session: AsyncSession, *, query: ProductListQuery) -> Page[ProductOut]:
    stmt = repo.list_query(
        category=query.category,
        q=query.q,
        min_price=query.min_price,
        max_price=query.max_price,
        in_stock=query.in_stock,
        sort=query.sort,
    )
    return await paginate(session, stmt, ProductOut, page=query.page, per_page=query.per_page)


async def _load(session: AsyncSession, product_id: int) -> Product:
    # inactive products stay reachable by id: only the list hides them
    product = await repo.get(session, product_id)
    if product is None:
        raise NotFound(f"product {product_id} not found")
    return product


async def ensure_exists(session: AsyncSession, *, product_id: int) -> None:
    await _load(session, product_id)


async def get_product(session: AsyncSession, *, product_id: int) -> ProductOut:
    return ProductOut.model_validate(await _load(session, product_id))


async def create_product(
    session: AsyncSession,
    *,
    sku: str,
    name: str,
    price: Decimal,
    category: str,
    description: str,
    stock: int,
) -> ProductOut:
    if await repo.sku_taken(session, sku):
        raise Conflict(SKU_TAKEN)
    now = utcnow()
    product = Product(
        sku=sku,
        name=name,
        price=price,
        category=category,
        description=description,
        stock=stock,
        is_active=True,
        image_filename=None,
        created_at=now,
        updated_at=now,
    )
    try:
        await repo.add(session, product)
    except IntegrityError as exc:  # lost a race with a concurrent insert of the same sku
        raise Conflict(SKU_TAKEN) from exc
    return ProductOut.model_validate(product)


async def update_product(session: AsyncSession, *, product_id: int, changes: Mapping[str, Any]) -> ProductOut:
    product = await _load(session, product_id)
    for key, value in changes.items():
        setattr(product, key, value)
    product.updated_at = utcnow()
    await session.flush()
    return ProductOut.model_validate(product)
