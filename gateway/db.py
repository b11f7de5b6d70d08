"""The gateway's own database client: SQLite through the stdlib, PostgreSQL through psycopg 3.

The parity and rollout stores need a handful of statements, upserts and transactions; doing
them here instead of through SQLAlchemy keeps the gateway out of the legacy app's own
dependencies (an app pinned to SQLAlchemy 1.3 runs in-process beside it unchanged), and
psycopg 3 is another distribution than the psycopg2 such apps use. SQL is written once, with
`:name` placeholders, in the syntax both databases share (ON CONFLICT upserts, RETURNING).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from gateway.db_url import StoreError, StoreUrl, parse_url

__all__ = ["Connection", "Database", "DatabaseError", "Row", "StoreError", "StoreUrl", "Table", "in_list"]

SQLITE_BUSY_TIMEOUT = 15.0  # several processes share the file: wait for its lock rather than fail
PG_CONNECT_TIMEOUT = 3  # seconds: an unreachable server is an outage to ride out, not a hang
MAX_IN_USE = 12  # connections at once per Database; more callers wait for one
CHECKOUT_TIMEOUT = 30.0
KEEP_IDLE = {"sqlite": 5, "postgresql": 2}
Row = dict[str, Any]


class DatabaseError(Exception):
    """The database failed: unreachable, locked past the timeout, gone, or a statement refused."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]  # column and constraint definitions; `{serial}`: an autoincrement id
    key: tuple[str, ...]  # the primary key: what an upsert conflicts on
    indexes: tuple[tuple[str, str], ...] = ()  # (name, columns)

    def ddl(self, dialect: str) -> list[str]:
        serial = "SERIAL" if dialect == "postgresql" else "INTEGER"  # SQLite: the rowid itself
        body = [c.replace("{serial}", serial) for c in self.columns]
        body.append(f"PRIMARY KEY ({', '.join(self.key)})")
        out = [f"CREATE TABLE IF NOT EXISTS {self.name} (\n  " + ",\n  ".join(body) + "\n)"]
        return out + [f"CREATE INDEX IF NOT EXISTS {n} ON {self.name} ({cols})" for n, cols in self.indexes]


