"""The async engine and the one session provider every feature uses.

The engine lives on `app.state`: the lifespan creates it and disposes of it, and
`get_engine` also creates it on first use, because `httpx.ASGITransport` runs no lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from features.core.settings import Settings
from features.core.shadow import is_rollback_shadow

# the legacy side spells these with sync drivers; the same database, async drivers here
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
}


def async_url(database_url: str) -> URL:
    """The async-driver twin of a sync SQLAlchemy URL; the query string is kept as is."""
    url = make_url(database_url)
    driver = _ASYNC_DRIVERS.get(url.drivername)
    return url if driver is None else url.set(drivername=driver)


def make_engine(database_url: str) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    url = async_url(database_url)
    if url.get_backend_name() == "postgresql":
        # a dropped connection is found before a request uses it, not by the request
        kwargs["pool_pre_ping"] = True
    return create_async_engine(url, **kwargs)


def get_engine(app: FastAPI) -> AsyncEngine:
    engine: AsyncEngine | None = getattr(app.state, "engine", None)
    if engine is None:
        # no await between the check and the store: concurrent first requests share one
        settings: Settings = app.state.settings
        engine = make_engine(settings.database_url)
        app.state.engine = engine
        app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    return engine


async def dispose_engine(app: FastAPI) -> None:
    engine: AsyncEngine | None = getattr(app.state, "engine", None)
    if engine is not None:
        app.state.engine = None
        app.state.sessionmaker = None
        await engine.dispose()


def _sessionmaker(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    get_engine(app)
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    return maker


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: commit when the handler returns, roll back if it raises.

    Every feature takes its session from here, so the transaction boundary is in one place
    (services and repos only flush): running shadowed writes in an always-rolled-back
    transaction means changing how this function ends the transaction, nothing else.
    """
    async with _sessionmaker(request.app)() as session:
        if is_rollback_shadow(request):
            # a shadow copy of a write: the handler runs for real, its transaction never lands
            transaction = await session.begin()
            try:
                yield session
                await session.flush()
            finally:
                await transaction.rollback()
            return
        async with session.begin():
            yield session


# scope="function": the commit runs before the response is sent, so a client that
# reads right after a write sees it, and a failing commit still becomes an error response
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


# the widest integer key the databases store; a larger id names no row (and would overflow the driver)
MAX_ID = 2**63 - 1
T = TypeVar("T")


async def get_by_id(session: AsyncSession, model: type[T], row_id: int) -> T | None:
    """The row with this primary key, or None; an id out of the key's range is simply absent."""
    if not 0 < row_id <= MAX_ID:
        return None
    return await session.get(model, row_id)
