"""Model → JSON, in the contract's shapes (README.md, "JSON shapes")."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from legacy_flask.models import Order, Product, User


def timestamp(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def money(value: Decimal) -> float:
    return float(value)


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "is_active": user.is_active,
        "created_at": timestamp(user.created_at),
        "updated_at": timestamp(user.updated_at),
    }


def product_json(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "category": product.category,
        "price": money(product.price),
        "stock": product.stock,
        "is_active": product.is_active,
        "image_url": f"/uploads/{product.image_filename}" if product.image_filename else None,
        "created_at": timestamp(product.created_at),
        "updated_at": timestamp(product.updated_at),
    }


def order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "user_id": order.user_id,
        "status": order.status,
        "total": money(order.total),
        "created_at": timestamp(order.created_at),
        "items": [
            {
                "product_id": item.product_id,
                "quantity": item.quantity,
                "unit_price": money(item.unit_price),
            }
            for item in order.items
        ],
    }
