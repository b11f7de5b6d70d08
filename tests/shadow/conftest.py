"""Fixtures of the shadow tests: a seeded demo database, and gateways built in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.settings import GatewaySettings
from legacy_flask.seed import seed
from tests.shadow.sink import MemorySink

MakeGateway = Callable[..., Awaitable[tuple[Gateway, MemorySink]]]


@pytest.fixture
def demo_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/demo.db"
    seed(url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SECRET_KEY", "shadow-secret")
    return url


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[MakeGateway]:
    started: list[Gateway] = []

    async def make(map_text: str, **settings: object) -> tuple[Gateway, MemorySink]:
        map_path = tmp_path / f"map{len(started)}.yaml"
        map_path.write_text(map_text)
        sink = MemorySink()
        gw = Gateway(GatewaySettings(map_path=map_path, **settings), sink=sink)  # type: ignore[arg-type]
        await gw.startup({})
        started.append(gw)
        return gw, sink

    yield make
    for gw in started:
        await gw.shutdown()
