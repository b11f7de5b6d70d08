"""/api/orders: a customer's orders (an admin's view of all), ordering, and the CSV export."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, request, stream_with_context, url_for
from sqlalchemy.orm import selectinload

from legacy_flask.db import get_by_id, get_session
from legacy_flask.errors import Conflict, NotFound, ValidationError
from legacy_flask.models import ORDER_STATUSES, Order, OrderItem, Product, utcnow
from legacy_flask.params import QueryParams, paginate
from legacy_flask.security import admin_required, require_user
from legacy_flask.serialize import order_json
from legacy_flask.validation import Field, Invalid, integer, json_object, validate

bp = Blueprint("orders", __name__, url_prefix="/api")

CSV_HEADER = ("id", "user_id", "status", "total", "created_at")
_ITEM = {"product_id": Field(integer(1)), "quantity": Field(integer(1))}
_SORTS = {"id": Order.id, "created_at": Order.created_at, "total": Order.total}


def _non_empty_list(value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise Invalid("must be a non-empty list")
    return value


def _validate_items(data: dict[str, Any]) -> list[dict[str, int]]:
    items: list[Any] = validate(data, {"items": Field(_non_empty_list)})["items"]
    errors: dict[str, str] = {}
    clean: list[dict[str, int]] = []
    for index, raw in enumerate(items):
        prefix = f"items[{index}]"
        if not isinstance(raw, dict):
            errors[prefix] = "must be an object"
            continue
        try:
            clean.append(validate(raw, _ITEM))
        except ValidationError as exc:
            errors.update({f"{prefix}.{key}": msg for key, msg in exc.fields.items()})
    if errors:
        raise ValidationError(errors)
    return clean


@bp.get("/orders")
def list_orders() -> dict[str, Any]:
    user = require_user()
    params = QueryParams(request.args)
    page, per_page = params.page()
    status = params.choice("status", ORDER_STATUSES)
    order = params.sort(_SORTS, Order.id)
    params.check()

    stmt = sa.select(Order).options(selectinload(Order.items)).order_by(*order)
    if user.role != "admin":
        stmt = stmt.where(Order.user_id == user.id)
    if status is not None:
        stmt = stmt.where(Order.status == status)
    return paginate(get_session(), stmt, page, per_page, order_json)


@bp.get("/orders/<int:order_id>")
def get_order(order_id: int) -> dict[str, Any]:
    user = require_user()
    order = get_by_id(Order, order_id)
    # someone else's order is reported exactly like a missing one: ids are not a secret
    # worth confirming
    if order is None or (user.role != "admin" and order.user_id != user.id):
        raise NotFound(f"order {order_id} not found")
    return order_json(order)


@bp.post("/orders")
def create_order() -> tuple[Response, int, dict[str, str]]:
    user = require_user()
    items = _validate_items(json_object())
    session = get_session()
    wanted = Counter[int]()
    for item in items:
        wanted[item["product_id"]] += item["quantity"]
    # row locks (a no-op on SQLite) taken in id order, so two orders cannot deadlock and
    # cannot both sell the last unit
    products = {
        product.id: product
        for product in session.scalars(
            sa.select(Product)
            .where(Product.id.in_(wanted))
            .order_by(Product.id)
            .with_for_update()
        )
    }
    unknown = {
        f"items[{index}].product_id": "unknown product"
        for index, item in enumerate(items)
        if item["product_id"] not in products or not products[item["product_id"]].is_active
    }
    if unknown:
        raise ValidationError(unknown)
    for product_id in wanted:  # insertion order: the first item that cannot be served
        if products[product_id].stock < wanted[product_id]:
            raise Conflict(f"insufficient stock for product {product_id}")

    order = Order(user_id=user.id, status="pending", total=Decimal("0.00"), created_at=utcnow())
    for item in items:
        product = products[item["product_id"]]
        product.stock -= item["quantity"]
        order.items.append(
            OrderItem(product_id=product.id, quantity=item["quantity"], unit_price=product.price)
        )
        order.total += product.price * item["quantity"]
    session.add(order)
    session.commit()
    location = url_for("orders.get_order", order_id=order.id)
    return jsonify(order_json(order)), 201, {"Location": location}


@bp.get("/orders/export.csv")
@admin_required
def export_orders() -> Response:
    # the auth check above runs before the first byte; the generator then streams from the
    # database in batches, so a large export never sits in memory whole
    def rows() -> Iterator[str]:
        yield _csv_line(CSV_HEADER)
        stmt = (
            sa.select(Order.id, Order.user_id, Order.status, Order.total, Order.created_at)
            .order_by(Order.id)
            .execution_options(yield_per=500)
        )
        for order_id, user_id, status, total, created_at in get_session().execute(stmt):
            yield _csv_line(
                (order_id, user_id, status, f"{total:.2f}", created_at.isoformat(timespec="seconds"))
            )

    return Response(
        stream_with_context(rows()),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=orders.csv"},
    )


def _csv_line(values: Iterable[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()
