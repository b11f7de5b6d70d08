"""Everything one dashboard page shows, gathered in one pass: the map in service, the metrics,
the parity store and the rollout store. Store reads block: call these on a worker thread.

A store that cannot be read leaves its part of the page with the reason and the rest intact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.dashboard import figures as fig
from gateway.db import Database, DatabaseError
from gateway.map_loader import LoadedMap
from gateway.map_schema import Owner, RouteEntry
from gateway.metrics import GatewayMetrics
from gateway.parity.recorder import ParityRecorder
from gateway.parity.report import RouteSummary, summaries
from gateway.parity.store import StoreError
from gateway.parity.views import route_detail
from gateway.reloader import MapHolder, ReloadResult
from gateway.rollout.model import AuditEntry, RouteState
from gateway.rollout.state import RolloutStore
from gateway.rollout.store_status import find_entry, route_status

T = TypeVar("T")
AUDIT_SHOWN = 20
SAMPLES = 20  # newest stored samples on a route's page


class Unavailable(Exception):
    """A store could not be read; the message is what the page says instead of its data."""


@dataclass(frozen=True, slots=True)
class RouteRow:
    route_id: str
    methods: tuple[str, ...] | None  # None: every method
    path: str
    owner: str  # the map's
    serving: str  # legacy | new | canary N %, run-time state included (store_status.serving)
    state: str | None  # run-time state: promoted, aborted, rolled_back, ramping
    canary_percent: float | None
    shadow_sample: float  # 0 when the route is not shadowed
    figures: fig.RouteFigures
    parity: RouteSummary | None  # None when the parity store could not be read

    @property
    def mode(self) -> str:
        if not self.shadow_sample:
            return self.serving
        return f"{self.serving}, shadowed {self.shadow_sample * 100:g} %"


@dataclass(frozen=True, slots=True)
class Overview:
    map_file: str
    sha256: str
    last: ReloadResult | None
    native: int  # entries owned by `new`: the figure gateway_routes{owner="new"} has
    total: int
    rows: tuple[RouteRow, ...]
    unmapped: fig.RouteFigures
    parity_error: str | None
    rollout_error: str | None
    audit: tuple[AuditEntry, ...]


@dataclass(frozen=True, slots=True)
class RouteDetail:
    route_id: str
    row: RouteRow | None  # None: the route is in the store but no longer in the map
    detail: dict[str, Any] | None  # gateway.parity.views.route_detail; None when unreadable
    parity_error: str | None


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read(what: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except (DatabaseError, StoreError, OSError) as exc:
        raise Unavailable(f"{what} unavailable: {_reason(exc)}") from None


def _parity(recorder: ParityRecorder | None, view: Callable[[Database], T]) -> T | None:
    """A view of the parity store; None while nothing was ever written (reading creates no file)."""
    if recorder is None:
        raise Unavailable("parity store unavailable: this gateway has none configured")
    store = recorder.store

    def read() -> T | None:
        if not store.exists():
            return None
        store.ensure_schema()  # a store created by another process may lack a newer table
        return view(store.db)

    return _read("parity store", read)


def _row(
    loaded: LoadedMap, entry: RouteEntry, state: RouteState | None, figures: fig.RouteFigures,
    parity: RouteSummary | None,
) -> RouteRow:
    status = route_status(loaded, entry, state)
    rules = loaded.map.shadow_of(entry)
    shadowed = any(rules.shadows(method) for method in entry.methods or ("GET",))
    return RouteRow(
        route_id=entry.id,
        methods=entry.methods,
        path=entry.path,
        owner=status["owner"],
        serving=status["serving"],
        state=status["state"],
        canary_percent=status["canary_percent"],
        shadow_sample=rules.sample if shadowed else 0.0,
        figures=figures,
        parity=parity,
    )


def _states(rollout: RolloutStore | None) -> dict[str, RouteState]:
    return {} if rollout is None else _read("rollout store", rollout.states)


def overview(
    holder: MapHolder, metrics: GatewayMetrics, recorder: ParityRecorder | None, rollout: RolloutStore | None
) -> Overview:
    loaded = holder.loaded
    assert loaded is not None, "the gateway serves only once its map is loaded"
    ids = [entry.id for entry in loaded.map.routes]
    figures = fig.read(metrics.collect())
    parity_error = rollout_error = None
    audit: tuple[AuditEntry, ...] = ()
    try:
        parity = _parity(recorder, lambda db: summaries(db, ids)) or {}
    except Unavailable as exc:
        parity_error, parity = str(exc), None
    try:
        states = _states(rollout)
        if rollout is not None:
            audit = tuple(_read("rollout store", lambda: rollout.audit_entries(limit=AUDIT_SHOWN)))
    except Unavailable as exc:
        rollout_error, states, audit = str(exc), {}, ()
    rows = tuple(
        _row(
            loaded, entry, states.get(entry.id), figures.get(entry.id) or fig.empty(),
            None if parity is None else parity.get(entry.id) or RouteSummary(entry.id),
        )
        for entry in loaded.map.routes
    )
    return Overview(
        map_file=loaded.file,
        sha256=loaded.sha256,
        last=holder.last,
        native=sum(loaded.map.owner_of(entry) is Owner.NEW for entry in loaded.map.routes),
        total=len(loaded.map.routes),
        rows=rows,
        unmapped=figures.get("unmapped") or fig.empty(),
        parity_error=parity_error,
        rollout_error=rollout_error,
        audit=audit,
    )


def route(
    route_id: str, holder: MapHolder, metrics: GatewayMetrics, recorder: ParityRecorder | None,
    rollout: RolloutStore | None,
) -> RouteDetail | None:
    """One route's figures and stored samples; None when neither the map nor the store knows it."""
    loaded = holder.loaded
    assert loaded is not None, "the gateway serves only once its map is loaded"
    entry = find_entry(loaded, route_id)
    detail: dict[str, Any] | None = None
    parity_error = None
    try:
        detail = _parity(recorder, lambda db: route_detail(db, route_id, loaded, limit=SAMPLES))
    except Unavailable as exc:
        parity_error = str(exc)
    known = detail is not None and bool(detail["samples"] or detail["skipped"] or detail["noise_runs"])
    if entry is None and not known:
        return None
    row = None
    if entry is not None:
        try:
            state = _states(rollout).get(route_id)
        except Unavailable:
            state = None  # the overview says why; here the map's view is enough
        figures = fig.read(metrics.collect()).get(route_id) or fig.empty()
        row = _row(loaded, entry, state, figures, None)
    return RouteDetail(route_id, row, detail, parity_error)
