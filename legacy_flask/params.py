"""Query-string parsing and pagination shared by the list endpoints.

Bad values are collected across all parameters and reported together as one
``validation_error`` keyed by parameter name, like body validation does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, Session
from werkzeug.datastructures import MultiDict

from legacy_flask.errors import ValidationError
from legacy_flask.validation import MAX_INT

_INT = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


class QueryParams:
    def __init__(self, args: MultiDict[str, str]) -> None:
        self.args = args
        self.errors: dict[str, str] = {}

    def integer(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        raw = self.args.get(name)
        if raw is None:
            return default
        if not _INT.fullmatch(raw):
            self.errors[name] = "must be an integer"
            return default
        value = int(raw)
        if value < minimum:
            self.errors[name] = f"must be >= {minimum}"
        elif maximum is not None and value > maximum:
            self.errors[name] = f"must be <= {maximum}"
        return value

    def number(self, name: str) -> Decimal | None:
        raw = self.args.get(name)
        if raw is None:
            return None
        if not _NUMBER.fullmatch(raw):
            self.errors[name] = "must be a number"
            return None
        value = Decimal(raw)
        if value < 0:
            self.errors[name] = "must be >= 0"
        return value

    def boolean(self, name: str) -> bool | None:
        raw = self.args.get(name)
        if raw is None:
            return None
        if raw not in ("true", "false"):
            self.errors[name] = "must be a boolean"
            return None
        return raw == "true"

    def choice(self, name: str, allowed: Sequence[str]) -> str | None:
        raw = self.args.get(name)
        if raw is not None and raw not in allowed:
            self.errors[name] = f"must be one of: {', '.join(allowed)}"
            return None
        return raw

    def text(self, name: str) -> str | None:
        return self.args.get(name)

    def page(self) -> tuple[int, int]:
        # page is capped at PostgreSQL's `integer` so the OFFSET can never overflow
        return self.integer("page", 1, 1, MAX_INT), self.integer("per_page", 20, 1, 100)

    def sort(
        self, columns: Mapping[str, InstrumentedAttribute[Any]], tiebreak: InstrumentedAttribute[int]
    ) -> list[sa.ColumnElement[Any]]:
        """ORDER BY for ``sort``: a column name, ``-`` for descending, ties broken by id.

        The first key in ``columns`` is the default.
        """
        raw = self.args.get("sort", next(iter(columns)))
        name = raw.removeprefix("-")
        if name not in columns:
            self.errors["sort"] = f"must be one of: {', '.join(columns)}"
            name, raw = next(iter(columns)), ""
        column = columns[name]
        order: list[sa.ColumnElement[Any]] = [
            column.desc() if raw.startswith("-") else column.asc()
        ]
        if column is not tiebreak:
            order.append(tiebreak.asc())
        return order

    def check(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)


def paginate(
    session: Session,
    stmt: sa.Select[Any],
    page: int,
    per_page: int,
    serialize: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """The contract's list shape; a page past the end is empty, not an error."""
    total = session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery()))
    rows = session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    total = total or 0
    return {
        "items": [serialize(row) for row in rows],
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": -(-total // per_page),
    }
