"""Fixtures shared by every test package: a fresh database on SQLite and on PostgreSQL, no shadow
CPU budget, and a check at the end of the run that no secret reached a parity store or a log."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.leaks import Leak, scan_pg_schema, scan_tree
from tests.support import secrets_to_find

# trust auth on the machine's PostgreSQL; override to point at another server
PG_URL = os.environ.get(
    "GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# found in PostgreSQL schemas before they were dropped; reported with the session-end scan
PG_LEAKS: list[Leak] = []


def _pg_available() -> str | None:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure means "no usable server here"
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


@pytest.fixture(autouse=True)
def _no_shadow_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests are about what shadows find, and fire requests faster than a CPU budget for shadows
    would let through (a cold candidate's first call alone can spend a second's worth); the
    budget's own tests (tests/shadow/test_priority.py) set theirs."""
    monkeypatch.setenv("GATEWAY_SHADOW_CPU_BUDGET", "1")


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (`@pytest.mark.anyio`) run on asyncio, the loop uvicorn uses."""
    return "asyncio"


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """The PostgreSQL URL; skips (or, under CI=true, fails) when no server answers."""
    problem = _pg_available()
    if problem is not None:
        message = f"PostgreSQL not reachable at {PG_URL} ({problem}); set GATEWAY_TEST_PG_URL"
        if IN_CI:
            pytest.fail(f"CI=true requires PostgreSQL: {message}")
        pytest.skip(message)
    return PG_URL


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL schema of its own, so tests never see each other's rows."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{pg_base_url}?options=-csearch_path%3D{schema}"
    PG_LEAKS.extend(scan_pg_schema(admin, schema, secrets_to_find()))
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{os.fspath(tmp_path)}/test.db"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session", autouse=True)
def no_secrets_stored_or_logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the last test: the canary secrets of tests/support.py, and the session cookies
    the tests learnt, are in no parity store and no log file the run wrote (everything under
    its tmp dir), nor in any PostgreSQL schema a test used. A leak fails the run, as an error
    in the teardown of its last test, naming the file."""
    yield
    leaks, stores, logs = scan_tree(tmp_path_factory.getbasetemp(), secrets_to_find())
    leaks += PG_LEAKS
    if leaks:
        pytest.fail(
            f"secrets leaked (scanned {stores} parity stores and {logs} logs under "
            f"{tmp_path_factory.getbasetemp()}):\n" + "\n".join(f"  {leak}" for leak in leaks),
            pytrace=False,
        )
