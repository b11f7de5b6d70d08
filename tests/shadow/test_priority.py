"""Shadows must not hurt client requests: over their CPU budget they are skipped and counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.settings import GatewaySettings
from tests.shadow.sink import MemorySink
from tests.support import asgi_client, eventually

pytestmark = pytest.mark.anyio

MAP = """\
version: 1
defaults:
  shadow: {noise_sample: 0}
routes:
  - {id: whoami, path: /whoami, methods: [GET], owner: legacy, shadow: {sample: 1.0}}
  - {id: echo, path: /echo, methods: [POST], owner: legacy, shadow: {sample: 1.0, unsafe: rollback}}
"""

MakeGateway = Callable[..., Awaitable[tuple[Gateway, MemorySink]]]


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[MakeGateway]:
    started: list[Gateway] = []

    async def make(**settings: object) -> tuple[Gateway, MemorySink]:
        map_path = tmp_path / f"map{len(started)}.yaml"
        map_path.write_text(MAP)
        sink = MemorySink()
        gw = Gateway(
            GatewaySettings(
                map_path=map_path,
                legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
                native_app="tests.gateway.wsgi_fixtures:native_app",
                store_url=f"sqlite:///{tmp_path}/parity{len(started)}.db",
                **settings,  # type: ignore[arg-type]
            ),
            sink=sink,
        )
        await gw.startup({})
        started.append(gw)
        return gw, sink

    yield make
    for gw in started:
        await gw.shutdown()


def skipped(gw: Gateway, reason: str) -> float:
    return gw.metrics.registry.get_sample_value(
        "gateway_shadow_skipped_total", {"route": "whoami", "reason": reason}) or 0.0


async def test_over_budget_shadows_are_skipped_and_counted_and_clients_get_their_answers(
    make_gateway: MakeGateway,
) -> None:
    # a budget a single shadow overdraws: the bucket then refills for longer than the test runs
    gw, sink = await make_gateway(shadow_cpu_budget=1e-9)
    async with asgi_client(gw.dispatcher) as c:
        for i in range(20):
            r = await c.get("/whoami", headers={"X-Request-ID": f"req-{i}"})
            assert (r.status_code, r.headers["x-served-by"]) == (200, "legacy")
            assert r.json() == {"request_id": f"req-{i}", "shadow": None}
    await eventually(lambda: sink.total == 20, what="20 shadow outcomes")
    budget = [s for s in sink.skips if s["reason"] == "budget"]
    assert len(sink.comparisons) <= 2 and len(budget) >= 18
    assert len(sink.comparisons) + len(budget) == 20
    assert skipped(gw, "budget") == len(budget)
    assert gw.shadow.budget.used > 0  # the shadow that ran was charged, and says so
    used = gw.metrics.registry.get_sample_value("gateway_shadow_cpu_seconds_total")
    assert used == pytest.approx(gw.shadow.budget.used)


async def test_under_budget_every_shadow_runs(make_gateway: MakeGateway) -> None:
    gw, sink = await make_gateway(shadow_cpu_budget=0.05)  # the default budget
    async with asgi_client(gw.dispatcher) as c:
        answers = await asyncio.gather(*(c.get("/whoami") for _ in range(30)))
    assert all(a.status_code == 200 for a in answers)
    await eventually(lambda: sink.total == 30, what="30 shadow outcomes")
    assert len(sink.comparisons) == 30 and not sink.skips
    assert skipped(gw, "budget") == 0
    assert (gw.metrics.registry.get_sample_value("gateway_shadow_cpu_seconds_total") or 0) > 0


async def test_a_write_over_budget_reaches_its_owner_whole_and_runs_no_candidate(
    make_gateway: MakeGateway,
) -> None:
    gw, sink = await make_gateway(shadow_cpu_budget=1e-9)
    gw.shadow.budget.charge(1.0)  # spent before the request comes: not even the inline candidate runs
    async with asgi_client(gw.dispatcher) as c:
        r = await c.post("/echo", content=b"x" * 5000, headers={"X-Request-ID": "late-1"})
    assert (r.status_code, r.headers["x-served-by"]) == (200, "legacy")
    assert r.json()["length"] == 5000 and r.json()["request_id"] == "late-1"
    await eventually(lambda: sink.total == 1, what="the skip")
    assert [(s["route_id"], s["reason"]) for s in sink.skips] == [("echo", "budget")]
    assert not sink.comparisons and not sink.errors
