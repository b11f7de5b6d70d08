"""Tables of the rollout state and its audit log, in the parity store's database.

They share the parity store's URL and schema lock: one database to run, and schema creation
that is safe when every worker of every instance starts at once.
"""

from __future__ import annotations

from gateway.db import Table
from gateway.parity.schema import ROUTE_ID, SCHEMA_LOCK

__all__ = ["ACTOR", "AUDIT_COLUMNS", "SCHEMA_LOCK", "STATE_COLUMNS", "TABLES", "audit", "insert", "state"]

ACTOR = 128

# one row per route with a run-time decision; no row: the route follows the map
state = Table(
    "rollout_state",
    (
        f"route_id VARCHAR({ROUTE_ID}) NOT NULL",
        "state VARCHAR(16) NOT NULL",  # gateway.rollout.state.RuntimeState
        "reason TEXT NOT NULL",
        "figures TEXT NOT NULL",  # JSON object: what the guard measured
        f"actor VARCHAR({ACTOR}) NOT NULL",
        "at FLOAT NOT NULL",  # epoch seconds
        "map_sha256 VARCHAR(64)",  # the map the decision was taken under
    ),
    key=("route_id",),
)

audit = Table(
    "rollout_audit",
    (
        "id {serial} NOT NULL",
        "at FLOAT NOT NULL",
        "kind VARCHAR(16) NOT NULL",  # gateway.rollout.state.AuditKind
        f"route_id VARCHAR({ROUTE_ID})",  # NULL: the whole map
        f"actor VARCHAR({ACTOR}) NOT NULL",
        "summary TEXT NOT NULL",
        "details TEXT NOT NULL",  # JSON object
        # set when several writers may record the same event: the first insert wins, the rest do nothing
        "dedupe_key VARCHAR(256)",
        "UNIQUE (dedupe_key)",
    ),
    key=("id",),
    indexes=(("ix_rollout_audit_kind", "kind, id"), ("ix_rollout_audit_route", "route_id, id")),
)

TABLES = (audit, state)
STATE_COLUMNS = ("route_id", "state", "reason", "figures", "actor", "at", "map_sha256")
AUDIT_COLUMNS = ("at", "kind", "route_id", "actor", "summary", "details", "dedupe_key")


def insert(table: Table, columns: tuple[str, ...]) -> str:
    """`INSERT INTO table (columns) VALUES (:columns)`, to which an ON CONFLICT clause may follow."""
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
