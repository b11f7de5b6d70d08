"""A route's recent health, per side, and the guard's verdict on it.

`WindowStats` keeps one ring of 1-second buckets per route and worker (no locks: one event
loop per worker) plus running totals, so `observe` is a few increments and `evaluate` never
walks the window. The window is the current second and the `window_s - 1` before it: an
observation counts for between `window_s - 1` and `window_s` seconds. Latency goes into the
parity store's log-spaced histogram (gateway.parity.latency), every request included: a
timeout is the slowest answer a user saw.

`evaluate` follows Flagger and Argo Rollouts: too few new-side requests is *inconclusive*,
never a pass and never a breach; a comparison with legacy needs enough legacy requests too,
and is skipped with a note otherwise. A figure equal to its threshold is not a breach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from gateway.parity import latency
from gateway.rollout_schema import GuardSettings

Decision = Literal["ok", "breach", "inconclusive"]
Figures = dict[str, float | int | None]

# rates are ratios of counts: this absorbs float rounding (0.10 - 0.09 > 0.01) and nothing real
_EPSILON = 1e-9


class _Side:
    __slots__ = ("errors", "latency", "requests", "total_errors", "total_latency", "total_requests")

    def __init__(self, slots: int) -> None:
        self.requests = [0] * slots
        self.errors = [0] * slots
        self.latency: list[dict[int, int]] = [{} for _ in range(slots)]
        self.total_requests = 0
        self.total_errors = 0
        self.total_latency: dict[int, int] = {}

    def recycle(self, index: int) -> None:
        if not self.requests[index]:
            return
        self.total_requests -= self.requests[index]
        self.total_errors -= self.errors[index]
        self.requests[index] = self.errors[index] = 0
        histogram, total = self.latency[index], self.total_latency
        for bucket, count in histogram.items():
            left = total[bucket] - count
            if left:
                total[bucket] = left
            else:
                del total[bucket]  # keeps the percentile's sort to the buckets in use
        histogram.clear()


class WindowStats:
    __slots__ = ("_compared", "_head", "_legacy", "_mismatched", "_new", "_total_compared",
                 "_total_mismatched", "window_s")

    def __init__(self, window_s: int) -> None:
        if window_s < 1:
            raise ValueError(f"window_s must be at least 1 second, not {window_s}")
        self.window_s = window_s
        self._reset(0)

    def _reset(self, head: int) -> None:
        slots = self.window_s
        self._head = head  # the latest whole second the ring holds
        self._legacy = _Side(slots)
        self._new = _Side(slots)
        self._compared = [0] * slots
        self._mismatched = [0] * slots
        self._total_compared = 0
        self._total_mismatched = 0

    def _slot(self, now: float) -> int:
        """The ring index for `now`, after recycling the buckets that fell out; -1 when too old."""
        second = math.floor(now)
        head, slots = self._head, self.window_s
        if second > head:
            if second - head >= slots:
                self._reset(second)  # idle for a whole window: nothing survives
            else:
                for passed in range(head + 1, second + 1):
                    self._recycle(passed % slots)
                self._head = second
        elif second <= head - slots:
            return -1
        return second % slots

    def _recycle(self, index: int) -> None:
        self._legacy.recycle(index)
        self._new.recycle(index)
        if self._compared[index]:
            self._total_compared -= self._compared[index]
            self._total_mismatched -= self._mismatched[index]
            self._compared[index] = self._mismatched[index] = 0

    def observe(self, side: str, status: int | None, latency_ms: float, now: float) -> None:
        """One answer from `side` ("legacy" or "new"); status None: it raised or timed out."""
        if side != "new" and side != "legacy":
            raise ValueError(f"side must be 'legacy' or 'new', not {side!r}")
        index = self._slot(now)  # first: after an idle window it replaces both sides
        if index < 0:
            return
        stats = self._new if side == "new" else self._legacy
        stats.requests[index] += 1
        stats.total_requests += 1
        if status is None or status >= 500:
            stats.errors[index] += 1
            stats.total_errors += 1
        bucket = latency.bucket(latency_ms)
        histogram, total = stats.latency[index], stats.total_latency
        histogram[bucket] = histogram.get(bucket, 0) + 1
        total[bucket] = total.get(bucket, 0) + 1

    def observe_shadow(self, mismatch: bool, now: float) -> None:
        index = self._slot(now)
        if index < 0:
            return
        self._compared[index] += 1
        self._total_compared += 1
        if mismatch:
            self._mismatched[index] += 1
            self._total_mismatched += 1

    def snapshot(self, now: float) -> Snapshot:
        """The window ending at `now` (which, like the observations' clock, never goes back)."""
        self._slot(now)
        new, legacy = self._new, self._legacy
        return Snapshot(
            window_s=self.window_s,
            new_requests=new.total_requests,
            new_errors=new.total_errors,
            new_p99_ms=latency.percentile(new.total_latency, 0.99),
            legacy_requests=legacy.total_requests,
            legacy_errors=legacy.total_errors,
            legacy_p99_ms=latency.percentile(legacy.total_latency, 0.99),
            shadow_compared=self._total_compared,
            shadow_mismatches=self._total_mismatched,
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    window_s: int
    new_requests: int
    new_errors: int
    new_p99_ms: float | None
    legacy_requests: int
    legacy_errors: int
    legacy_p99_ms: float | None
    shadow_compared: int
    shadow_mismatches: int

    @property
    def p99_ratio(self) -> float | None:
        if self.new_p99_ms is None or not self.legacy_p99_ms:
            return None
        return self.new_p99_ms / self.legacy_p99_ms

    def figures(self) -> Figures:
        return {
            "new_requests": self.new_requests,
            "new_errors": self.new_errors,
            "new_error_rate": _rate(self.new_errors, self.new_requests),
            "legacy_requests": self.legacy_requests,
            "legacy_errors": self.legacy_errors,
            "legacy_error_rate": _rate(self.legacy_errors, self.legacy_requests),
            "new_p99_ms": self.new_p99_ms,
            "legacy_p99_ms": self.legacy_p99_ms,
            "p99_ratio": self.p99_ratio,
            "shadow_compared": self.shadow_compared,
            "shadow_mismatches": self.shadow_mismatches,
            "shadow_mismatch_rate": _rate(self.shadow_mismatches, self.shadow_compared),
        }


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    decision: Decision
    reasons: tuple[str, ...]  # breach: what was exceeded; otherwise why nothing was (skipped checks)
    figures: Figures


def evaluate(stats: WindowStats, guard: GuardSettings, now: float) -> GuardVerdict:
    w = stats.snapshot(now)
    figures = w.figures()
    window = f"over {w.window_s} s"
    need = guard.min_samples
    new_n, new_err = w.new_requests, w.new_errors
    if new_n < need:
        reason = f"only {new_n} new-side requests {window}; {need} needed to judge"
        return GuardVerdict("inconclusive", (reason,), figures)

    breaches: list[str] = []
    notes: list[str] = []
    new_rate = new_err / new_n
    if guard.max_error_rate is not None and _exceeds(new_rate, guard.max_error_rate):
        limit = _pct(guard.max_error_rate)
        breaches.append(f"new error rate {_pct(new_rate)} {window} ({new_err} of {new_n}) exceeds {limit}")

    legacy_n, legacy_err = w.legacy_requests, w.legacy_errors
    few_legacy = f"only {legacy_n} legacy requests {window}; {need} needed"
    if guard.max_error_excess is not None:
        if legacy_n < need:
            notes.append(f"error excess over legacy not checked: {few_legacy}")
        else:
            legacy_rate = legacy_err / legacy_n
            excess = new_rate - legacy_rate
            if _exceeds(excess, guard.max_error_excess):
                breaches.append(
                    f"new error rate {_pct(new_rate)} ({new_err} of {new_n}) exceeds legacy's "
                    f"{_pct(legacy_rate)} ({legacy_err} of {legacy_n}) by {_points(excess)} {window}; "
                    f"at most {_points(guard.max_error_excess)} allowed"
                )

    if guard.p99_ratio is not None:
        ratio = w.p99_ratio
        if legacy_n < need:
            notes.append(f"p99 ratio not checked: {few_legacy}")
        elif ratio is not None and _exceeds(ratio, guard.p99_ratio):
            breaches.append(
                f"new p99 {w.new_p99_ms:.1f} ms is {ratio:.2f}x legacy's {w.legacy_p99_ms:.1f} ms {window} "
                f"({new_n} and {legacy_n} requests); at most {guard.p99_ratio:g}x allowed"
            )

    if guard.max_mismatch_rate is not None:
        compared, mismatched = w.shadow_compared, w.shadow_mismatches
        if compared < need:
            notes.append(
                f"mismatch rate not checked: only {compared} shadow comparisons {window}; {need} needed"
            )
        elif _exceeds(mismatched / compared, guard.max_mismatch_rate):
            breaches.append(
                f"shadow mismatch rate {_pct(mismatched / compared)} {window} ({mismatched} of {compared} "
                f"compared) exceeds {_pct(guard.max_mismatch_rate)}"
            )

    if breaches:
        return GuardVerdict("breach", tuple(breaches), figures)
    return GuardVerdict("ok", tuple(notes), figures)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _exceeds(value: float, limit: float) -> bool:
    return value > limit + _EPSILON


def _pct(rate: float) -> str:
    percent = rate * 100
    # one decimal reads best (12.0 %); small thresholds (0.05 %) keep their significant digits
    return f"{percent:.1f} %" if percent == 0 or abs(percent) >= 1 else f"{percent:.2g} %"


def _points(rate: float) -> str:
    return _pct(rate).replace(" %", " points")
