"""The write side of the parity store: additive upserts, capped samples, bounded retention.

Every counter is written as `INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n`, so any
number of recorders (workers, instances) can share one store. Rows are written in key order,
so two writers touching the same keys lock them in the same order and never deadlock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from gateway.parity import schema as t

_ROUTE_COUNTS = ("compared", "exact_matches", "candidate_errors", "noise_runs")
_SCHEMA_LOCK = int.from_bytes(b"parity", "big")  # any constant: the advisory lock of schema creation
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}


class StoreError(Exception):
    """The store URL names a database the parity store cannot use."""


def create_engine(url: str) -> sa.Engine:
    """An engine for a store URL: `sqlite:///file.db` or `postgresql://...` (psycopg 3)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"invalid store URL {url!r}: {exc}") from None
    parsed = parsed.set(drivername=_DRIVERS.get(parsed.drivername, parsed.drivername))
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        # several processes may share the file: wait for a lock rather than fail at once
        return sa.create_engine(parsed, connect_args={"timeout": 15})
    if backend == "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True, pool_size=2, connect_args={"connect_timeout": 3})
    raise StoreError(f"the parity store runs on SQLite or PostgreSQL, not {backend!r} ({url})")


def missing_file(engine: sa.Engine) -> str | None:
    """The path of the engine's SQLite file when it does not exist; None otherwise."""
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if os.path.exists(database) else database


@dataclass(slots=True)
class RouteCounts:
    compared: int = 0
    exact_matches: int = 0
    candidate_errors: int = 0
    noise_runs: int = 0
    last_at: float = 0.0


@dataclass(slots=True)
class Batch:
    """Increments gathered in memory between two flushes; merged back when a flush fails."""

    routes: dict[str, RouteCounts] = field(default_factory=dict)
    skips: dict[tuple[str, str], int] = field(default_factory=dict)
    signatures: dict[tuple[str, str], tuple[str, int, float]] = field(default_factory=dict)  # fields, n, at
    fields: dict[tuple[str, str, str], tuple[int, int]] = field(default_factory=dict)  # candidate, noise
    latency: dict[tuple[str, str, int], int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)  # rows of parity_samples, redacted

    @property
    def keys(self) -> int:
        counters = (self.routes, self.skips, self.signatures, self.fields, self.latency)
        return sum(len(c) for c in counters)

    def __bool__(self) -> bool:
        return bool(self.keys or self.samples)

    def merge(self, newer: Batch) -> None:
        """Add `newer` into this batch (counters add, samples append)."""
        for route_id, c in newer.routes.items():
            mine = self.routes.setdefault(route_id, RouteCounts())
            mine.compared += c.compared
            mine.exact_matches += c.exact_matches
            mine.candidate_errors += c.candidate_errors
            mine.noise_runs += c.noise_runs
            mine.last_at = max(mine.last_at, c.last_at)
        for key, n in newer.skips.items():
            self.skips[key] = self.skips.get(key, 0) + n
        for key, (fields, n, at) in newer.signatures.items():
            _, old, old_at = self.signatures.get(key, (fields, 0, 0.0))
            self.signatures[key] = (fields, old + n, max(at, old_at))
        for fkey, (cand, noise) in newer.fields.items():
            old_c, old_n = self.fields.get(fkey, (0, 0))
            self.fields[fkey] = (old_c + cand, old_n + noise)
        for lkey, n in newer.latency.items():
            self.latency[lkey] = self.latency.get(lkey, 0) + n
        self.samples.extend(newer.samples)


@dataclass(frozen=True, slots=True)
class Retention:
    max_samples: int
    oldest: float  # epoch seconds: older samples are deleted


class ParityStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self._created = False

    def exists(self) -> bool:
        """False only for a SQLite file not created yet (nothing was ever written there)."""
        return missing_file(self.engine) is None

    def ensure_schema(self) -> None:
        """Create what is missing; safe when several writers start at once."""
        if self._created:
            return
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # concurrent CREATE ... IF NOT EXISTS can still collide in the catalog: one at a time
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            for table in t.metadata.sorted_tables:
                conn.execute(CreateTable(table, if_not_exists=True))
                for index in sorted(table.indexes, key=lambda i: str(i.name)):
                    conn.execute(CreateIndex(index, if_not_exists=True))
        self._created = True

    def write(self, batch: Batch, *, per_signature: int, retention: Retention | None = None) -> None:
        """One transaction: add the counters, insert the samples, keep the caps."""
        try:
            self._write(batch, per_signature, retention)
        except Exception:
            self.reconnect()
            raise

    def reconnect(self) -> None:
        """After a failure the database may have been replaced (a SQLite file deleted and made
        anew, a server restored): the next use opens new connections and checks the schema
        again, instead of failing for ever on connections to what is gone."""
        self._created = False
        self.engine.dispose()

    def _write(self, batch: Batch, per_signature: int, retention: Retention | None) -> None:
        self.ensure_schema()
        counters = [
            (t.routes, [{"route_id": r, **_counts(c)} for r, c in batch.routes.items()], _ROUTE_COUNTS),
            (t.skips, [{"route_id": r, "reason": y, "n": n} for (r, y), n in batch.skips.items()], ("n",)),
            (
                t.signatures,
                [
                    {"route_id": r, "signature": s, "fields": f, "n": n, "last_at": at}
                    for (r, s), (f, n, at) in batch.signatures.items()
                ],
                ("n",),
            ),
            (
                t.fields,
                [
                    {"route_id": r, "path": p, "kind": k, "candidate_n": c, "noise_n": n}
                    for (r, p, k), (c, n) in batch.fields.items()
                ],
                ("candidate_n", "noise_n"),
            ),
            (
                t.latency,
                [{"route_id": r, "side": s, "bucket": b, "n": n} for (r, s, b), n in batch.latency.items()],
                ("n",),
            ),
        ]
        with self.engine.begin() as conn:
            for table, rows, add in counters:
                _upsert(conn, table, rows, add=add)
            if batch.samples:
                conn.execute(t.samples.insert(), batch.samples)
                touched = sorted({(s["route_id"], s["signature"]) for s in batch.samples})
                _trim(conn, touched, per_signature)
            if retention is not None:
                _prune(conn, retention)

    def sample_counts(self) -> dict[tuple[str, str], int]:
        s = t.samples.c
        query = sa.select(s.route_id, s.signature, sa.func.count()).group_by(s.route_id, s.signature)
        try:
            self.ensure_schema()
            with self.engine.connect() as conn:
                return {(r, sig): int(n) for r, sig, n in conn.execute(query)}
        except Exception:
            self.reconnect()
            raise

    def dispose(self) -> None:
        self.engine.dispose()


def _counts(c: RouteCounts) -> dict[str, Any]:
    return {
        "compared": c.compared,
        "exact_matches": c.exact_matches,
        "candidate_errors": c.candidate_errors,
        "noise_runs": c.noise_runs,
        "last_at": c.last_at,
    }


def _upsert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], *, add: Sequence[str]) -> None:
    if not rows:
        return
    name = conn.dialect.name
    if name == "postgresql":
        stmt: Any = postgresql.insert(table)
    elif name == "sqlite":
        stmt = sqlite.insert(table)
    else:  # create_engine refuses other databases; an engine given from outside might not
        raise StoreError(f"the parity store cannot write to {name!r}")
    updates: dict[str, Any] = {c: table.c[c] + stmt.excluded[c] for c in add}
    if "last_at" in table.c:  # the newest time wins, whichever writer comes last
        newer = stmt.excluded.last_at > table.c.last_at
        updates["last_at"] = sa.case((newer, stmt.excluded.last_at), else_=table.c.last_at)
    keys = [c.name for c in table.primary_key.columns]
    rows = sorted(rows, key=lambda row: tuple(row[k] for k in keys))
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), rows)


def _trim(conn: sa.Connection, keys: Iterable[tuple[str, str]], keep: int) -> None:
    """At most `keep` samples per (route, signature): the first ones stay, later extras go."""
    s = t.samples.c
    for route_id, signature in keys:
        extra = (
            sa.select(s.id)
            .where(s.route_id == route_id, s.signature == signature)
            .order_by(s.id)
            .offset(keep)
        )
        conn.execute(sa.delete(t.samples).where(s.id.in_(extra.scalar_subquery())))


def _prune(conn: sa.Connection, retention: Retention) -> None:
    s = t.samples.c
    conn.execute(sa.delete(t.samples).where(s.created_at < retention.oldest))
    cutoff = conn.execute(
        sa.select(s.id).order_by(s.id.desc()).offset(retention.max_samples).limit(1)
    ).scalar_one_or_none()
    if cutoff is not None:
        conn.execute(sa.delete(t.samples).where(s.id <= cutoff))


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
