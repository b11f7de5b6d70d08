"""HTTP edge of the products feature: parse, call the service, shape the response."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from features.core.auth import AdminRequired
from features.core.db import SessionDep
from features.core.openapi import ERROR_RESPONSES, json_body_doc, query_doc
from features.core.pagination import Page
from features.core.params import query_params
from features.core.validation import json_body
from features.products import service
from features.products.schemas import ProductCreate, ProductListQuery, ProductOut, ProductPatch

router = APIRouter(prefix="/api", tags=["products"], responses=ERROR_RESPONSES)


@router.get("/products", name="products.list", openapi_extra=query_doc(ProductListQuery))
async def list_products(request: Request, session: SessionDep) -> Page[ProductOut]:
    return await service.list_products(session, query=query_params(request, ProductListQuery))


@router.get("/products/{product_id:int}", name="products.get")
async def get_product(product_id: int, session: SessionDep) -> ProductOut:
    return await service.get_product(session, product_id=product_id)


@router.post(
    "/products",
    name="products.create",
    status_code=201,
    openapi_extra=json_body_doc(ProductCreate),
)
async def create_product(
    _admin: AdminRequired, request: Request, response: Response, session: SessionDep
) -> ProductOut:
    # the login and role checks (401, 403) come first, then the body, as on the legacy side
    data = await json_body(request, ProductCreate)
    product = await service.create_product(
        session,
        sku=data.sku,
        name=data.name,
        price=data.price,
        category=data.category,
        description=data.description,
        stock=data.stock,
    )
    response.headers["Location"] = request.url_for("products.get", product_id=product.id).path
    return product


@router.patch(
    "/products/{product_id:int}",
    name="products.update",
    openapi_extra=json_body_doc(ProductPatch),
)
async def update_product(
    product_id: int, _admin: AdminRequired, request: Request, session: SessionDep
) -> ProductOut:
    await service.ensure_exists(session, product_id=product_id)
    data = await json_body(request, ProductPatch)
    changes = data.model_dump(exclude_unset=True)
    return await service.update_product(session, product_id=product_id, changes=changes)
