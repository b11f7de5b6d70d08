"""Schema v1 of migration_map.yaml: the desired state, edited by engineers, never written by us.

Every model forbids unknown keys, so a typo is an error with a line number rather than a
silently ignored setting. New sections (shadow, canary, guards) are added as optional fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from gateway.rollout_schema import CanarySettings, FallbackSettings, GuardSettings

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
ROUTE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class Owner(StrEnum):
    LEGACY = "legacy"
    NEW = "new"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Unsafe(StrEnum):
    OFF = "off"  # writes are never shadowed
    ROLLBACK = "rollback"  # the candidate runs first, in a transaction that is always rolled back


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_FIELD_NAME = re.compile(r"[^\s.\[\]]+")  # a name at any depth: no path syntax


class ShadowSettings(_Strict):
    """Shadow rules as written: in `defaults` every field has a value, on a route any may be
    left out and is then taken from `defaults` (lists are added to the defaults' lists)."""

    sample: float | None = Field(None, ge=0, le=1, description="share of requests shadowed")
    timeout_ms: int | None = Field(None, ge=1, le=120_000)
    max_body_bytes: int | None = Field(None, ge=0, le=64 * 1024 * 1024)
    ignore: tuple[str, ...] = ()  # paths: body.updated_at, body.items[].price, body.*.id, headers.etag
    compare_headers: tuple[str, ...] | None = None  # replaces the defaults' list when given
    ignore_headers: tuple[str, ...] = ()
    float_tolerance: float | None = Field(None, ge=0)
    unordered: tuple[str, ...] = ()  # list paths compared without order, e.g. body.items
    # never stored, on top of the built-in names (gateway.parity.redact), which always are:
    redact: tuple[str, ...] = ()  # field names: JSON at any depth, forms, query strings, text
    redact_headers: tuple[str, ...] = ()  # header names, beside Authorization, Cookie, ...
    noise_sample: float | None = Field(None, ge=0, le=1, description="share of shadows that rerun the owner")
    unsafe: Unsafe | None = None

    @field_validator("compare_headers", "ignore_headers", mode="after")
    @classmethod
    def _lower(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(v.lower() for v in value)

    @field_validator("redact", "redact_headers", mode="before")
    @classmethod
    def _a_list(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, list | tuple):
            example = "[ssn, card_number]" if info.field_name == "redact" else "[x-internal-key]"
            raise ValueError(f"must be a list of names, e.g. {example}")
        return value

    @field_validator("redact", mode="after")
    @classmethod
    def _field_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _FIELD_NAME.fullmatch(name):
                why = "is not a field name (no spaces, dots or brackets), e.g. card_number"
                raise ValueError(f"{name!r} {why}")
        return value

    @field_validator("redact_headers", mode="after")
    @classmethod
    def _header_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header name, e.g. x-internal-key")
        return tuple(v.lower() for v in value)


DEFAULT_SHADOW = ShadowSettings(
    sample=0.0,
    timeout_ms=2000,
    max_body_bytes=1024 * 1024,
    compare_headers=("content-type",),
    float_tolerance=0.0,
    noise_sample=0.1,
    unsafe=Unsafe.OFF,
)


@dataclass(frozen=True, slots=True)
class ShadowRules:
    """Effective shadow rules of one route: the defaults merged with the route's own."""

    sample: float
    timeout_ms: int
    max_body_bytes: int
    ignore: tuple[str, ...]
    compare_headers: tuple[str, ...]
    ignore_headers: tuple[str, ...]
    float_tolerance: float
    unordered: tuple[str, ...]
    redact: tuple[str, ...]  # added to the built-in names, which are always hidden
    redact_headers: tuple[str, ...]
    noise_sample: float
    unsafe: Unsafe

    def shadows(self, method: str) -> bool:
        return self.sample > 0 and (method in SAFE_METHODS or self.unsafe is Unsafe.ROLLBACK)


_NO_SHADOW = ShadowSettings()


def merge_shadow(defaults: ShadowSettings, route: ShadowSettings | None) -> ShadowRules:
    if route is None:
        return _defaults_rules(defaults)
    return _merge(_base(defaults), route)


# Every route of a map merges with the same defaults: without these caches a 10,000-route map
# spent ~0.5 s in model_dump/model_copy of the same settings (the models are frozen, hashable).
@lru_cache(maxsize=16)
def _base(defaults: ShadowSettings) -> ShadowSettings:
    return DEFAULT_SHADOW.model_copy(update=defaults.model_dump(exclude_unset=True))


@lru_cache(maxsize=16)
def _defaults_rules(defaults: ShadowSettings) -> ShadowRules:
    return _merge(_base(defaults), _NO_SHADOW)


def _merge(base: ShadowSettings, over: ShadowSettings) -> ShadowRules:
    def pick(name: str) -> Any:
        value = getattr(over, name)
        return getattr(base, name) if value is None else value

    def union(name: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*getattr(base, name), *getattr(over, name))))

    return ShadowRules(
        sample=float(pick("sample")),
        timeout_ms=int(pick("timeout_ms")),
        max_body_bytes=int(pick("max_body_bytes")),
        ignore=union("ignore"),
        compare_headers=tuple(pick("compare_headers")),
        ignore_headers=union("ignore_headers"),
        float_tolerance=float(pick("float_tolerance")),
        unordered=union("unordered"),
        redact=union("redact"),
        redact_headers=union("redact_headers"),
        noise_sample=float(pick("noise_sample")),
        unsafe=Unsafe(pick("unsafe")),
    )


class CutoverSettings(_Strict):
    """What `gateway cutover-check` requires before a route may move to `owner: new`."""

    min_samples: int | None = Field(None, ge=1)
    max_mismatch_rate: float | None = Field(None, ge=0, le=1)
    max_p95_ratio: float | None = Field(None, gt=0, description="new p95 / legacy p95")


DEFAULT_CUTOVER = CutoverSettings(min_samples=200, max_mismatch_rate=0.001, max_p95_ratio=1.5)


class Defaults(_Strict):
    owner: Owner = Owner.LEGACY
    shadow: ShadowSettings = ShadowSettings()
    cutover: CutoverSettings = CutoverSettings()


class RouteEntry(_Strict):
    id: str = Field(pattern=ROUTE_ID_PATTERN)
    path: str
    # None means every method; GET also answers HEAD, as in Flask.
    methods: tuple[str, ...] | None = None
    owner: Owner | None = None
    shadow: ShadowSettings | None = None
    cutover: CutoverSettings | None = None
    canary: CanarySettings | None = None
    fallback: FallbackSettings | None = None
    guard: GuardSettings | None = None

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

    def shadow_of(self, entry: RouteEntry) -> ShadowRules:
        return merge_shadow(self.defaults.shadow, entry.shadow)

    def cutover_of(self, entry: RouteEntry) -> CutoverSettings:
        merged = DEFAULT_CUTOVER.model_dump()
        merged.update(self.defaults.cutover.model_dump(exclude_none=True))
        if entry.cutover is not None:
            merged.update(entry.cutover.model_dump(exclude_none=True))
        return CutoverSettings(**merged)
