"""In-process gateways over the faulty apps, and small readers of what they recorded."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import Gateway
from gateway.settings import GatewaySettings
from tests.shadow.sink import MemorySink

FAULTY = "tests.reliability.faulty_apps"


@contextlib.asynccontextmanager
async def running_gateway(
    tmp_path: Path, map_text: str, *, sink: MemorySink | None = None, **settings: object
) -> AsyncIterator[Gateway]:
    """A started gateway over the faulty apps (others by keyword), its map in a directory of
    its own; stopped on the way out."""
    map_path = tmp_path / "map" / "migration_map.yaml"
    map_path.parent.mkdir(exist_ok=True)
    map_path.write_text(map_text)
    options: dict[str, object] = {
        "legacy_app": f"{FAULTY}:legacy_app",
        "native_app": f"{FAULTY}:native_app",
        "store_url": f"sqlite:///{tmp_path}/store.db",
        "state_poll_interval": 0.1,
        "access_log": False,
        **settings,
    }
    gw = Gateway(GatewaySettings(map_path=map_path, **options), sink=sink)  # type: ignore[arg-type]
    await gw.startup({})
    try:
        yield gw
    finally:
        await gw.shutdown()


def client(gw: Gateway, timeout: float = 30) -> httpx.AsyncClient:
    """A client that sees what a real server would send (a 500) when the app raises."""
    transport = httpx.ASGITransport(app=gw.dispatcher, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=timeout)


def sample(gw: Gateway, name: str, **labels: str) -> float:
    """A value as a scrape of /metrics reads it (0 when the series does not exist)."""
    return scraped(gw.metrics.exposition().decode(), name, **labels)


def scraped(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0
