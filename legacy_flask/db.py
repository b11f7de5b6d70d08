"""Engine and per-request session: plain SQLAlchemy 2, no Flask-SQLAlchemy."""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy.orm import Session, sessionmaker

_EXTENSION = "legacy_flask.db"
SHADOW_HEADER = "X-Gateway-Shadow"


def normalise_url(url: str) -> str:
    """Send bare PostgreSQL URLs to psycopg 3: SQLAlchemy's default driver is psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> sa.Engine:
    url = normalise_url(url)
    connect_args: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # a2wsgi runs a streamed response's generator on whichever pool thread is free, so a
        # connection can be used by a thread other than the one that opened it.
        connect_args["check_same_thread"] = False
    return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions[_EXTENSION] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def get_engine(app: Flask) -> sa.Engine:
    factory: sessionmaker[Session] = app.extensions[_EXTENSION]
    engine = factory.kw["bind"]
    assert isinstance(engine, sa.Engine)
    return engine


# the widest integer key the databases store; a larger id names no row (and would overflow the driver)
MAX_ID = 2**63 - 1
T = TypeVar("T")


def get_by_id(model: type[T], row_id: int) -> T | None:
    """The row with this primary key, or None; an id out of the key's range is simply absent."""
    if not 0 < row_id <= MAX_ID:
        return None
    return get_session().get(model, row_id)


def get_session() -> Session:
    """The request's session, opened on first use.

    Kept on ``g`` rather than in a thread-local ``scoped_session``: ``stream_with_context``
    carries the app context (and so ``g``) to the thread that iterates the response, a
    thread-local would hand that thread a second, never-removed session.
    """
    if "db_session" not in g:
        factory: sessionmaker[Session] = current_app.extensions[_EXTENSION]
        if is_rollback_shadow():
            # The gateway runs this request as a shadow of a write: everything it does must
            # vanish. The session joins an outer transaction it may not commit
            # ("rollback_only": its commit() only flushes), and teardown rolls that back.
            conn = get_engine(current_app).connect()
            g.db_shadow = (conn, conn.begin())
            g.db_session = factory(bind=conn, join_transaction_mode="rollback_only")
        else:
            g.db_session = factory()
    session: Session = g.db_session
    return session


def is_rollback_shadow() -> bool:
    """True when the gateway sent this request as a shadow copy whose writes must not last.

    The gateway strips this header from client requests, so only it can set it.
    """
    return has_request_context() and request.headers.get(SHADOW_HEADER) == "rollback"


def _close_session(_exc: BaseException | None) -> None:
    # close() rolls back whatever was not committed, so a failed request leaves nothing behind
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()
    shadow = g.pop("db_shadow", None)
    if shadow is not None:
        conn, outer = shadow
        outer.rollback()
        conn.close()
