"""Looking for secrets where they must never be: parity stores and gateway logs.

The scan reads raw bytes, not parsed rows: a secret in a free page of a SQLite file, in its
journal, or in a truncated log line counts as much as one in a live row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

SQLITE_MAGIC = b"SQLite format 3\x00"
# the schema text SQLite keeps in the file itself: how a parity store is told from other DBs
PARITY_SCHEMA = b"CREATE TABLE parity_"
SIDE_FILES = ("-wal", "-journal")


@dataclass(frozen=True)
class Leak:
    secret: str
    where: str  # a file, or schema.table on PostgreSQL
    kind: str  # "parity store" or "log"

    def __str__(self) -> str:
        return f"{self.kind} {self.where} contains the secret {self.secret!r}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # vanished, or a socket or a directory named like a file
        return b""


def is_parity_store(path: Path) -> bool:
    data = _read(path)
    if not data.startswith(SQLITE_MAGIC):
        return False
    return PARITY_SCHEMA in data or any(PARITY_SCHEMA in _read(Path(f"{path}{s}")) for s in SIDE_FILES)


def parity_stores(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(SIDE_FILES)
                  and is_parity_store(p))


def logs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.log") if p.is_file())


def scan_files(paths: Iterable[Path], secrets: Iterable[str], kind: str) -> list[Leak]:
    wanted = [(s, s.encode()) for s in secrets]
    found = []
    for path in paths:
        for part in (path, *(Path(f"{path}{s}") for s in SIDE_FILES)):
            data = _read(part)
            found += [Leak(secret, str(part), kind) for secret, raw in wanted if raw in data]
    return found


def scan_tree(root: Path, secrets: Iterable[str]) -> tuple[list[Leak], int, int]:
    """Every parity store and log file under `root`: (leaks, stores scanned, logs scanned)."""
    secrets = tuple(secrets)
    stores, log_files = parity_stores(root), logs(root)
    leaks = scan_files(stores, secrets, "parity store") + scan_files(log_files, secrets, "log")
    return leaks, len(stores), len(log_files)


def scan_pg_schema(engine: sa.Engine, schema: str, secrets: Iterable[str]) -> list[Leak]:
    """Every row of every table in a PostgreSQL schema, as text."""
    secrets = tuple(secrets)
    found = []
    with engine.connect() as conn:
        tables = conn.scalars(
            sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
        ).all()
        for table in tables:
            rows = conn.scalars(sa.text(f'SELECT t::text FROM "{schema}"."{table}" AS t')).all()
            text = "\n".join(rows)
            found += [Leak(s, f"{schema}.{table}", "PostgreSQL table") for s in secrets if s in text]
    return found
