"""gateway.db: the stores' own client on sqlite3 and psycopg 3, and what it keeps out of a legacy venv."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gateway.db import Database, DatabaseError, StoreError, Table, _pyformat, in_list
from gateway.db_url import parse_url
from gateway.parity.store import Batch, ParityStore, RouteCounts
from tests.test_boundaries import ROOT, imported_modules

ITEMS = Table("items", ("id {serial} NOT NULL", "name VARCHAR(32) NOT NULL", "n BIGINT NOT NULL"), key=("id",))


@pytest.mark.parametrize(
    ("url", "dialect", "target"),
    [
        ("sqlite:///gateway_parity.db", "sqlite", "gateway_parity.db"),
        ("sqlite:////var/lib/gw/parity.db", "sqlite", "/var/lib/gw/parity.db"),
        ("sqlite:///with%20space.db", "sqlite", "with space.db"),
        ("sqlite://", "sqlite", ":memory:"),
        ("sqlite:///:memory:", "sqlite", ":memory:"),
        ("postgresql://u:pw@db:5432/app", "postgresql", "postgresql://u:pw@db:5432/app"),
        ("postgres://u@db/app", "postgresql", "postgresql://u@db/app"),
        ("postgresql+psycopg://u@db/app?options=-csearch_path%3Dx", "postgresql",
         "postgresql://u@db/app?options=-csearch_path%3Dx"),
    ],
)
def test_every_store_url_form_names_its_database(url: str, dialect: str, target: str) -> None:
    parsed = parse_url(url)
    assert (parsed.dialect, parsed.target) == (dialect, target)


def test_messages_name_the_store_without_its_password() -> None:
    assert parse_url("postgresql://gw:s3cret@db:5432/app").where == "postgresql://gw:***@db:5432/app"
    assert parse_url("postgresql://gw@db/app").where == "postgresql://gw@db/app"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gateway_parity.db", "invalid store URL 'gateway_parity.db': expected sqlite:///PATH or postgresql://"),
        ("mysql://x@localhost/db", "the parity store runs on SQLite or PostgreSQL, not 'mysql'"),
        ("sqlite://host/x.db", "expected sqlite:///PATH (no host, no ?options)"),
        ("postgresql+psycopg2://u:pw@db/app", "invalid store URL 'postgresql+psycopg2://u:***@db/app'"),
    ],
)
def test_a_bad_store_url_says_what_is_expected(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=re.escape(message)):
        Database(url)


def test_postgresql_without_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an install without [postgres] has
    with pytest.raises(StoreError) as caught:
        ParityStore("postgresql://gw:pw@db/app")
    message = str(caught.value)
    assert message.startswith("the store postgresql://gw:***@db/app is on PostgreSQL, which needs psycopg 3")
    assert message.endswith("pip install 'migration-gateway[postgres]'")
    ParityStore("sqlite://")  # SQLite needs nothing more


def test_placeholders_become_psycopg_ones_and_nothing_else_changes() -> None:
    assert _pyformat("SELECT :a::text, '5 %' WHERE x = :b_2") == "SELECT %(a)s::text, '5 %%' WHERE x = %(b_2)s"
    assert in_list("r", ["a", "b"]) == ("(:r_0, :r_1)", {"r_0": "a", "r_1": "b"})


def test_a_transaction_that_raises_writes_nothing(db_url: str) -> None:
    db = Database(db_url)
    db.create([ITEMS], lock_key=1)
    with db.begin() as conn:
        conn.execute("INSERT INTO items (name, n) VALUES (:name, :n)", {"name": "kept", "n": 1})
    with pytest.raises(RuntimeError), db.begin() as conn:
        conn.executemany("INSERT INTO items (name, n) VALUES (:name, :n)", [{"name": "gone", "n": 2}] * 3)
        raise RuntimeError("after the writes")
    with pytest.raises(DatabaseError), db.begin() as conn:
        conn.execute("INSERT INTO items (name, n) VALUES (:name, :n)", {"name": "gone", "n": 3})
        conn.execute("INSERT INTO nowhere VALUES (1)")
    with db.connect() as conn:
        assert conn.execute("SELECT name, n FROM items") == [{"name": "kept", "n": 1}]
    db.create([ITEMS], lock_key=1)  # again: nothing to do, no error
    db.dispose()


def test_a_pooled_postgresql_connection_cut_by_the_server_is_replaced(pg_url: str) -> None:
    db, admin = Database(pg_url), Database(pg_url)
    with db.connect() as conn:
        [row] = conn.execute("SELECT pg_backend_pid() AS pid")
    with admin.connect() as conn:  # what a server restart does to every connection
        conn.execute("SELECT pg_terminate_backend(:pid)", {"pid": row["pid"]})
    with db.connect() as conn:  # the pool's check sees it and opens a new one
        [again] = conn.execute("SELECT pg_backend_pid() AS pid")
    assert again["pid"] != row["pid"]
    db.dispose()
    admin.dispose()


def test_an_in_memory_store_is_one_database_for_every_thread() -> None:
    store = ParityStore("sqlite://")
    batch = Batch(routes={"r": RouteCounts(compared=2, exact_matches=1, last_at=1.0)})
    writer = threading.Thread(target=store.write, args=(batch,), kwargs={"per_signature": 5})
    writer.start()
    writer.join()
    with store.db.connect() as conn:
        assert conn.execute("SELECT compared FROM parity_routes") == [{"compared": 2}]


def test_a_sqlite_file_in_a_missing_directory_is_a_database_error(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/nowhere/x.db")
    assert db.missing_file() == f"{tmp_path}/nowhere/x.db"
    with pytest.raises(DatabaseError, match="unable to open database file"), db.connect():
        pass


def test_gateway_never_imports_sqlalchemy() -> None:
    """A legacy app pinned to SQLAlchemy 1.3 keeps it: the gateway needs none (issue 13)."""
    found = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / "gateway").rglob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] == "sqlalchemy"
    ]
    assert found == []
    code = "import sys, gateway.app, gateway.cli; sys.exit('sqlalchemy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
