"""Request and response shapes of /api/products, with the legacy validation messages."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainValidator

from features.core import params, validation
from features.core.serialize import Money, Timestamp

Sku = Annotated[str, PlainValidator(validation.text(1, 40), json_schema_input_type=str)]
Name = Annotated[str, PlainValidator(validation.text(1, 200), json_schema_input_type=str)]
Category = Annotated[str, PlainValidator(validation.text(1, 60), json_schema_input_type=str)]
# free text: not stripped, any length
Description = Annotated[str, PlainValidator(validation.text(strip=False), json_schema_input_type=str)]
Price = Annotated[Decimal, PlainValidator(validation.money, json_schema_input_type=float)]
Stock = Annotated[int, PlainValidator(validation.integer(0), json_schema_input_type=int)]
Active = Annotated[bool, PlainValidator(validation.boolean, json_schema_input_type=bool)]

# listed in the order the error message names them; the first is the default
SORTS = ("id", "name", "price", "stock", "created_at")


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku: str
    name: str
    description: str
    category: str
    price: Money
    stock: int
    is_active: bool
    image_url: str | None
    created_at: Timestamp
    updated_at: Timestamp


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: Name
    price: Price
    category: Category
    description: Description = ""
    stock: Stock = 0


class ProductPatch(BaseModel):
    """Any subset of the editable fields; a key sent as null is still checked (and refused)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, PlainValidator(validation.text(1, 200))] = None
    description: Annotated[str | None, PlainValidator(validation.text(strip=False))] = None
    category: Annotated[str | None, PlainValidator(validation.text(1, 60))] = None
    price: Annotated[Decimal | None, PlainValidator(validation.money)] = None
    stock: Annotated[int | None, PlainValidator(validation.integer(0))] = None
    is_active: Annotated[bool | None, PlainValidator(validation.boolean)] = None


class ProductListQuery(BaseModel):
    page: params.Page = 1
    per_page: params.PerPage = 20
    category: params.TextFilter = None
    q: params.TextFilter = None
    min_price: params.NumberFilter = None
    max_price: params.NumberFilter = None
    in_stock: params.BoolFilter = None
    sort: Annotated[str, PlainValidator(params.query_sort(SORTS), json_schema_input_type=str)] = SORTS[0]
