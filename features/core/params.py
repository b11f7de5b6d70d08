"""Query-string checkers for list endpoints, in the legacy app's words.

A list endpoint declares a pydantic model of `Annotated[..., PlainValidator(checker)]`
fields; `query_params` validates the request's query string with it and reports every bad
parameter at once, keyed by parameter name. As in Werkzeug, a repeated parameter counts
with its first value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, PlainValidator

from features.core.errors import invalid
from features.core.validation import MAX_INT, validate

M = TypeVar("M", bound=BaseModel)

# the legacy patterns, Unicode digits and all (`\d` is not just 0-9 on `str`)
_INT = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def query_int(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def check(raw: Any) -> int:
        if not isinstance(raw, str) or not _INT.fullmatch(raw):
            raise invalid("must be an integer")
        value = int(raw)
        if value < minimum:
            raise invalid(f"must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise invalid(f"must be <= {maximum}")
        return value

    return check


def query_number(raw: Any) -> Decimal:
    if not isinstance(raw, str) or not _NUMBER.fullmatch(raw):
        raise invalid("must be a number")
    value = Decimal(raw)
    if value < 0:
        raise invalid("must be >= 0")
    return value


def query_bool(raw: Any) -> bool:
    if raw not in ("true", "false"):
        raise invalid("must be a boolean")
    return bool(raw == "true")


def query_choice(allowed: Sequence[str]) -> Callable[[Any], str]:
    def check(raw: Any) -> str:
        if raw not in allowed:
            raise invalid(f"must be one of: {', '.join(allowed)}")
        return str(raw)

    return check


def query_sort(columns: Sequence[str]) -> Callable[[Any], str]:
    """A column name, optionally `-`-prefixed for descending; the message lists the names."""

    def check(raw: Any) -> str:
        if not isinstance(raw, str) or raw.removeprefix("-") not in columns:
            raise invalid(f"must be one of: {', '.join(columns)}")
        return raw

    return check


def query_text(raw: Any) -> str:
    return str(raw)


def query_params(request: Request, model: type[M]) -> M:
    """`model` validated from the query string, first value of each parameter."""
    first: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        first.setdefault(key, value)
    return validate(model, first)


# the parameters every list endpoint shares, and the usual kinds of filter
Page = Annotated[int, PlainValidator(query_int(1, MAX_INT), json_schema_input_type=int)]
PerPage = Annotated[int, PlainValidator(query_int(1, 100), json_schema_input_type=int)]
TextFilter = Annotated[str | None, PlainValidator(query_text, json_schema_input_type=str)]
BoolFilter = Annotated[bool | None, PlainValidator(query_bool, json_schema_input_type=bool)]
NumberFilter = Annotated[Decimal | None, PlainValidator(query_number, json_schema_input_type=float)]
