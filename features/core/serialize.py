"""How the contract writes datetimes and money, as pydantic field types."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import PlainSerializer


def timestamp(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def money(value: Decimal) -> float:
    return float(value)


# naive UTC, to the second: "2024-01-01T09:00:00"
Timestamp = Annotated[datetime, PlainSerializer(timestamp, return_type=str)]
# a JSON number, not a string: 19.99
Money = Annotated[Decimal, PlainSerializer(money, return_type=float)]
