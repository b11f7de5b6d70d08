"""The write side of the parity store: additive upserts, capped samples, bounded retention.

Every counter is written as `INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n`, so any
number of recorders (workers, instances) can share one store. Rows are written in key order,
so two writers touching the same keys lock them in the same order and never deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.db import Connection, Database, StoreError, Table
from gateway.parity import schema as t

__all__ = ["Batch", "ParityStore", "Retention", "RouteCounts", "StoreError", "dumps"]

_ROUTE_COUNTS = ("compared", "exact_matches", "candidate_errors", "noise_runs")


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
        self.db = Database(url)
        self._created = False

    @property
    def where(self) -> str:
        """The store's URL without its password, for messages."""
        return self.db.where

    def exists(self) -> bool:
        """False only for a SQLite file not created yet (nothing was ever written there)."""
        return self.db.missing_file() is None

    def ensure_schema(self) -> None:
        """Create what is missing; safe when several writers start at once."""
        if self._created:
            return
        self.db.create(t.TABLES, lock_key=t.SCHEMA_LOCK)
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
        self.db.dispose()

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
        with self.db.begin() as conn:
            for table, rows, add in counters:
                _upsert(conn, table, rows, add=add)
            if batch.samples:
                conn.executemany(_INSERT_SAMPLE, batch.samples)
                touched = sorted({(s["route_id"], s["signature"]) for s in batch.samples})
                _trim(conn, touched, per_signature)
            if retention is not None:
                _prune(conn, retention)

    def sample_counts(self) -> dict[tuple[str, str], int]:
        query = "SELECT route_id, signature, count(*) AS n FROM parity_samples GROUP BY route_id, signature"
        try:
            self.ensure_schema()
            with self.db.connect() as conn:
                return {(r["route_id"], r["signature"]): int(r["n"]) for r in conn.execute(query)}
        except Exception:
            self.reconnect()
            raise

    def dispose(self) -> None:
        self.db.dispose()


def _counts(c: RouteCounts) -> dict[str, Any]:
    return {
        "compared": c.compared,
        "exact_matches": c.exact_matches,
        "candidate_errors": c.candidate_errors,
        "noise_runs": c.noise_runs,
        "last_at": c.last_at,
    }


_SAMPLE_COLUMNS = (
    "route_id", "signature", "created_at", "owner_side", "request", "owner", "candidate", "differences"
)
_INSERT_SAMPLE = (
    f"INSERT INTO parity_samples ({', '.join(_SAMPLE_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _SAMPLE_COLUMNS)})"
)


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], *, add: Sequence[str]) -> None:
    """`INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n`: the same SQL on both databases."""
    if not rows:
        return
    name, columns = table.name, list(rows[0])
    updates = [f"{c} = {name}.{c} + excluded.{c}" for c in add]
    if "last_at" in columns:  # the newest time wins, whichever writer comes last
        newer = f"excluded.last_at > {name}.last_at"
        updates.append(f"last_at = CASE WHEN {newer} THEN excluded.last_at ELSE {name}.last_at END")
    sql = (
        f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)}) "
        f"ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {', '.join(updates)}"
    )
    conn.executemany(sql, sorted(rows, key=lambda row: tuple(row[k] for k in table.key)))


# the samples of one (route, signature) from the `keep`-th on, in id order (none when fewer)
_TRIM = (
    "DELETE FROM parity_samples WHERE route_id = :route_id AND signature = :signature AND id >= ("
    "SELECT id FROM parity_samples WHERE route_id = :route_id AND signature = :signature "
    "ORDER BY id LIMIT 1 OFFSET :keep)"
)


def _trim(conn: Connection, keys: Iterable[tuple[str, str]], keep: int) -> None:
    """At most `keep` samples per (route, signature): the first ones stay, later extras go."""
    conn.executemany(_TRIM, [{"route_id": r, "signature": s, "keep": keep} for r, s in keys])


def _prune(conn: Connection, retention: Retention) -> None:
    conn.execute("DELETE FROM parity_samples WHERE created_at < :oldest", {"oldest": retention.oldest})
    cutoff = conn.execute(
        "SELECT id FROM parity_samples ORDER BY id DESC LIMIT 1 OFFSET :n", {"n": retention.max_samples}
    )
    if cutoff:
        conn.execute("DELETE FROM parity_samples WHERE id <= :id", {"id": cutoff[0]["id"]})


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
