"""The read side of the parity store: per-route summaries, field verdicts, samples.

Whether a comparison matched is decided here, not when it was recorded: a comparison whose
differing fields are all noise (Diffy's rule, `gateway.compare.classify`, on the
counts learnt so far) counts as matched, so the verdicts improve as noise runs accumulate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.compare import FieldKey, Verdict, classify
from gateway.db import Database, DatabaseError, Row, StoreError, in_list
from gateway.exchange import DiffKind, Side
from gateway.parity import latency
from gateway.parity import schema as t

QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


@dataclass(frozen=True, slots=True)
class FieldVerdict:
    path: str
    kind: str
    candidate_n: int  # comparisons where this field differed
    noise_n: int  # owner-vs-owner runs where it differed
    real: bool

    def as_json(self, compared: int, noise_runs: int) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "count": self.candidate_n,
            "rate": self.candidate_n / compared if compared else None,
            "noise_count": self.noise_n,
            "noise_rate": self.noise_n / noise_runs if noise_runs else None,
            "verdict": "real" if self.real else "noise",
        }


@dataclass(frozen=True, slots=True)
class SignatureCount:
    signature: str
    fields: tuple[tuple[str, str], ...]
    n: int
    last_at: float
    real: bool  # at least one of its fields is real (a signature without fields is real too)


@dataclass(slots=True)
class RouteSummary:
    route_id: str
    compared: int = 0
    exact_matches: int = 0
    candidate_errors: int = 0
    noise_runs: int = 0
    last_at: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)
    fields: list[FieldVerdict] = field(default_factory=list)
    signatures: list[SignatureCount] = field(default_factory=list)
    histograms: dict[str, dict[int, int]] = field(default_factory=dict)  # side -> bucket -> n
    stored_samples: int = 0

    @property
    def has_data(self) -> bool:
        return bool(self.samples or self.skipped or self.noise_runs)

    @property
    def mismatched(self) -> int:
        return sum(s.n for s in self.signatures if s.real)

    @property
    def matched(self) -> int:
        return self.compared - self.mismatched

    @property
    def samples(self) -> int:
        """Shadowed requests that produced a verdict: compared, or failed on the candidate."""
        return self.compared + self.candidate_errors

    @property
    def mismatch_rate(self) -> float | None:
        """Mismatches and candidate errors per shadowed request: what cut-over must keep low."""
        return (self.mismatched + self.candidate_errors) / self.samples if self.samples else None

    @property
    def match_rate(self) -> float | None:
        return self.matched / self.compared if self.compared else None

    def percentile(self, side: Side, q: float) -> float | None:
        return latency.percentile(self.histograms.get(side.value, {}), q)

    def as_json(self) -> dict[str, Any]:
        real = [f for f in self.fields if f.real]
        noise = [f for f in self.fields if not f.real]
        return {
            "route_id": self.route_id,
            "samples": self.samples,
            "compared": self.compared,
            "matched": self.matched,
            "mismatched": self.mismatched,
            "exact_matches": self.exact_matches,
            "candidate_errors": self.candidate_errors,
            "noise_runs": self.noise_runs,
            "skipped": dict(sorted(self.skipped.items())),
            "match_rate": self.match_rate,
            "mismatch_rate": self.mismatch_rate,
            "latency_ms": {
                side.value: {"count": sum(self.histograms.get(side.value, {}).values())}
                | {name: self.percentile(side, q) for name, q in QUANTILES}
                for side in Side
            },
            "top_fields": [f.as_json(self.compared, self.noise_runs) for f in real[:10]],
            "noise_fields": [f.as_json(self.compared, self.noise_runs) for f in noise],
            "stored_samples": self.stored_samples,
            "last_at": iso(self.last_at) if self.last_at else None,
        }


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def open_store(url: str) -> Database:
    """The database of an existing store: a missing SQLite file or store tables is an error, not empty."""
    db = Database(url)
    missing = db.missing_file()
    if missing is not None:
        raise StoreError(f"no parity store at {missing} (the file does not exist)")
    try:
        present = db.has_table(t.routes.name)
    except DatabaseError as exc:
        raise StoreError(f"cannot read the parity store at {db.where}: {_first_line(exc)}") from None
    if not present:
        raise StoreError(f"{db.where} holds no parity store tables")
    return db


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def summaries(db: Database, route_ids: Sequence[str] | None = None) -> dict[str, RouteSummary]:
    """Every route with data (or only `route_ids`, which are always present, empty or not)."""
    out: dict[str, RouteSummary] = {r: RouteSummary(r) for r in route_ids or ()}
    if route_ids is not None and not route_ids:
        return out
    listed, params = ("", {}) if route_ids is None else in_list("route", list(route_ids))
    where = f" WHERE route_id IN {listed}" if listed else ""

    def only(table: str) -> list[Row]:
        return conn.execute(f"SELECT * FROM {table}{where}", params)

    def summary(route_id: str) -> RouteSummary:
        return out.setdefault(route_id, RouteSummary(route_id))

    with db.connect() as conn:
        for row in only(t.routes.name):
            s = summary(row["route_id"])
            s.compared, s.exact_matches = row["compared"], row["exact_matches"]
            s.candidate_errors, s.noise_runs = row["candidate_errors"], row["noise_runs"]
            s.last_at = row["last_at"]
        for row in only(t.skips.name):
            summary(row["route_id"]).skipped[row["reason"]] = row["n"]
        for row in only(t.latency.name):
            summary(row["route_id"]).histograms.setdefault(row["side"], {})[row["bucket"]] = row["n"]
        field_rows = only(t.fields.name)
        signature_rows = only(t.signatures.name)
        counted = f"SELECT route_id, count(*) AS n FROM parity_samples{where} GROUP BY route_id"
        for row in conn.execute(counted, params):
            summary(row["route_id"]).stored_samples = int(row["n"])
    by_route: dict[str, tuple[dict[FieldKey, int], dict[FieldKey, int]]] = {}
    for row in field_rows:
        candidate, noise = by_route.setdefault(row["route_id"], ({}, {}))
        key = (row["path"], DiffKind(row["kind"]))
        candidate[key], noise[key] = row["candidate_n"], row["noise_n"]
    noise_fields: dict[str, frozenset[FieldKey]] = {}
    for route_id, (candidate, noise) in by_route.items():
        s = summary(route_id)
        verdicts = classify(candidate, s.compared, noise, s.noise_runs)
        noise_fields[route_id] = verdicts.noise
        for v in verdicts.fields:
            real = v.verdict is Verdict.REAL
            s.fields.append(FieldVerdict(v.path, v.kind.value, v.count, noise.get((v.path, v.kind), 0), real))
    for row in signature_rows:
        keys = tuple((str(p), str(k)) for p, k in json.loads(row["fields"]))
        noisy = noise_fields.get(row["route_id"], frozenset())
        # a comparison matched when every field it differed in is noise (and it differed in some)
        real = not keys or any((p, DiffKind(k)) not in noisy for p, k in keys)
        signature = SignatureCount(row["signature"], keys, row["n"], row["last_at"], real)
        summary(row["route_id"]).signatures.append(signature)
    for s in out.values():
        s.fields.sort(key=lambda f: (-f.candidate_n, f.path, f.kind))
        s.signatures.sort(key=lambda g: (-g.n, g.signature))
    return dict(sorted(out.items()))


@dataclass(frozen=True, slots=True)
class StoredSample:
    id: int
    route_id: str
    signature: str
    created_at: float
    owner_side: Side
    request: dict[str, Any]
    owner: dict[str, Any]
    candidate: dict[str, Any]
    differences: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "signature": self.signature,
            "created_at": iso(self.created_at),
            "owner_side": self.owner_side.value,
            "request": self.request,
            "owner": self.owner,
            "candidate": self.candidate,
            "differences": self.differences,
        }


def samples(
    db: Database, route_id: str, *, signatures: Sequence[str] | None = None, limit: int = 100
) -> list[StoredSample]:
    """The route's stored samples, newest first (only those of `signatures` when given)."""
    if signatures is not None and not signatures:
        return []
    where, params = "route_id = :route_id", {"route_id": route_id, "limit": limit}
    if signatures is not None:
        listed, named = in_list("signature", list(signatures))
        where, params = f"{where} AND signature IN {listed}", params | named
    with db.connect() as conn:
        query = f"SELECT * FROM parity_samples WHERE {where} ORDER BY id DESC LIMIT :limit"
        rows = conn.execute(query, params)
    return [
        StoredSample(
            id=row["id"],
            route_id=row["route_id"],
            signature=row["signature"],
            created_at=row["created_at"],
            owner_side=Side(row["owner_side"]),
            request=json.loads(row["request"]),
            owner=json.loads(row["owner"]),
            candidate=json.loads(row["candidate"]),
            differences=json.loads(row["differences"]),
        )
        for row in rows
    ]