def in_list(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """`(:name_0, :name_1, ...)` and its parameters, for `column IN ...` (values not empty)."""
    params = {f"{name}_{i}": v for i, v in enumerate(values)}
    return "(" + ", ".join(f":{p}" for p in params) + ")", params


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # not `::` casts


@lru_cache(maxsize=512)
def _pyformat(sql: str) -> str:
    """`:name` placeholders as psycopg's `%(name)s` (a literal `%` doubled)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


class Connection:
    """One connection, used by one thread at a time; statements take `:name` parameters."""

    def __init__(self, raw: Any, database: Database) -> None:
        self._raw, self._db = raw, database  # raw: a sqlite3 or psycopg connection, in autocommit
        self.dialect = database.dialect

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """The rows of the statement (none for one without a result, or without RETURNING)."""
        for hook in self._db.hooks:
            hook(sql)
        with self._db.errors():
            if self.dialect == "sqlite":
                cursor = self._raw.execute(sql, params or {})
            else:
                cursor = self._raw.execute(_pyformat(sql), params or {})
            return list(cursor.fetchall()) if cursor.description else []

    def executemany(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        for hook in self._db.hooks:
            hook(sql)
        with self._db.errors():
            if self.dialect == "sqlite":
                self._raw.executemany(sql, rows)
            else:
                with self._raw.cursor() as cursor:  # one pipelined round trip, not one per row
                    cursor.executemany(_pyformat(sql), rows)


class Database:
    """A store URL's database, with a few pooled connections: thread-safe, opened lazily.

    Connections are autocommit: each statement is its own transaction unless it runs inside
    `begin()`. A pooled PostgreSQL connection is checked before use (a server restarted in
    between cut it), and `dispose()` makes the next use open new ones (a SQLite file deleted
    and made anew, a server restored)."""

    def __init__(self, url: str) -> None:
        parsed = parse_url(url)  # raises StoreError, also for PostgreSQL without psycopg installed
        self.url, self.dialect, self.where = url, parsed.dialect, parsed.where
        self._target = parsed.target
        self._memory = self._target == ":memory:" and self.dialect == "sqlite"
        self._driver_error: type[Exception] = sqlite3.Error
        if self.dialect == "postgresql":
            import psycopg

            self._psycopg, self._driver_error = psycopg, psycopg.Error
        self.hooks: list[Callable[[str], None]] = []  # each statement's SQL, before it runs
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(1 if self._memory else MAX_IN_USE)
        self._generation = 0  # dispose() moves it on: connections of before are not kept

    def missing_file(self) -> str | None:
        """The path of the SQLite file when it does not exist; None otherwise."""
        if self.dialect != "sqlite" or self._memory:
            return None
        return None if Path(self._target).exists() else self._target

    @contextmanager
    def errors(self) -> Iterator[None]:
        """The driver's exceptions, as DatabaseError."""
        try:
            yield
        except self._driver_error as exc:
            raise DatabaseError(str(exc).strip() or type(exc).__name__) from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        raw, generation = self._checkout()
        ok = False
        try:
            yield Connection(raw, self)
            ok = True
        finally:
            self._release(raw, generation, ok)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed when the block ends, rolled back if it raises. On SQLite it
        takes the write lock at BEGIN: a deferred transaction that reads and then writes fails at
        once (SQLITE_BUSY, no wait) when another process wrote in between, where taking the lock
        first makes concurrent writers queue on the busy timeout."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            try:
                yield conn
            except BaseException:
                with suppress(DatabaseError):  # a broken connection: it is closed, not pooled
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def create(self, tables: Sequence[Table], *, lock_key: int) -> None:
        """Create the tables and indexes that are missing; safe when several writers start at once."""
        with self.begin() as conn:
            if self.dialect == "postgresql":
                # concurrent CREATE ... IF NOT EXISTS can still collide in the catalog: one at a time
                conn.execute("SELECT pg_advisory_xact_lock(:key)", {"key": lock_key})
            for table in tables:
                for statement in table.ddl(self.dialect):
                    conn.execute(statement)

    def has_table(self, name: str) -> bool:
        if self.dialect == "sqlite":
            sql = "SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = :name"
        else:
            sql = (
                "SELECT 1 AS present FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_name = :name"
            )
        with self.connect() as conn:
            return bool(conn.execute(sql, {"name": name}))

    def dispose(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
        for raw in idle:
            self._close(raw)

    def _checkout(self) -> tuple[Any, int]:
        if not self._slots.acquire(timeout=CHECKOUT_TIMEOUT):
            raise DatabaseError(f"no free connection to {self.where} within {CHECKOUT_TIMEOUT:g} s")
        try:
            while True:
                with self._lock:
                    raw = self._idle.pop() if self._idle else None
                    generation = self._generation
                if raw is None:
                    return self._open(), generation
                if self._alive(raw):
                    return raw, generation
                self._close(raw)
        except BaseException:
            self._slots.release()
            raise

    def _release(self, raw: Any, generation: int, ok: bool) -> None:
        try:
            with self._lock:
                # a connection that failed may be broken or mid-transaction: it is not reused
                # (an in-memory database is its one connection: it stays)
                current = generation == self._generation
                if self._memory or (ok and current and len(self._idle) < KEEP_IDLE[self.dialect]):
                    self._idle.append(raw)
                    return
            self._close(raw)
        finally:
            self._slots.release()

    def _open(self) -> Any:
        with self.errors():
            if self.dialect == "sqlite":
                raw = sqlite3.connect(
                    self._target, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
                )
                raw.row_factory = _dict_row
                return raw
            from psycopg.rows import dict_row

            return self._psycopg.connect(
                self._target, autocommit=True, connect_timeout=PG_CONNECT_TIMEOUT, row_factory=dict_row
            )

    def _alive(self, raw: Any) -> bool:
        """SQLAlchemy's pool_pre_ping: an empty statement's round trip on a pooled connection."""
        if self.dialect == "sqlite":
            return True
        if raw.closed or raw.broken:
            return False
        try:
            raw.execute("")
        except self._driver_error:
            return False
        return True

    def _close(self, raw: Any) -> None:
        with suppress(Exception):  # closing what is already broken: nothing more to do
            raw.close()
