"""What a map change changed about who serves what: owners, canary percentages, routes.

Pure functions. A map is reduced to a small snapshot (`serving_snapshot`) that the audit
entry keeps, so a gateway starting on a new map can diff it against the last map on record
without having that map's file.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.map_loader import LoadedMap
from gateway.map_schema import Owner, RouteEntry

# {"default_owner": str, "routes": {route_id: {"owner": str, "canary_percent": float | None}}}
Snapshot = dict[str, Any]
MAX_LISTED = 8  # changes named in an audit summary; the details list them all


def serving_snapshot(loaded: LoadedMap | None) -> Snapshot:
    """Treat it as read-only: the snapshot of a map is computed once and shared (a reload diffs
    the map before it against the new one, and ~10 ms of GIL per 10,000 routes was spent
    building each of the two again)."""
    if loaded is None:
        return {"default_owner": None, "routes": {}}
    for seen, snapshot in _recent:
        if seen is loaded:
            return snapshot
    mmap = loaded.map
    default = mmap.defaults.owner
    routes = _edited(loaded, default) if _recent else None
    if routes is None:
        routes = {entry.id: _serving(entry, default) for entry in mmap.routes}
    snapshot = {"default_owner": default.value, "routes": routes}
    _recent[:] = [*_recent[-1:], (loaded, snapshot)]
    return snapshot


def _serving(entry: RouteEntry, default: Owner) -> dict[str, Any]:
    return {
        "owner": _VALUE[entry.owner or default],
        "canary_percent": entry.canary.percent if entry.canary is not None else None,
    }


def _edited(loaded: LoadedMap, default: Owner) -> dict[str, Any] | None:
    """The last snapshot with the routes whose entry object changed redone, when the map keeps
    its routes (ids, order, defaults) and reused the entry objects of the rest (the reloader
    does: gateway.map_worker); None when it cannot tell."""
    before, snapshot = _recent[-1]
    if before.map.defaults.owner is not default or len(before.map.routes) != len(loaded.map.routes):
        return None
    routes: dict[str, Any] = dict(snapshot["routes"])
    for entry, was in zip(loaded.map.routes, before.map.routes, strict=True):
        if entry is not was:
            if entry.id != was.id:
                return None
            routes[entry.id] = _serving(entry, default)
    return routes


_VALUE = {owner: owner.value for owner in Owner}  # Enum.value is a slow property, 10,000 times
_recent: list[tuple[LoadedMap, Snapshot]] = []  # the maps serving now and just before


def diff_snapshots(old: Snapshot, new: Snapshot) -> list[dict[str, Any]]:
    """Changes from `old` to `new`, by route id; an unmapped request's owner is route_id None."""
    changes: list[dict[str, Any]] = []
    was_default, now_default = old.get("default_owner"), new["default_owner"]
    if was_default is not None and was_default != now_default:
        changes.append({"route_id": None, "change": "default_owner", "from": was_default, "to": now_default})
    before: dict[str, dict[str, Any]] = old.get("routes", {})
    after: dict[str, dict[str, Any]] = new["routes"]
    # most reloads change a few of thousands of routes: find those in C, then name them in order
    differ = {route_id for route_id, now in after.items() if before.get(route_id) != now}
    differ.update(route_id for route_id in before if route_id not in after)
    for route_id in sorted(differ):
        was, now = before.get(route_id), after.get(route_id)
        if was is None and now is not None:
            changes.append({"route_id": route_id, "change": "added", **now})
        elif now is None and was is not None:
            changes.append({"route_id": route_id, "change": "removed", **was})
        elif was is not None and now is not None:
            for field in ("owner", "canary_percent"):
                if was.get(field) != now[field]:
                    step = {"from": was.get(field), "to": now[field]}
                    changes.append({"route_id": route_id, "change": field, **step})
    return changes


def map_changes(old: LoadedMap | None, new: LoadedMap) -> list[dict[str, Any]]:
    """Routes added, removed, or whose owner or canary percent changed between two maps."""
    return diff_snapshots(serving_snapshot(old), serving_snapshot(new))


def _percent(value: float | None) -> str:
    return "no canary" if value is None else f"canary {value:g} %"


def describe(change: dict[str, Any]) -> str:
    route, kind = change["route_id"], change["change"]
    if kind == "default_owner":
        return f"unmapped requests {change['from']} -> {change['to']}"
    if kind == "added":
        canary = f", {_percent(change['canary_percent'])}" if change["canary_percent"] is not None else ""
        return f"added {route} ({change['owner']}{canary})"
    if kind == "removed":
        return f"removed {route}"
    if kind == "owner":
        return f"{route} owner {change['from']} -> {change['to']}"
    return f"{route} {_percent(change['from'])} -> {_percent(change['to'])}"


def change_summary(old_sha: str | None, new: LoadedMap, changes: list[dict[str, Any]]) -> str:
    head = (
        f"map {new.file} loaded ({new.short_hash})"
        if old_sha is None
        else f"map {new.file} changed {old_sha[:12]} -> {new.short_hash}"
    )
    if not changes:
        return f"{head}: nobody serves anything differently"
    listed = "; ".join(describe(c) for c in changes[:MAX_LISTED])
    more = f"; and {len(changes) - MAX_LISTED} more" if len(changes) > MAX_LISTED else ""
    return f"{head}: {listed}{more}"


def encode(value: Any) -> str:
    """The audit log's JSON (gateway.parity.store.dumps), here so the map parser process can
    encode a snapshot without importing the stores."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def snapshot_json(snapshot: Snapshot, per_slice: int = 500) -> str:
    """encode(snapshot), the text exactly, its routes encoded a slice at a time: json.dumps of
    10,000 routes is ~12 ms in one C call, which a serving loop on another thread waits out."""
    items = list(snapshot["routes"].items())
    parts = [encode(dict(items[i : i + per_slice]))[1:-1] for i in range(0, len(items), per_slice)]
    return f'{{"default_owner":{encode(snapshot["default_owner"])},"routes":{{{",".join(parts)}}}}}'


def details_json(head: dict[str, Any], snapshot: str) -> str:
    """encode({**head, "snapshot": <the snapshot that `snapshot` encodes>}), the text exactly."""
    text = encode(head)
    return text[:-1] + ("," if len(text) > 2 else "") + f'"snapshot":{snapshot}}}'
