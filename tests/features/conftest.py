"""The native app in-process over a freshly seeded database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from features.core.db import dispose_engine
from legacy_flask.seed import seed
from tests.features.helpers import native_app


@pytest.fixture
def seeded_url(db_url: str) -> str:
    seed(db_url)
    return db_url


@pytest.fixture
async def native(seeded_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the native app; no lifespan runs, so the engine is made on first use."""
    app = native_app(seeded_url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://native") as client:
        yield client
    await dispose_engine(app)
