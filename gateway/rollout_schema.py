"""Map sections for progressive cutover: canary, fallback and guard (schema v1).

`canary` sends a sticky share of a legacy-owned route to the new side; `fallback` answers a
failed safe request from legacy; `guard` rolls a route back to legacy when the new side
misbehaves. What the gateway decides at run time (a rollback, an abort) is not in the map:
it lives in the store, beside it.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

STICKY_KEY = re.compile(
    r"^(header:[A-Za-z0-9!#$%&'*+.^_`|~-]+|cookie:[A-Za-z0-9!#$%&'*+.^_`|~-]+|client_ip)$"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OnMissing(StrEnum):
    LEGACY = "legacy"  # no sticky key: legacy serves (a user is never flipped back and forth)
    RANDOM = "random"  # no sticky key: a fresh random bucket per request


class CanarySettings(_Strict):
    # whole buckets of 1 %, as Unleash counts them: a fractional percent would silently round down
    percent: int = Field(ge=0, le=100, description="share of requests the new side serves")
    sticky: tuple[str, ...] = ("header:X-User-Id", "cookie:session", "client_ip")
    on_missing: OnMissing = OnMissing.LEGACY
    # automatic ramp: the next percentage after each pause, only on a guard's "ok" (never on
    # "inconclusive"); after the last step the route is promoted to the new side
    steps: tuple[int, ...] = ()
    step_pause_s: int = Field(300, ge=1, le=7 * 86400)

    @field_validator("steps", mode="after")
    @classmethod
    def _rising(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 < p <= 100 for p in value) or list(value) != sorted(set(value)):
            raise ValueError("must be rising percentages between 1 and 100, e.g. [25, 50, 100]")
        return value

    @field_validator("sticky", mode="after")
    @classmethod
    def _sticky(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must list at least one key: header:NAME, cookie:NAME or client_ip")
        for key in value:
            if not STICKY_KEY.match(key):
                raise ValueError(f"unknown sticky key {key!r} (use header:NAME, cookie:NAME or client_ip)")
        return value


class FallbackOn(StrEnum):
    SERVER_ERROR = "5xx"
    EXCEPTION = "exception"
    TIMEOUT = "timeout"


class FallbackSettings(_Strict):
    """When the new side fails a safe request, legacy answers it instead."""

    on: tuple[FallbackOn, ...] = (FallbackOn.SERVER_ERROR, FallbackOn.EXCEPTION, FallbackOn.TIMEOUT)
    methods: tuple[str, ...] = ("GET", "HEAD")
    timeout_ms: int = Field(5000, ge=1, le=300_000)

    @field_validator("methods", mode="before")
    @classmethod
    def _safe_only(cls, value: object) -> object:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            raise ValueError("must be a non-empty list of safe methods, e.g. [GET, HEAD]")
        methods = tuple(str(m).upper() for m in items)
        unsafe = [m for m in methods if m not in ("GET", "HEAD", "OPTIONS")]
        if unsafe:
            raise ValueError(
                f"only safe methods can fall back (a write is never replayed): {', '.join(unsafe)}"
            )
        return methods


class GuardSettings(_Strict):
    """Thresholds on the new side, over a sliding window, that roll a route back to legacy."""

    window_s: int = Field(60, ge=5, le=3600)
    min_samples: int = Field(50, ge=1, description="fewer new-side requests in the window: inconclusive")
    max_error_rate: float | None = Field(0.05, ge=0, le=1, description="5xx and exceptions of the new side")
    max_error_excess: float | None = Field(None, ge=0, le=1, description="new error rate minus legacy's")
    p99_ratio: float | None = Field(None, gt=0, description="new p99 / legacy p99")
    max_mismatch_rate: float | None = Field(None, ge=0, le=1, description="shadow comparisons that differ")
