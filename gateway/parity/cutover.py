"""The cut-over gate: may a route move to `owner: new`? Only on evidence.

A route is ready when the store holds at least `min_samples` shadowed requests for it, when
mismatches and candidate errors together stay at or under `max_mismatch_rate` of them, and
when the new side's p95 latency is at most `max_p95_ratio` times the legacy side's. Missing
data is never a pass: no comparisons, or no latency for one side, is *not ready*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.exchange import Side
from gateway.map_schema import CutoverSettings
from gateway.parity.report import RouteSummary


@dataclass(frozen=True, slots=True)
class CutoverVerdict:
    route_id: str
    ready: bool
    reasons: tuple[str, ...]  # why not ready; empty when ready
    samples: int
    mismatch_rate: float | None
    p95_legacy: float | None
    p95_new: float | None
    settings: CutoverSettings

    @property
    def p95_ratio(self) -> float | None:
        if self.p95_legacy is None or self.p95_new is None or self.p95_legacy <= 0:
            return None
        return self.p95_new / self.p95_legacy

    def as_json(self) -> dict[str, Any]:
        return {
            "route_id": self.route_id,
            "ready": self.ready,
            "reasons": list(self.reasons),
            "samples": self.samples,
            "mismatch_rate": self.mismatch_rate,
            "p95_ms": {"legacy": self.p95_legacy, "new": self.p95_new},
            "p95_ratio": self.p95_ratio,
            "thresholds": self.settings.model_dump(),
        }


def verdict(summary: RouteSummary, settings: CutoverSettings) -> CutoverVerdict:
    min_samples = settings.min_samples or 1
    max_rate = settings.max_mismatch_rate if settings.max_mismatch_rate is not None else 0.0
    max_ratio = settings.max_p95_ratio
    reasons: list[str] = []
    samples, rate = summary.samples, summary.mismatch_rate
    p95_legacy, p95_new = summary.percentile(Side.LEGACY, 0.95), summary.percentile(Side.NEW, 0.95)
    if samples == 0:
        reasons.append("no shadow comparisons recorded: no data is not a pass")
    elif samples < min_samples:
        reasons.append(f"only {samples} of the {min_samples} comparisons required")
    if rate is not None and rate > max_rate:
        bad = summary.mismatched + summary.candidate_errors
        allowed = _pct(max_rate)
        reasons.append(f"mismatch rate {_pct(rate)} ({bad} of {samples}) is over the {allowed} allowed")
    if max_ratio is not None and samples:
        missing = [side for side, p95 in (("legacy", p95_legacy), ("new", p95_new)) if p95 is None]
        if missing:
            reasons.append(f"no latency recorded for the {' and '.join(missing)} side")
        elif p95_legacy is not None and p95_new is not None and p95_new > max_ratio * p95_legacy:
            reasons.append(
                f"new p95 {p95_new:.1f} ms is {p95_new / p95_legacy:.2f}x legacy's {p95_legacy:.1f} ms "
                f"(at most {max_ratio:g}x allowed)"
            )
    return CutoverVerdict(
        route_id=summary.route_id,
        ready=not reasons,
        reasons=tuple(reasons),
        samples=samples,
        mismatch_rate=rate,
        p95_legacy=p95_legacy,
        p95_new=p95_new,
        settings=settings,
    )


def _pct(rate: float) -> str:
    return f"{rate * 100:.3g} %"
