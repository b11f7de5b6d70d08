"""Prometheus metrics of the gateway, on a registry the app factory injects."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# seconds: from a cached JSON answer to a slow report, the range web latency lives in
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.map_reloads = Counter(
            "gateway_map_reloads", "Map loads by result (ok, error)", ["result"], registry=self.registry
        )
        self.map_info = Info("gateway_map", "The map now serving", registry=self.registry)
        self.legacy_rejected = Counter(
            "gateway_legacy_rejected",
            "Legacy requests answered 503 because no worker thread became free",
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
            registry=self.registry,
        )
        self.legacy_threads = Gauge(
            "gateway_legacy_threads",
            "Legacy worker threads, by pool (primary, shadow)",
            ["pool"],
            registry=self.registry,
        )
        self.legacy_busy = Gauge(
            "gateway_legacy_threads_busy",
            "Legacy worker threads in use, by pool",
            ["pool"],
            registry=self.registry,
        )
        self.routes = Gauge(
            "gateway_routes",
            "Routes in the map serving now, by owner (migration progress)",
            ["owner"],
            registry=self.registry,
        )

    def answered(self, route_id: str, backend: str, role: str, status: int | None, latency_ms: float) -> None:
        status_class = f"{status // 100}xx" if status else "error"
        self.requests.labels(route_id, backend, role, status_class).inc()
        self.duration.labels(route_id, backend, role).observe(latency_ms / 1000)
