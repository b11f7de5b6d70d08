"""Prometheus metrics of the gateway, on a registry the app factory injects.

With several workers (`gateway serve --workers N`), each one is its own process with its own
counters: PROMETHEUS_MULTIPROC_DIR names a directory where each process writes its values,
and a scrape, whichever worker answers it, reads and adds up all of them. Gauges say how:
in-flight requests and thread counts add up over live workers; the map's hash and the routes
per owner are the same in every worker, so they take the largest live value.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.metrics_core import Metric

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The directory the workers share their values through, when running several."""
    return os.environ.get(MULTIPROC_ENV) or None


_STATUS_CLASS = {code: f"{code // 100}xx" for code in range(100, 600)}

# seconds: from a cached JSON answer to a slow report, the range web latency lives in
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class AnswerSeries:
    """The answers of one (route, backend, role) since the last publish: a count per status
    code (None: no complete answer) and the latency histogram's sum and bucket counts."""

    __slots__ = ("_dirty", "_lock", "key", "statuses", "timing")

    def __init__(self, key: tuple[str, str, str], lock: threading.Lock, dirty: list[AnswerSeries]) -> None:
        self.key = key
        self._lock, self._dirty = lock, dirty
        self.statuses: dict[int | None, int] = {}
        self.timing = [0.0] * (len(LATENCY_BUCKETS) + 2)  # [sum, bucket counts..., +Inf]

    def add(self, status: int | None, latency_ms: float) -> None:
        seconds = latency_ms / 1000
        where = bisect.bisect_left(LATENCY_BUCKETS, seconds)  # the first bucket whose bound >= seconds
        with self._lock:
            statuses = self.statuses
            if not statuses:
                self._dirty.append(self)
            statuses[status] = statuses.get(status, 0) + 1
            timing = self.timing
            timing[0] += seconds
            timing[1 + where] += 1


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.map_reloads = Counter(
            "gateway_map_reloads", "Map loads by result (ok, error)", ["result"], registry=self.registry
        )
        self.map_info = Gauge(
            "gateway_map_info",
            "1 for the map serving now (by sha256 and route count), 0 for maps it replaced",
            ["sha256", "routes"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        self._map_labels: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str, str], AnswerSeries] = {}
        self._dirty: list[AnswerSeries] = []  # the series with counts since the last publish()
        self._in_flight_now: dict[str, int] = {}
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self.legacy_rejected = Counter(
            "gateway_legacy_rejected",
            "Legacy requests answered 503 because no worker thread became free",
            registry=self.registry,
        )
        self.parity_dropped = Counter(
            "gateway_parity_dropped",
            "Shadow results the parity store never got (sample, comparison): more waited in memory "
            "than its bound allows, usually while the store could not be written",
            ["what"],
            registry=self.registry,
        )
        self.shadow_results = Counter(
            "gateway_shadow_comparisons",
            "Shadow comparisons by result (match: identical, diff: differs, error: candidate failed)",
            ["route", "result"],
            registry=self.registry,
        )
        self.shadow_skipped = Counter(
            "gateway_shadow_skipped",
            "Shadows not compared, by reason",
            ["route", "reason"],
            registry=self.registry,
        )
        self.shadow_cpu = Counter(
            "gateway_shadow_cpu_seconds",
            "Time shadow work held the event loop (the copy and capture on the request's path, "
            "then the job: candidate steps, comparison, record): what GATEWAY_SHADOW_CPU_BUDGET limits",
            registry=self.registry,
        )
        self.overrides = Counter(
            "gateway_overrides",
            "X-Gateway-Backend headers: applied (valid token) or ignored",
            ["result"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "gateway_fallbacks",
            "Safe requests answered by legacy after the new side failed",
            ["route", "reason"],
            registry=self.registry,
        )
        self.fallback_unchecked = Counter(
            "gateway_fallback_unchecked",
            "JSON answers of the new side passed on without the fallback's parse check, by reason "
            "(too_large: over the 1 MiB it holds; encoded: compressed)",
            ["route", "reason"],
            registry=self.registry,
        )
        self.rollbacks = Counter(
            "gateway_rollbacks",
            "Routes rolled back to legacy by a guard (this worker)",
            ["route"],
            registry=self.registry,
        )
        self.requests = Counter(
            "gateway_requests",
            "Answered requests by route id (unmapped ones share 'unmapped'), side, role and status class",
            ["route", "backend", "role", "status_class"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Time to the last byte of the answer, by route id, side and role",
            ["route", "backend", "role"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "gateway_in_flight_requests",
            "Requests being answered, by side",
            ["backend"],
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.legacy_threads = Gauge(
            "gateway_legacy_threads",
            "Legacy worker threads, by pool (primary, shadow)",
            ["pool"],
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.legacy_busy = Gauge(
            "gateway_legacy_threads_busy",
            "Legacy worker threads in use, by pool",
            ["pool"],
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.routes = Gauge(
            "gateway_routes",
            "Routes in the map serving now, by owner (migration progress)",
            ["owner"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )

    # The request path only adds to plain dicts (a few hundred nanoseconds); `publish()`
    # moves the sums into the Prometheus metrics, before every scrape and once a second (so
    # that in multiprocess mode a scrape answered by another worker sees this one's counts).

    def answered(self, route_id: str, backend: str, role: str, status: int | None, latency_ms: float) -> None:
        self.series(route_id, backend, role).add(status, latency_ms)

    def series(self, route_id: str, backend: str, role: str) -> AnswerSeries:
        """The counts of one (route, backend, role): the request path holds it, and adds to it
        without building or looking up a key."""
        key = (route_id, backend, role)
        series = self._series.get(key)
        if series is None:
            with self._lock:
                series = self._series.setdefault(key, AnswerSeries(key, self._lock, self._dirty))
        return series

    def request_started(self, backend: str) -> None:
        with self._lock:
            self._in_flight_now[backend] = self._in_flight_now.get(backend, 0) + 1

    def request_ended(self, backend: str) -> None:
        with self._lock:
            self._in_flight_now[backend] -= 1

    def publish(self) -> None:
        """Move what the request path counted into the Prometheus metrics."""
        taken: list[tuple[tuple[str, str, str], dict[int | None, int], list[float]]] = []
        with self._lock:
            for series in self._dirty:
                taken.append((series.key, series.statuses, series.timing))
                series.statuses, series.timing = {}, [0.0] * (len(LATENCY_BUCKETS) + 2)
            self._dirty.clear()
            in_flight = dict(self._in_flight_now)
        for key, statuses, _ in taken:
            by_class: dict[str, int] = {}
            for status, n in statuses.items():
                status_class = _STATUS_CLASS.get(status, "error") if status else "error"
                by_class[status_class] = by_class.get(status_class, 0) + n
            for status_class, n in by_class.items():
                self._child(self.requests, (*key, status_class)).inc(n)
        for key, _, timing in taken:
            histogram = self._child(self.duration, key)
            # a histogram's own parts: observe() has no way to add n observations at once
            histogram._sum.inc(timing[0])
            for bucket, seen in zip(histogram._buckets, timing[1:], strict=True):
                if seen:
                    bucket.inc(seen)
        for backend, now in in_flight.items():
            self._child(self.in_flight, (backend,)).set(now)

    async def publish_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.publish()

    def _child(self, metric: Any, labels: tuple[str, ...]) -> Any:
        child = self._children.get((metric, labels))
        if child is None:
            child = self._children[(metric, labels)] = metric.labels(*labels)
        return child

    def serving_map(self, sha256: str, routes: int) -> None:
        """Mark the map now serving; the one it replaced drops to 0 (in multiprocess mode a
        series cannot be removed, so 0 is how every mode says "not any more")."""
        labels = (sha256, str(routes))
        previous, self._map_labels = self._map_labels, labels
        if previous is not None and previous != labels:
            if multiprocess_dir():
                self.map_info.labels(*previous).set(0)
            else:
                self.map_info.remove(*previous)
        self.map_info.labels(*labels).set(1)

    def scrape_registry(self) -> CollectorRegistry:
        """What a scrape reads: every worker's values in multiprocess mode, else this registry."""
        self.publish()
        path = multiprocess_dir()
        if path is None:
            return self.registry
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path)  # type: ignore[no-untyped-call]
        return merged

    def collect(self) -> Iterable[Metric]:
        """The metric families as a scrape sees them (for the built-in dashboard)."""
        return self.scrape_registry().collect()

    def exposition(self) -> bytes:
        return generate_latest(self.scrape_registry())

    def worker_exit(self) -> None:
        """A worker stopping: its live gauges (in-flight, threads) stop counting."""
        path = multiprocess_dir()
        if path is not None:
            multiprocess.mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]
