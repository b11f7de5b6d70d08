"""The async engine: URL translation, lazy creation, lifespan disposal, one unit of work."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from features.core.db import SessionDep, async_url, dispose_engine, get_engine
from features.core.errors import Conflict, install_error_handlers
from features.core.settings import Settings
from features.main import create_app

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///demo.db", "sqlite+aiosqlite:///demo.db"),
        ("sqlite:////tmp/x/test.db", "sqlite+aiosqlite:////tmp/x/test.db"),
        ("sqlite+pysqlite:///demo.db", "sqlite+aiosqlite:///demo.db"),
        ("sqlite+aiosqlite:///demo.db", "sqlite+aiosqlite:///demo.db"),
        ("postgresql://u:p@db:5432/app", "postgresql+psycopg://u:p@db:5432/app"),
        ("postgres://u@db/app", "postgresql+psycopg://u@db/app"),
        ("postgresql+psycopg://u@db/app", "postgresql+psycopg://u@db/app"),
        (
            "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dt_abc",
            "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dt_abc",
        ),
        ("postgresql://u@db/app?sslmode=require", "postgresql+psycopg://u@db/app?sslmode=require"),
    ],
)
def test_async_url(given: str, expected: str) -> None:
    assert async_url(given).render_as_string(hide_password=False) == expected


def test_async_url_keeps_the_search_path_option() -> None:
    url = async_url("postgresql://h/test?options=-csearch_path%3Dx")
    assert url.query == {"options": "-csearch_path=x"}


def app_for(url: str) -> FastAPI:
    return create_app(Settings(database_url=url))


async def test_engine_is_made_on_first_use_without_a_lifespan(db_url: str) -> None:
    app = app_for(db_url)
    assert getattr(app.state, "engine", None) is None
    engine = get_engine(app)
    assert get_engine(app) is engine
    async with engine.connect() as conn:
        assert await conn.scalar(sa.text("select 1")) == 1
    await dispose_engine(app)
    assert app.state.engine is None


async def test_lifespan_makes_and_disposes_the_engine(sqlite_url: str) -> None:
    app = app_for(sqlite_url)
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        assert engine is not None
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("select 1")) == 1
    assert app.state.engine is None


def unit_of_work_app(url: str) -> FastAPI:
    app = FastAPI()
    app.state.settings = Settings(database_url=url)
    install_error_handlers(app)

    @app.post("/write/{value}")
    async def write(value: str, session: SessionDep) -> dict[str, str]:
        await session.execute(sa.text("insert into notes (body) values (:v)"), {"v": value})
        if value == "fail":
            raise Conflict("refused after writing")
        return {"written": value}

    @app.get("/count")
    async def count(session: SessionDep) -> dict[str, int]:
        return {"count": int(await session.scalar(sa.text("select count(*) from notes")) or 0)}

    return app


async def test_get_session_commits_on_success_and_rolls_back_on_error(db_url: str) -> None:
    sync = sa.create_engine(db_url)
    with sync.begin() as conn:
        conn.execute(sa.text("create table notes (body varchar(20))"))
    sync.dispose()
    app = unit_of_work_app(db_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.post("/write/kept")).status_code == 200
        # committed before the response went out: the next request sees it
        assert (await client.get("/count")).json() == {"count": 1}
        failed = await client.post("/write/fail")
        assert failed.status_code == 409
        assert failed.json() == {"error": {"code": "conflict", "message": "refused after writing"}}
        assert (await client.get("/count")).json() == {"count": 1}
    await dispose_engine(app)
