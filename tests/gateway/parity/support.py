"""Builders for the parity tests: answers, differences, recorders and a look into the store."""

from __future__ import annotations

import json
from typing import Any

from gateway.db import Database, Table
from gateway.exchange import Capture, CapturedRequest, Difference, DiffKind, Side
from gateway.parity import schema
from gateway.parity.recorder import ParityRecorder
from gateway.parity.store import ParityStore

JSON = (("content-type", "application/json"),)


def request(path: str = "/api/items/1", method: str = "GET", **kw: Any) -> CapturedRequest:
    return CapturedRequest(
        method=method,
        path=path,
        query=kw.get("query", ""),
        headers=tuple(kw.get("headers", (("host", "testserver"),))),
        body=kw.get("body", b""),
    )


def answer(body: Any = None, status: int = 200, headers: tuple[tuple[str, str], ...] = JSON) -> Capture:
    raw = body if isinstance(body, bytes) else json.dumps(body if body is not None else {"ok": True}).encode()
    return Capture(status, headers, raw)


def diff(path: str, kind: DiffKind = DiffKind.VALUE, owner: str | None = "1", candidate: str | None = "2") -> Difference:
    return Difference(path, kind, owner, candidate)


def recorder(url: str, **kw: Any) -> ParityRecorder:
    return ParityRecorder(ParityStore(url), **kw)


def compare_once(
    rec: ParityRecorder,
    route_id: str = "items.get",
    diffs: tuple[Difference, ...] = (),
    *,
    owner_ms: float = 5.0,
    candidate_ms: float = 5.0,
    owner_side: Side = Side.LEGACY,
    redact: tuple[str, ...] = (),
    req: CapturedRequest | None = None,
    owner: Capture | None = None,
    candidate: Capture | None = None,
) -> None:
    rec.record_comparison(
        route_id=route_id,
        owner_side=owner_side,
        owner=owner or answer({"price": 1}),
        candidate=candidate or answer({"price": 2}),
        request=req or request(),
        diffs=diffs,
        owner_ms=owner_ms,
        candidate_ms=candidate_ms,
        redact=redact,
    )


def table_rows(url: str, table: Table) -> list[dict[str, Any]]:
    """Rows of one table; [] when the store has not even been created."""
    db = Database(url)
    try:
        if not db.has_table(table.name):
            return []
        with db.connect() as conn:
            return conn.execute(f"SELECT * FROM {table.name}")
    finally:
        db.dispose()


def route_row(url: str, route_id: str = "items.get") -> dict[str, Any] | None:
    return next((r for r in table_rows(url, schema.routes) if r["route_id"] == route_id), None)


def everything_stored(url: str) -> str:
    """Every value of every row of every parity table, as one text to search."""
    return "\n".join(repr(row) for table in schema.TABLES for row in table_rows(url, table))
