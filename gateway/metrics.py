"""Prometheus metrics of the gateway, on a registry the app factory injects."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Info


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
