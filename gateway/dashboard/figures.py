"""Traffic, errors and latency per route and side, read from the gateway's Prometheus metrics.

The dashboard shows what /metrics says, not a second count kept beside it: the same series
Prometheus scrapes (gateway_requests_total, gateway_request_duration_seconds), read at page time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import Metric

from gateway.dashboard.quantiles import histogram_quantile

REQUESTS = "gateway_requests_total"
BUCKETS = "gateway_request_duration_seconds_bucket"
# "error" is the class of an exchange that ended without a status: a failure like a 5xx
FAILED = frozenset({"5xx", "error"})
SIDES = ("legacy", "new")


@dataclass(frozen=True, slots=True)
class Traffic:
    backend: str
    requests: int
    errors: int  # answered 5xx, or not at all

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True, slots=True)
class Latency:
    backend: str
    role: str  # primary: answered the client; shadow: answered the copy
    count: int
    p50: float | None  # seconds
    p95: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class RouteFigures:
    traffic: tuple[Traffic, ...]  # primary role, one per side, in SIDES order
    latency: tuple[Latency, ...]  # every (side, role) with observations: legacy first

    @property
    def requests(self) -> int:
        return sum(t.requests for t in self.traffic)


def read(source: Iterable[Metric]) -> dict[str, RouteFigures]:
    """Figures of every route id that has been counted; a route with no traffic is absent.
    `source` is GatewayMetrics.collect(): every worker's values when there are several."""
    counts: dict[tuple[str, str, str], float] = defaultdict(float)
    failed: dict[tuple[str, str, str], float] = defaultdict(float)
    buckets: dict[tuple[str, str, str], dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in source:
        for sample in family.samples:
            labels = sample.labels
            if sample.name == REQUESTS:
                key = (labels.get("route", ""), labels.get("backend", ""), labels.get("role", ""))
                counts[key] += sample.value  # summed: several processes may report one series
                if labels.get("status_class") in FAILED:
                    failed[key] += sample.value
            elif sample.name == BUCKETS:
                key = (labels.get("route", ""), labels.get("backend", ""), labels.get("role", ""))
                buckets[key][float(labels["le"])] += sample.value
    routes = {key[0] for key in counts} | {key[0] for key in buckets}
    out: dict[str, RouteFigures] = {}
    for route in sorted(routes):
        traffic = tuple(
            Traffic(side, int(counts.get(key, 0)), int(failed.get(key, 0)))
            for side in SIDES
            for key in [(route, side, "primary")]
        )
        latency = tuple(
            _latency(side, role, buckets[(route, side, role)])
            for side in SIDES
            for role in ("primary", "shadow")
            if (route, side, role) in buckets
        )
        out[route] = RouteFigures(traffic, tuple(series for series in latency if series.count))
    return out


def _latency(backend: str, role: str, histogram: dict[float, float]) -> Latency:
    pairs = list(histogram.items())
    count = int(max((n for _, n in pairs), default=0))
    p50, p95, p99 = (histogram_quantile(q, pairs) for q in (0.5, 0.95, 0.99))
    return Latency(backend, role, count, p50, p95, p99)


def empty() -> RouteFigures:
    return RouteFigures(tuple(Traffic(side, 0, 0) for side in SIDES), ())
