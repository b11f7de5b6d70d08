"""Status of each route: the map's owner and canary, the run-time state, and who serves it.

One view for `gateway rollout status` and GET /_gateway/api/rollout, so both say the same.
The serving rule is the dispatcher's: a run-time state beats the map; without one, a
legacy-owned route with a canary sends its share to the new side.
"""

from __future__ import annotations

from typing import Any

from gateway.map_loader import LoadedMap
from gateway.map_schema import Owner, RouteEntry
from gateway.parity.report import iso
from gateway.rollout.state import RouteState, RuntimeState


def serving(owner: Owner, canary_percent: float | None, state: RouteState | None) -> str:
    """`legacy`, `new`, or `canary N %` (N % of the route's requests go to the new side)."""
    if state is not None and state.state is RuntimeState.RAMPING:
        if owner is Owner.LEGACY and canary_percent is not None:
            canary_percent = state.figures.get("percent", canary_percent)  # how far the ramp got
    elif state is not None:
        return Owner.NEW.value if state.state is RuntimeState.PROMOTED else Owner.LEGACY.value
    if owner is Owner.LEGACY and canary_percent:
        return f"canary {canary_percent:g} %"
    return owner.value


def route_status(loaded: LoadedMap, entry: RouteEntry, state: RouteState | None) -> dict[str, Any]:
    owner = loaded.map.owner_of(entry)
    percent = entry.canary.percent if entry.canary is not None else None
    return {
        "route_id": entry.id,
        "in_map": True,
        "owner": owner.value,
        "canary_percent": percent,
        **_state_fields(state),
        "serving": serving(owner, percent, state),
    }


def _state_fields(state: RouteState | None) -> dict[str, Any]:
    if state is None:
        keys = ("state", "reason", "actor", "at", "time", "figures", "map_sha256")
        return dict.fromkeys(keys)
    return {
        "state": state.state.value,
        "reason": state.reason,
        "actor": state.actor,
        "at": state.at,
        "time": iso(state.at),
        "figures": state.figures,
        "map_sha256": state.map_sha256,
    }


def rollout_status(loaded: LoadedMap, states: dict[str, RouteState]) -> dict[str, Any]:
    """Every map route in map order, then states left for routes the map no longer has."""
    routes = [route_status(loaded, entry, states.get(entry.id)) for entry in loaded.map.routes]
    mapped = {entry.id for entry in loaded.map.routes}
    routes += [stale_status(route_id, states[route_id]) for route_id in sorted(states.keys() - mapped)]
    return {"map": {"file": loaded.file, "sha256": loaded.sha256}, "routes": routes}


def stale_status(route_id: str, state: RouteState | None) -> dict[str, Any]:
    """A state kept for a route the map no longer has: it affects nothing; `retry` removes it."""
    stale = {"route_id": route_id, "in_map": False, "owner": None, "canary_percent": None}
    return {**stale, **_state_fields(state), "serving": None}


def find_entry(loaded: LoadedMap, route_id: str) -> RouteEntry | None:
    return next((entry for entry in loaded.map.routes if entry.id == route_id), None)
