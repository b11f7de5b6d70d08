"""/api/products: the catalogue API, and the admin-only writes."""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from sqlalchemy.exc import IntegrityError
from werkzeug.utils import secure_filename

from legacy_flask.db import get_by_id, get_session
from legacy_flask.errors import Conflict, NotFound, ValidationError
from legacy_flask.models import Product, utcnow
from legacy_flask.params import QueryParams, paginate
from legacy_flask.security import admin_required
from legacy_flask.serialize import product_json
from legacy_flask.validation import Field, boolean, integer, json_object, money, string, validate

bp = Blueprint("products", __name__, url_prefix="/api")

IMAGE_EXTENSIONS = ("gif", "jpeg", "jpg", "png", "webp")

_EDITABLE = {
    "name": Field(string(1, 200)),
    "description": Field(string(strip=False)),
    "category": Field(string(1, 60)),
    "price": Field(money),
    "stock": Field(integer(0)),
    "is_active": Field(boolean),
}
_CREATE = {
    "sku": Field(string(1, 40)),
    "name": _EDITABLE["name"],
    "price": _EDITABLE["price"],
    "category": _EDITABLE["category"],
    "description": Field(_EDITABLE["description"].check, default=""),
    "stock": Field(_EDITABLE["stock"].check, default=0),
}
_SORTS = {
    "id": Product.id,
    "name": Product.name,
    "price": Product.price,
    "stock": Product.stock,
    "created_at": Product.created_at,
}


def get_product_or_404(product_id: int) -> Product:
    # inactive products stay reachable by id: only the list hides them
    product = get_by_id(Product, product_id)
    if product is None:
        raise NotFound(f"product {product_id} not found")
    return product


@bp.get("/products")
def list_products() -> dict[str, Any]:
    params = QueryParams(request.args)
    page, per_page = params.page()
    category = params.text("category")
    q = params.text("q")
    min_price = params.number("min_price")
    max_price = params.number("max_price")
    in_stock = params.boolean("in_stock")
    order = params.sort(_SORTS, Product.id)
    params.check()

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
    return paginate(get_session(), stmt, page, per_page, product_json)


@bp.get("/products/<int:product_id>")
def get_product(product_id: int) -> dict[str, Any]:
    return product_json(get_product_or_404(product_id))


@bp.post("/products")
@admin_required
def create_product() -> tuple[Response, int, dict[str, str]]:
    data = validate(json_object(), _CREATE)
    session = get_session()
    if session.scalar(sa.select(Product.id).where(Product.sku == data["sku"])) is not None:
        raise Conflict("sku already exists")
    now = utcnow()
    product = Product(**data, is_active=True, created_at=now, updated_at=now)
    session.add(product)
    try:
        session.commit()
    except IntegrityError as exc:  # lost a race with a concurrent insert of the same sku
        session.rollback()
        raise Conflict("sku already exists") from exc
    location = url_for("products.get_product", product_id=product.id)
    return jsonify(product_json(product)), 201, {"Location": location}


@bp.patch("/products/<int:product_id>")
@admin_required
def update_product(product_id: int) -> dict[str, Any]:
    product = get_product_or_404(product_id)
    data = validate(json_object(), _EDITABLE, partial=True)
    for key, value in data.items():
        setattr(product, key, value)
    product.updated_at = utcnow()
    get_session().commit()
    return product_json(product)


@bp.post("/products/<int:product_id>/image")
@admin_required
def upload_image(product_id: int) -> dict[str, Any]:
    product = get_product_or_404(product_id)
    upload = request.files.get("image")
    filename = secure_filename(upload.filename or "") if upload is not None else ""
    if upload is None or not filename:
        raise ValidationError({"image": "is required"})
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension not in IMAGE_EXTENSIONS:
        raise ValidationError({"image": f"must be one of: {', '.join(IMAGE_EXTENSIONS)}"})

    # the id prefix keeps two products' "photo.png" from overwriting each other
    stored = f"{product.id}_{filename}"
    upload_dir = current_app.config["UPLOAD_DIR"]
    os.makedirs(upload_dir, exist_ok=True)
    upload.save(os.path.join(upload_dir, stored))
    product.image_filename = stored
    product.updated_at = utcnow()
    get_session().commit()
    return product_json(product)
