"""Run-time rollout state and the audit log of who serves what, shared by every gateway.

The map is the desired state that people edit; what the gateway decides at run time (a
guard's rollback, a person's abort or promotion) is a row here, in the parity store's
database, which every worker polls (`states()`). Each write and its audit entry are one
transaction, and every write several workers may attempt at once (the same breach, the
same map reload) is an insert-if-absent, so exactly one of them is recorded.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

from gateway.db import Connection, Database, Row, StoreError
from gateway.map_loader import LoadedMap
from gateway.parity.store import dumps
from gateway.rollout import store_schema as t
from gateway.rollout.model import AUDIT_KIND_OF, SUMMARY_OF, AuditEntry, AuditKind, RouteState, RuntimeState
from gateway.rollout.store_changes import (
    change_summary,
    details_json,
    diff_snapshots,
    map_changes,
    serving_snapshot,
    snapshot_json,
)

__all__ = ["AuditEntry", "AuditKind", "RolloutStore", "RouteState", "RuntimeState", "map_changes"]


class RolloutStore:
    """Synchronous and thread-safe: the gateway calls it from worker threads (asyncio.to_thread)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.db = Database(url)
        self._schema_lock = threading.Lock()
        self._created = False
        self._seen = False  # the SQLite file existed once: its absence now is an outage

    @property
    def where(self) -> str:
        """The store's URL without its password, for messages."""
        return self.db.where

    def exists(self) -> bool:
        """False only for a SQLite file not created yet: nothing was ever recorded there."""
        return self.db.missing_file() is None

    def ensure_schema(self) -> None:
        if self._created:
            return
        with self._schema_lock:
            if not self._created:
                self.db.create(t.TABLES, lock_key=t.SCHEMA_LOCK)
                self._created = True

    # -- reads -------------------------------------------------------------------------------

    def states(self) -> dict[str, RouteState]:
        """Every route with a run-time state; polled each second by every worker, so one query.

        Raises when the store cannot be read, so that callers keep the states they know: a
        SQLite file deleted under a running gateway is such a failure, not "no states" (that
        would quietly undo every rollback). After a failure the next poll reconnects."""
        if not self.exists():  # reading creates nothing
            if self._seen:
                raise StoreError(f"the store {self.where} has gone: its file was deleted")
            return {}
        self._seen = True
        try:
            self.ensure_schema()
            with self.db.connect() as conn:
                rows = conn.execute("SELECT * FROM rollout_state")
        except Exception:
            self._created = False  # a database made anew lacks the tables: check them again
            self.db.dispose()
            raise
        return {row["route_id"]: _route_state(row) for row in rows}

    def state(self, route_id: str) -> RouteState | None:
        if not self.exists():
            return None
        self.ensure_schema()
        with self.db.connect() as conn:
            return _get(conn, route_id)

    def audit_entries(self, *, route_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Newest first."""
        if not self.exists():
            return []
        self.ensure_schema()
        where = "" if route_id is None else " WHERE route_id = :route_id"
        query = f"SELECT * FROM rollout_audit{where} ORDER BY id DESC LIMIT :limit"
        with self.db.connect() as conn:
            rows = conn.execute(query, {"route_id": route_id, "limit": limit})
        return [
            AuditEntry(
                id=row["id"],
                at=row["at"],
                kind=AuditKind(row["kind"]),
                route_id=row["route_id"],
                actor=row["actor"],
                summary=row["summary"],
                details=json.loads(row["details"]),
            )
            for row in rows
        ]

    # -- writes ------------------------------------------------------------------------------

    def set_state(
        self,
        route_id: str,
        state: RuntimeState,
        *,
        reason: str,
        figures: Mapping[str, Any],
        actor: str,
        map_sha256: str | None = None,
    ) -> RouteState:
        """Record a decision and its audit entry. A rollback never replaces a state already
        there (a second worker's rollback of the same breach, or a person's decision): it
        returns the state that holds, and writes no audit entry."""
        state = RuntimeState(state)
        new = RouteState(route_id, state, reason, _finite(figures), actor, time.time(), map_sha256)
        row = _state_row(new)
        self.ensure_schema()
        with self.db.begin() as conn:
            previous = _get(conn, route_id)
            if state is RuntimeState.ROLLED_BACK:
                # RETURNING tells whether the row was written. A ramp in progress is replaced;
                # any other decision stands.
                claim = f"{_UPSERT_STATE} WHERE rollout_state.state = :ramping RETURNING route_id"
                if not conn.execute(claim, {**row, "ramping": RuntimeState.RAMPING.value}):
                    existing = _get(conn, route_id)
                    assert existing is not None, "a conflicting row is there: nothing deletes it but a retry"
                    return existing
            else:
                conn.execute(_UPSERT_STATE, row)
            did, effect = SUMMARY_OF[state]
            summary = f"{route_id} {did} by {actor}{effect}"
            if reason:
                summary += f" ({reason})" if effect else f": {reason}"
            details = {
                **new.as_json(),
                "previous": previous.as_json() if previous is not None else None,
            }
            _audit(conn, AUDIT_KIND_OF[state], route_id, actor, summary, details, at=new.at)
        return new

    def ramp(
        self,
        route_id: str,
        *,
        since: float | None,
        to: RuntimeState,
        reason: str,
        figures: Mapping[str, Any],
        actor: str,
        map_sha256: str | None = None,
    ) -> RouteState | None:
        """Move a canary ramp on: start it (`since` None: only if the route has no state), or
        take the next step from the step that began at `since` (compare-and-set: of several
        workers deciding the same step at once, one wins and the others get None)."""
        new = RouteState(route_id, RuntimeState(to), reason, _finite(figures), actor, time.time(), map_sha256)
        row = _state_row(new)
        self.ensure_schema()
        with self.db.begin() as conn:
            previous = _get(conn, route_id)
            if since is None:
                stmt = f"{_INSERT_STATE} ON CONFLICT (route_id) DO NOTHING RETURNING route_id"
                params = row
            else:
                stmt = (
                    f"UPDATE rollout_state SET {_SET_STATE} WHERE route_id = :route_id "
                    "AND state = :ramping AND at = :since RETURNING route_id"
                )
                params = {**row, "ramping": RuntimeState.RAMPING.value, "since": since}
            if not conn.execute(stmt, params):
                return None
            did = (
                "promoted: the new side serves every request"
                if to is RuntimeState.PROMOTED
                else (f"canary at {figures.get('percent')} %")
            )
            summary = f"{route_id} {did} ({reason})" if reason else f"{route_id} {did}"
            details = {**new.as_json(), "previous": previous.as_json() if previous is not None else None}
            kind = AuditKind.PROMOTE if to is RuntimeState.PROMOTED else AuditKind.RAMP
            _audit(conn, kind, route_id, actor, summary, details, at=new.at)
        return new

    def clear(self, route_id: str, *, actor: str, reason: str = "") -> bool:
        """Retry: drop the route's run-time state so it follows the map again. False if it had none."""
        if not self.exists():
            return False
        self.ensure_schema()
        with self.db.begin() as conn:
            delete = "DELETE FROM rollout_state WHERE route_id = :route_id RETURNING *"
            deleted = conn.execute(delete, {"route_id": route_id})
            if not deleted:  # none, or another retry took it first: that one is on record
                return False
            was = _route_state(deleted[0])
            summary = f"{route_id} retried by {actor}: it follows the map again (was {was.state.value}"
            summary += f": {was.reason})" if was.reason else ")"
            if reason:
                summary += f"; {reason}"
            details = {"reason": reason, "previous": was.as_json()}
            _audit(conn, AuditKind.RETRY, route_id, actor, summary, details, at=time.time())
        return True

    def record_map_change(self, old: LoadedMap | None, new: LoadedMap, *, actor: str = "reload") -> None:
        """One `map_reload` entry per change of the map, however many workers report it.

        Entries form a chain: each names the map it replaces, and the workers reporting the
        same step agree on its key (the previous entry's id and the new hash), so the first
        insert wins and the rest do nothing. A map that goes A -> B -> A -> B is three
        entries, where a key of the two hashes alone would drop the third. `old` None is a
        start: recorded only when the map differs from the last one on record, and not at
        all on a SQLite store that does not exist yet (an idle gateway creates no file).
        """
        if old is None and not self.exists():
            return
        self.ensure_schema()
        with self.db.begin() as conn:
            found = conn.execute(
                "SELECT id, dedupe_key FROM rollout_audit WHERE kind = :kind ORDER BY id DESC LIMIT 1",
                {"kind": AuditKind.MAP_RELOAD.value},
            )
            last = found[0] if found else None
            # the key names the hash the last entry recorded: its details (a 10,000-route
            # snapshot is ~1.4 MB) are read only when a start must diff against them
            last_sha = _recorded_sha(last["dedupe_key"]) if last is not None else None
            last_details: dict[str, Any] | None = None
            if last is not None and last_sha is None:
                last_details = _details(conn, last["id"])
                last_sha = last_details.get("new_sha256")
            if last_sha == new.sha256:
                return  # another worker or instance recorded it, or a restart on the map on record
            if last is not None and old is None and last_details is None:
                last_details = _details(conn, last["id"])
            delta = new.delta
            old_sha: str | None
            if old is not None and delta is not None and delta.base_sha256 == old.sha256:
                # what the map parser process found: the serving process diffs nothing itself
                old_sha, changes, snapshot = old.sha256, delta.changes, delta.snapshot_json
            else:
                if old is not None:
                    old_sha, base = old.sha256, serving_snapshot(old)
                else:
                    old_sha = last_sha
                    base = (last_details or {}).get("snapshot") or serving_snapshot(None)
                now = serving_snapshot(new)
                changes = diff_snapshots(base, now)
                snapshot = snapshot_json(now)
            head = {"file": new.file, "old_sha256": old_sha, "new_sha256": new.sha256, "changes": changes}
            _audit(
                conn,
                AuditKind.MAP_RELOAD,
                None,
                actor,
                change_summary(old_sha, new, changes),
                details_json(head, snapshot),
                at=time.time(),
                dedupe_key=f"map:{last['id'] if last is not None else 0}:{new.sha256}",
            )

    def dispose(self) -> None:
        self.db.dispose()


_SET_STATE = ", ".join(f"{c} = :{c}" for c in t.STATE_COLUMNS if c != "route_id")
_INSERT_STATE = t.insert(t.state, t.STATE_COLUMNS)
_UPSERT_STATE = f"{_INSERT_STATE} ON CONFLICT (route_id) DO UPDATE SET {_SET_STATE}"


def _finite(figures: Mapping[str, Any]) -> dict[str, Any]:
    # JSON has no infinity or NaN (a p99 ratio over a zero legacy p99): such a figure is None
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in figures.items()}


