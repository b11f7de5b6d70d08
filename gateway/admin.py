"""The gateway's own endpoints: health (with the map's state) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.bridge import LegacyBridge
from gateway.metrics import GatewayMetrics
from gateway.reloader import MapHolder


def create_admin_app(*, holder: MapHolder, metrics: GatewayMetrics, legacy: object) -> FastAPI:
    app = FastAPI(
        title="migration gateway admin", docs_url=None, redoc_url=None, openapi_url="/_gateway/openapi.json"
    )

    @app.get("/_gateway/health")
    async def health() -> dict[str, Any]:
        loaded, last = holder.loaded, holder.last
        body: dict[str, Any] = {
            "status": "ok",
            "map": {
                "path": str(holder.path),
                "sha256": loaded.sha256 if loaded else None,
                "routes": len(loaded.map.routes) if loaded else 0,
                "last_reload": None
                if last is None
                else {"ok": last.ok, "at": last.at, "sha256": last.sha256, "error": last.error},
            },
        }
        if isinstance(legacy, LegacyBridge):
            body["legacy"] = {
                "mode": "in-process",
                "threads": legacy.threads,
                "busy": legacy.busy,
                "rejected": legacy.rejected,
            }
        else:
            body["legacy"] = {"mode": "remote"}
        return body

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
