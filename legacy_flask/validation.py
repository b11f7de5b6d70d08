"""JSON body validation: one message per field, every bad field reported at once.

Each checker takes the raw JSON value and returns the cleaned one or raises ``Invalid``
with the contract's message text (README.md, "Validation messages").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from flask import request

from legacy_flask.errors import BadRequest, ValidationError

Checker = Callable[[Any], Any]
N = TypeVar("N", int, Decimal)

MAX_INT = 2**31 - 1  # PostgreSQL `integer`
MAX_MONEY = Decimal("99999999.99")  # numeric(10,2)
CENT = Decimal("0.01")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MISSING = object()


class Invalid(Exception):
    pass


@dataclass(frozen=True)
class Field:
    check: Checker
    required: bool = True
    default: Any = _MISSING


def json_object() -> dict[str, Any]:
    # parsed whatever the Content-Type says, like the many clients that forget to set it
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def validate(
    data: Mapping[str, Any], spec: Mapping[str, Field], *, partial: bool = False
) -> dict[str, Any]:
    """Cleaned values for the keys present (plus defaults unless ``partial``)."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for key in data:
        if key not in spec:
            errors[key] = "unknown field"
    for key, field in spec.items():
        if key not in data:
            if partial:
                continue
            if field.default is not _MISSING:
                clean[key] = field.default
            elif field.required:
                errors[key] = "is required"
            continue
        try:
            clean[key] = field.check(data[key])
        except Invalid as exc:
            errors[key] = str(exc)
    if errors:
        raise ValidationError(errors)
    return clean


def string(min_len: int = 0, max_len: int | None = None, *, strip: bool = True) -> Checker:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("must be a string")
        text = value.strip() if strip else value
        if len(text) < min_len or (max_len is not None and len(text) > max_len):
            raise Invalid(f"must be {min_len} to {max_len} characters")
        return text

    return check


def email(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("must be a string")
    address = value.strip().lower()
    if len(address) > 255 or not _EMAIL.fullmatch(address):
        raise Invalid("must be a valid email address")
    return address


def password(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("must be a string")
    if len(value) < 8:
        raise Invalid("must be at least 8 characters")
    return value


def choice(allowed: tuple[str, ...]) -> Checker:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("must be a string")
        if value not in allowed:
            raise Invalid(f"must be one of: {', '.join(allowed)}")
        return value

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be a boolean")
    return value


def integer(minimum: int = 0, maximum: int = MAX_INT) -> Checker:
    def check(value: Any) -> int:
        # bool is an int subclass in Python, but `true` is not an integer in JSON
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("must be an integer")
        return in_range(value, minimum, maximum)

    return check


def money(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid("must be a number")
    # str() first: Decimal(0.1) would carry the binary float's noise into the rounding.
    # Range first too: quantizing 1e30 to cents needs more digits than Decimal's context has.
    amount = in_range(Decimal(str(value)), Decimal(0), MAX_MONEY)
    # and again after rounding, which can carry 99999999.995 over the top
    return in_range(amount.quantize(CENT, rounding=ROUND_HALF_UP), Decimal(0), MAX_MONEY)


def in_range(value: N, minimum: N, maximum: N) -> N:
    if value < minimum:
        raise Invalid(f"must be >= {minimum}")
    if value > maximum:
        raise Invalid(f"must be <= {maximum}")
    return value
