"""Body validation in the legacy app's words, driven by pydantic.

Each checker takes the raw JSON value and returns the clean one or raises a pydantic error
carrying the contract's message. Models built from them (`extra="forbid"`) report every bad
field at once, "unknown field" for keys they do not declare, "is required" for missing ones.
Defaults are not validated, as on the legacy side.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from features.core.errors import BadRequest, ValidationFailed, fields_from_errors, invalid

Checker = Callable[[Any], Any]
M = TypeVar("M", bound=BaseModel)
N = TypeVar("N", int, Decimal)

MAX_INT = 2**31 - 1  # PostgreSQL `integer`
MAX_MONEY = Decimal("99999999.99")  # numeric(10,2)
CENT = Decimal("0.01")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def text(min_len: int = 0, max_len: int | None = None, *, strip: bool = True) -> Checker:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise invalid("must be a string")
        clean = value.strip() if strip else value
        if len(clean) < min_len or (max_len is not None and len(clean) > max_len):
            raise invalid(f"must be {min_len} to {max_len} characters")
        return clean

    return check


def email(value: Any) -> str:
    if not isinstance(value, str):
        raise invalid("must be a string")
    clean = value.strip().lower()
    if len(clean) > 255 or not _EMAIL.fullmatch(clean):
        raise invalid("must be a valid email address")
    return clean


def password(value: Any) -> str:
    if not isinstance(value, str):
        raise invalid("must be a string")
    if len(value) < 8:
        raise invalid("must be at least 8 characters")
    return value


def choice(allowed: tuple[str, ...]) -> Checker:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise invalid("must be a string")
        if value not in allowed:
            raise invalid(f"must be one of: {', '.join(allowed)}")
        return value

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid("must be a boolean")
    return value


def integer(minimum: int = 0, maximum: int = MAX_INT) -> Checker:
    def check(value: Any) -> int:
        # bool is an int subclass in Python, but `true` is not an integer in JSON
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid("must be an integer")
        return in_range(value, minimum, maximum)

    return check


def money(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid("must be a number")
    # str() first: Decimal(0.1) would carry the binary float's noise into the rounding.
    # The range is checked before rounding (quantizing 1e30 to cents would overflow
    # Decimal's context) and again after it (99999999.995 rounds over the top).
    amount = in_range(Decimal(str(value)), Decimal(0), MAX_MONEY)
    return in_range(amount.quantize(CENT, rounding=ROUND_HALF_UP), Decimal(0), MAX_MONEY)


def in_range(value: N, minimum: N, maximum: N) -> N:
    if value < minimum:
        raise invalid(f"must be >= {minimum}")
    if value > maximum:
        raise invalid(f"must be <= {maximum}")
    return value


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, whatever the Content-Type says (as the legacy side reads it)."""
    try:
        data = json.loads(await request.body())
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(fields_from_errors(exc.errors())) from None


async def json_body(request: Request, model: type[M]) -> M:
    """`json_object` then `validate`: 400 bad_request, or 400 validation_error with fields."""
    return validate(model, await json_object(request))
