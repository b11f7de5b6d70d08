"""The gateway's own endpoints: health (with the map's state), Prometheus metrics, and the
admin API under /_gateway/api/, which answers only `Authorization: Bearer <token>` with one of
the named admin tokens (GATEWAY_ADMIN_TOKEN is "admin"'s, GATEWAY_ADMIN_TOKENS names others)
and is off (404) when no token is set. Health stays open for probes; /metrics too, unless
GATEWAY_METRICS_TOKEN is set."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from gateway.bridge import LegacyBridge
from gateway.dashboard import dashboard_router
from gateway.db import Database, DatabaseError
from gateway.map_loader import LoadedMap
from gateway.map_schema import RouteEntry
from gateway.metrics import GatewayMetrics
from gateway.parity.recorder import ParityRecorder
from gateway.parity.store import StoreError
from gateway.parity.views import overview, route_detail
from gateway.reloader import MapHolder
from gateway.rollout.state import RolloutStore, RuntimeState
from gateway.rollout.store_status import find_entry, rollout_status, route_status, stale_status

T = TypeVar("T")


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def bearer_token(tokens: Mapping[str, SecretStr]) -> Any:
    """A dependency giving the caller's name: 404 while no token is configured, 401 unless the
    request carries one of them."""
    secrets = [(name, token.get_secret_value().encode()) for name, token in tokens.items()]
    secrets = [(name, secret) for name, secret in secrets if secret]

    async def check(request: Request) -> str:
        if not secrets:
            raise AdminError(404, "not_found", "the admin API is off: set GATEWAY_ADMIN_TOKEN to turn it on")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        offered = given.strip().encode()
        caller = None
        for name, secret in secrets:  # every one compared, so the time taken does not say which matched
            if hmac.compare_digest(offered, secret) and caller is None:
                caller = name
        if scheme.lower() != "bearer" or caller is None:
            message = "this needs the admin token: send 'Authorization: Bearer <GATEWAY_ADMIN_TOKEN>'"
            raise AdminError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})
        return caller

    return Depends(check)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def parity_api(recorder: ParityRecorder, holder: MapHolder) -> APIRouter:
    # plain `def`: FastAPI runs them on its thread pool, so store reads never block the loop
    router = APIRouter(prefix="/_gateway/api/parity")

    def read(view: Callable[[Database], dict[str, Any]]) -> dict[str, Any]:
        store = recorder.store
        try:
            store.ensure_schema()  # a gateway that has not flushed yet has an empty store
            return view(store.db)
        except DatabaseError as exc:
            reason = _first_line(exc)
            raise AdminError(503, "store_unavailable", f"the parity store cannot be read: {reason}") from None

    @router.get("")
    def parity_overview() -> dict[str, Any]:
        return read(lambda db: overview(db, holder.loaded))

    @router.get("/{route_id}")
    def parity_route(route_id: str, limit: int = Query(20, ge=1, le=500)) -> dict[str, Any]:
        loaded = holder.loaded
        detail = read(lambda db: route_detail(db, route_id, loaded, limit=limit))
        in_map = loaded is not None and any(e.id == route_id for e in loaded.map.routes)
        if not (detail["samples"] or detail["skipped"] or detail["noise_runs"] or in_map):
            raise AdminError(404, "not_found", f"no route {route_id!r} in the map nor in the parity store")
        return detail

    return router


class RolloutAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000, description="why, for the audit log")


def rollout_api(store: RolloutStore, holder: MapHolder, caller: Any) -> APIRouter:
    """Run-time rollout state per route, manual promote/abort/retry, and the audit log.

    `caller` is the bearer dependency: an action is recorded under the token's name. Plain
    `def` handlers: the store is read and written on FastAPI's thread pool, off the loop."""
    router = APIRouter(prefix="/_gateway/api", dependencies=[caller])

    def use(call: Callable[[], T]) -> T:
        try:
            return call()
        except (DatabaseError, StoreError) as exc:  # StoreError: its SQLite file deleted
            reason = _first_line(exc)
            message = f"the rollout store cannot be used: {reason}"
            raise AdminError(503, "store_unavailable", message) from None

    def current() -> LoadedMap:
        loaded = holder.loaded
        assert loaded is not None, "the gateway serves only once its map is loaded"
        return loaded

    def mapped(loaded: LoadedMap, route_id: str) -> RouteEntry:
        entry = find_entry(loaded, route_id)
        if entry is None:
            raise AdminError(404, "not_found", f"no route {route_id!r} in the map {loaded.file}")
        return entry

    def decide(route_id: str, to: RuntimeState, action: RolloutAction | None, actor: str) -> dict[str, Any]:
        loaded = current()
        entry = mapped(loaded, route_id)
        why, sha = (action.reason if action is not None else ""), loaded.sha256
        new = use(lambda: store.set_state(route_id, to, reason=why, figures={}, actor=actor, map_sha256=sha))
        return route_status(loaded, entry, new)

    @router.get("/rollout")
    def rollout_overview() -> dict[str, Any]:
        return rollout_status(current(), use(store.states))

    @router.get("/rollout/{route_id}")
    def rollout_route(route_id: str) -> dict[str, Any]:
        loaded = current()
        entry = find_entry(loaded, route_id)
        state = use(lambda: store.state(route_id))
        if entry is None and state is None:
            raise AdminError(404, "not_found", f"no route {route_id!r} in the map {loaded.file}")
        status = route_status(loaded, entry, state) if entry is not None else stale_status(route_id, state)
        audit = use(lambda: store.audit_entries(route_id=route_id, limit=20))
        return {**status, "audit": [e.as_json() for e in audit]}

    @router.post("/rollout/{route_id}/promote")
    def promote(route_id: str, action: RolloutAction | None = None, actor: str = caller) -> dict[str, Any]:
        return decide(route_id, RuntimeState.PROMOTED, action, actor)

    @router.post("/rollout/{route_id}/abort")
    def abort(route_id: str, action: RolloutAction | None = None, actor: str = caller) -> dict[str, Any]:
        return decide(route_id, RuntimeState.ABORTED, action, actor)

    @router.post("/rollout/{route_id}/retry")
    def retry(route_id: str, action: RolloutAction | None = None, actor: str = caller) -> dict[str, Any]:
        loaded = current()
        entry = find_entry(loaded, route_id)
        if entry is None and use(lambda: store.state(route_id)) is None:
            raise AdminError(404, "not_found", f"no route {route_id!r} in the map {loaded.file}")
        reason = action.reason if action is not None else ""
        if not use(lambda: store.clear(route_id, actor=actor, reason=reason)):
            serving = route_status(loaded, entry, None)["serving"] if entry is not None else "nothing"
            message = f"route {route_id!r} has no run-time state to retry: it follows the map ({serving})"
            raise AdminError(409, "no_runtime_state", message)
        return route_status(loaded, entry, None) if entry is not None else stale_status(route_id, None)

    @router.get("/audit")
    def audit(
        route: str | None = Query(None, max_length=128),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        entries = use(lambda: store.audit_entries(route_id=route, limit=limit))
        return {"entries": [e.as_json() for e in entries]}

    return router


def create_admin_app(
    *,
    holder: MapHolder,
    metrics: GatewayMetrics,
    legacy: object,
    recorder: ParityRecorder | None = None,
    rollout: RolloutStore | None = None,
    admin_tokens: Mapping[str, SecretStr] | None = None,
    metrics_token: SecretStr | None = None,
) -> FastAPI:
    app = FastAPI(
        title="migration gateway admin", docs_url=None, redoc_url=None, openapi_url="/_gateway/openapi.json"
    )

    @app.exception_handler(AdminError)
    async def admin_error(request: Request, exc: AdminError) -> JSONResponse:
        body = {"error": {"code": exc.code, "message": exc.message}}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        wrong = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        body = {"error": {"code": "invalid_request", "message": wrong}}
        return JSONResponse(body, status_code=422)

    caller = bearer_token(admin_tokens or {})
    if recorder is not None:
        app.include_router(parity_api(recorder, holder), dependencies=[caller])
    if rollout is not None:
        app.include_router(rollout_api(rollout, holder, caller))
    app.include_router(
        dashboard_router(holder=holder, metrics=metrics, recorder=recorder, rollout=rollout,
                         admin_tokens=admin_tokens or {})
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

    scrape_secret = metrics_token.get_secret_value().encode() if metrics_token is not None else b""

    @app.get("/metrics")
    def prometheus(request: Request) -> Response:
        # plain `def`: in multiprocess mode a scrape reads every worker's files
        if scrape_secret:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), scrape_secret):
                message = "/metrics needs a token: send 'Authorization: Bearer <GATEWAY_METRICS_TOKEN>'"
                raise AdminError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app
