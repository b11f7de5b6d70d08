"""The gateway's own endpoints: health (with the map's state), Prometheus metrics, and the
admin API under /_gateway/api/, which answers only `Authorization: Bearer <GATEWAY_ADMIN_TOKEN>`
and is off (404) when no token is set. Health and metrics stay open, for probes and scrapers."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr

from gateway.bridge import LegacyBridge
from gateway.metrics import GatewayMetrics
from gateway.parity.recorder import ParityRecorder
from gateway.parity.views import overview, route_detail
from gateway.reloader import MapHolder


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def bearer_token(token: SecretStr | None) -> Any:
    """A dependency: 404 while no token is configured, 401 unless the request carries it."""
    secret = token.get_secret_value().encode() if token is not None else b""

    async def check(request: Request) -> None:
        if not secret:
            raise AdminError(404, "not_found", "the admin API is off: set GATEWAY_ADMIN_TOKEN to turn it on")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), secret):
            message = "this needs the admin token: send 'Authorization: Bearer <GATEWAY_ADMIN_TOKEN>'"
            raise AdminError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})

    return Depends(check)


def parity_api(recorder: ParityRecorder, holder: MapHolder) -> APIRouter:
    # plain `def`: FastAPI runs them on its thread pool, so store reads never block the loop
    router = APIRouter(prefix="/_gateway/api/parity")

    def read(view: Callable[[sa.Engine], dict[str, Any]]) -> dict[str, Any]:
        store = recorder.store
        try:
            store.ensure_schema()  # a gateway that has not flushed yet has an empty store
            return view(store.engine)
        except sa.exc.SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise AdminError(503, "store_unavailable", f"the parity store cannot be read: {reason}") from None

    @router.get("")
    def parity_overview() -> dict[str, Any]:
        return read(lambda engine: overview(engine, holder.loaded))

    @router.get("/{route_id}")
    def parity_route(route_id: str, limit: int = Query(20, ge=1, le=500)) -> dict[str, Any]:
        loaded = holder.loaded
        detail = read(lambda engine: route_detail(engine, route_id, loaded, limit=limit))
        in_map = loaded is not None and any(e.id == route_id for e in loaded.map.routes)
        if not (detail["samples"] or detail["skipped"] or detail["noise_runs"] or in_map):
            raise AdminError(404, "not_found", f"no route {route_id!r} in the map nor in the parity store")
        return detail

    return router


def create_admin_app(
    *,
    holder: MapHolder,
    metrics: GatewayMetrics,
    legacy: object,
    recorder: ParityRecorder | None = None,
    admin_token: SecretStr | None = None,
) -> FastAPI:
    app = FastAPI(
        title="migration gateway admin", docs_url=None, redoc_url=None, openapi_url="/_gateway/openapi.json"
    )

    @app.exception_handler(AdminError)
    async def admin_error(request: Request, exc: AdminError) -> JSONResponse:
        body = {"error": {"code": exc.code, "message": exc.message}}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    if recorder is not None:
        app.include_router(parity_api(recorder, holder), dependencies=[bearer_token(admin_token)])

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
