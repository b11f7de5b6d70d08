"""The parity data as JSON documents: one shape for `gateway parity --json` and the admin API."""

from __future__ import annotations

from typing import Any

from gateway.db import Database
from gateway.map_loader import LoadedMap
from gateway.parity.cutover import verdict
from gateway.parity.report import RouteSummary, iso, samples, summaries


def _with_cutover(summary: RouteSummary, loaded: LoadedMap | None) -> dict[str, Any]:
    out = summary.as_json()
    entry = next((e for e in loaded.map.routes if e.id == summary.route_id), None) if loaded else None
    if loaded is not None and entry is not None:
        out["owner"] = loaded.map.owner_of(entry).value
        out["cutover"] = verdict(summary, loaded.map.cutover_of(entry)).as_json()
    return out


def overview(db: Database, loaded: LoadedMap | None = None) -> dict[str, Any]:
    """Every route with data; with a map, each one's owner and cut-over verdict too."""
    return {"routes": [_with_cutover(s, loaded) for s in summaries(db).values()]}


def route_detail(
    db: Database, route_id: str, loaded: LoadedMap | None = None, *, limit: int = 20
) -> dict[str, Any]:
    """One route: its summary, every field verdict, every signature, the newest samples."""
    summary = summaries(db, [route_id])[route_id]
    stored = samples(db, route_id, limit=limit)
    out = _with_cutover(summary, loaded)
    out["fields"] = [f.as_json(summary.compared, summary.noise_runs) for f in summary.fields]
    out["signatures"] = [
        {
            "signature": g.signature,
            "fields": [list(f) for f in g.fields],
            "count": g.n,
            "verdict": "real" if g.real else "noise",
            "last_at": iso(g.last_at) if g.last_at else None,
        }
        for g in summary.signatures
    ]
    out["mismatch_samples"] = [s.as_json() for s in stored]
    return out
