"""Engine and per-request session: plain SQLAlchemy 2, no Flask-SQLAlchemy."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy.orm import Session, sessionmaker

_EXTENSION = "legacy_flask.db"


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


def get_session() -> Session:
    """The request's session, opened on first use.

    Kept on ``g`` rather than in a thread-local ``scoped_session``: ``stream_with_context``
    carries the app context (and so ``g``) to the thread that iterates the response, a
    thread-local would hand that thread a second, never-removed session.
    """
    if "db_session" not in g:
        g.db_session = current_app.extensions[_EXTENSION]()
    session: Session = g.db_session
    return session


def _close_session(_exc: BaseException | None) -> None:
    # close() rolls back whatever was not committed, so a failed request leaves nothing behind
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()