def _state_row(s: RouteState) -> dict[str, Any]:
    return {
        "route_id": s.route_id,
        "state": s.state.value,
        "reason": s.reason,
        "figures": dumps(s.figures),
        "actor": s.actor,
        "at": s.at,
        "map_sha256": s.map_sha256,
    }


def _route_state(row: Row) -> RouteState:
    return RouteState(
        route_id=row["route_id"],
        state=RuntimeState(row["state"]),
        reason=row["reason"],
        figures=json.loads(row["figures"]),
        actor=row["actor"],
        at=row["at"],
        map_sha256=row["map_sha256"],
    )


def _get(conn: Connection, route_id: str) -> RouteState | None:
    rows = conn.execute("SELECT * FROM rollout_state WHERE route_id = :route_id", {"route_id": route_id})
    return _route_state(rows[0]) if rows else None


def _recorded_sha(key: str | None) -> str | None:
    """The new hash a map_reload entry's dedupe key names (map:<previous id>:<sha256>)."""
    parts = key.split(":") if key else []
    return parts[2] if len(parts) == 3 and parts[0] == "map" else None


def _details(conn: Connection, entry_id: int) -> dict[str, Any]:
    found = conn.execute("SELECT details FROM rollout_audit WHERE id = :id", {"id": entry_id})
    details: dict[str, Any] = json.loads(found[0]["details"])
    return details


def _audit(
    conn: Connection,
    kind: AuditKind,
    route_id: str | None,
    actor: str,
    summary: str,
    details: dict[str, Any] | str,  # str: encoded already
    *,
    at: float,
    dedupe_key: str | None = None,
) -> None:
    row = {
        "at": at,
        "kind": kind.value,
        "route_id": route_id,
        "actor": actor,
        "summary": summary,
        "details": details if isinstance(details, str) else dumps(details),
        "dedupe_key": dedupe_key,
    }
    stmt = t.insert(t.audit, t.AUDIT_COLUMNS)
    if dedupe_key is not None:
        stmt += " ON CONFLICT (dedupe_key) DO NOTHING"
    conn.execute(stmt, row)
