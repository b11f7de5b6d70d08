"""Each feature maps its tables with the very DDL the legacy app creates."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from features.products.models import Product
from features.users.models import User
from legacy_flask import models as legacy


def ddl(table: sa.Table, dialect: Dialect) -> list[str]:
    statements = [str(CreateTable(table).compile(dialect=dialect))]
    statements += sorted(str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes)
    return statements


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "pg"])
@pytest.mark.parametrize(
    ("native", "original"),
    [(User, legacy.User), (Product, legacy.Product)],
    ids=["users", "products"],
)
def test_same_ddl_as_legacy(native: type, original: type, dialect: Dialect) -> None:
    assert ddl(native.__table__, dialect) == ddl(original.__table__, dialect)


def test_each_feature_has_its_own_metadata() -> None:
    # features never share mappings: each maps only the tables it owns
    assert set(User.metadata.tables) == {"users"}
    assert set(Product.metadata.tables) == {"products"}
