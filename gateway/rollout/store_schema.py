"""Tables of the rollout state and its audit log, in the parity store's database.

They share the parity store's URL, engine options and schema lock: one database to run, and
schema creation that is safe when every worker of every instance starts at once.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.schema import CreateIndex, CreateTable

from gateway.parity.schema import ROUTE_ID
from gateway.parity.store import _SCHEMA_LOCK, create_engine

metadata = sa.MetaData()
ACTOR = 128
IMMEDIATE = "rollout_immediate"  # execution option: a SQLite write transaction takes its lock at BEGIN

# one row per route with a run-time decision; no row: the route follows the map
state = sa.Table(
    "rollout_state",
    metadata,
    sa.Column("route_id", sa.String(ROUTE_ID), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # gateway.rollout.state.RuntimeState
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("figures", sa.Text, nullable=False),  # JSON object: what the guard measured
    sa.Column("actor", sa.String(ACTOR), nullable=False),
    sa.Column("at", sa.Float, nullable=False),  # epoch seconds
    sa.Column("map_sha256", sa.String(64), nullable=True),  # the map the decision was taken under
)

audit = sa.Table(
    "rollout_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # gateway.rollout.state.AuditKind
    sa.Column("route_id", sa.String(ROUTE_ID), nullable=True),  # None: the whole map
    sa.Column("actor", sa.String(ACTOR), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),  # JSON object
    # set when several writers may record the same event: the first insert wins, the rest do nothing
    sa.Column("dedupe_key", sa.String(256), nullable=True, unique=True),
    sa.Index("ix_rollout_audit_route", "route_id", "id"),
    sa.Index("ix_rollout_audit_kind", "kind", "id"),
)


def open_engine(url: str) -> sa.Engine:
    """The parity store's engine for `url`; on SQLite, writes that read first begin IMMEDIATE.

    A deferred SQLite transaction that reads and then writes fails at once (SQLITE_BUSY, no
    wait) when another process wrote in between; taking the write lock at BEGIN makes
    concurrent writers queue on the busy timeout instead.
    """
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _own_begin(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None  # pysqlite emits no BEGIN; the listener below does

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            immediate = conn.get_execution_options().get(IMMEDIATE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def create_tables(conn: sa.Connection) -> None:
    """Create what is missing, under the parity store's schema lock on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        # concurrent CREATE ... IF NOT EXISTS can still collide in the catalog: one at a time
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
    for table in metadata.sorted_tables:
        conn.execute(CreateTable(table, if_not_exists=True))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            conn.execute(CreateIndex(index, if_not_exists=True))
