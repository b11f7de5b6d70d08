"""Schema v1 of migration_map.yaml: the desired state, edited by engineers, never written by us.

Every model forbids unknown keys, so a typo is an error with a line number rather than a
silently ignored setting. New sections (shadow, canary, guards) are added as optional fields.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
ROUTE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class Owner(StrEnum):
    LEGACY = "legacy"
    NEW = "new"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Strict):
    owner: Owner = Owner.LEGACY


class RouteEntry(_Strict):
    id: str = Field(pattern=ROUTE_ID_PATTERN)
    path: str
    # None means every method; GET also answers HEAD, as in Flask.
    methods: tuple[str, ...] | None = None
    owner: Owner | None = None

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, value: object) -> object:
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not value:
            raise ValueError("must be a non-empty list of HTTP methods, e.g. [GET, POST]")
        methods: list[str] = []
        for item in value:
            if not isinstance(item, str) or item.upper() not in HTTP_METHODS:
                raise ValueError(f"unknown HTTP method {item!r} (known: {', '.join(HTTP_METHODS)})")
            if item.upper() not in methods:
                methods.append(item.upper())
        return tuple(methods)


class MigrationMap(_Strict):
    version: Literal[1]
    defaults: Defaults = Defaults()
    routes: tuple[RouteEntry, ...] = ()

    def owner_of(self, entry: RouteEntry) -> Owner:
        return entry.owner or self.defaults.owner
