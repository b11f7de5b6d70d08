"""Shadows must not hurt client requests: over their CPU budget they are skipped and counted."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.asgi import ASGIApp, Message, Receive, Scope, Send
from gateway.logs import ACCESS_LOGGER
from gateway.map_schema import DEFAULT_SHADOW, Owner, ShadowSettings, Unsafe, merge_shadow
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from gateway.shadow import ShadowRunner
from gateway.shadow_budget import CpuBudget
from gateway.table import Route
from tests.shadow.sink import MemorySink
from tests.support import ProcessCpu, asgi_client, eventually

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


async def test_a_shadow_skipped_for_the_budget_is_logged_with_its_answer_not_parked(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the dispatcher asks the budget before the shadow runner: a skip takes the plain path,
    # and its access-log line is written with the answer, the skip in it
    monkeypatch.setattr(logging.getLogger(ACCESS_LOGGER), "propagate", True)
    gw, sink = await make_gateway(shadow_cpu_budget=1e-9)
    gw.shadow.budget.charge(1.0)  # spent: every shadow from here on is skipped

    async def not_called(*args: object) -> None:
        raise AssertionError("a skipped shadow never reaches the runner's handle")

    monkeypatch.setattr(gw.shadow, "handle", not_called)
    assert gw.access_log is not None
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        async with asgi_client(gw.dispatcher) as c:
            r = await c.get("/whoami", headers={"X-Request-ID": "over-1"})
            assert (r.status_code, r.headers["x-served-by"]) == (200, "legacy")
            assert gw.access_log.parked == 0
            gw.access_log.flush()
    [line] = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == ACCESS_LOGGER]
    assert (line["request_id"], line["status"], line["shadow"]) == ("over-1", 200, "skipped:budget")
    assert sink.skips == [{"route_id": "whoami", "reason": "budget"}] and not sink.comparisons
    assert skipped(gw, "budget") == 1


async def test_the_burst_setting_sizes_the_budgets_bucket(make_gateway: MakeGateway) -> None:
    gw, _ = await make_gateway(shadow_cpu_budget=0.5, shadow_cpu_burst_ms=20)
    assert gw.shadow.budget.capacity == pytest.approx(0.02)
    gw, _ = await make_gateway(shadow_cpu_budget=0.01, shadow_cpu_burst_ms=20)
    assert gw.shadow.budget.capacity == pytest.approx(0.01)  # never more than a second's share


async def test_under_budget_every_shadow_runs(make_gateway: MakeGateway) -> None:
    # the default share, a bucket that holds a second of it (30 shadows at once) and no
    # ceiling: the test process itself is busy sending the requests
    gw, sink = await make_gateway(shadow_cpu_budget=0.05, shadow_cpu_ceiling=64, shadow_cpu_burst_ms=50)
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


# What is charged: the runner on its own, with apps of the test's making and a budget on a
# fake clock that ticks a microsecond at every reading (any timed step costs something) and
# that an app moves on to stand for the time it holds the loop.

TICK = 1e-6


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += TICK
        return self.now


def answering(clock: Clock | None = None, holds: float = 0.0, *, busy: bool = False) -> ASGIApp:
    """An app that reads the request and answers `ok`, holding the loop `holds` seconds first:
    on the fake clock, or (busy) really, in a loop on the real one."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await asyncio.sleep(0)  # a step of its own, then the one that holds the loop
        if busy:
            deadline = time.perf_counter() + holds
            while time.perf_counter() < deadline:
                pass
        elif clock is not None:
            clock.now += holds
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def runner_with(
    candidate: ASGIApp, budget: CpuBudget, *, concurrency: int = 1, timeout_ms: int = 2000
) -> tuple[ShadowRunner, MemorySink, Route]:
    sink = MemorySink()
    # the candidate is the native side: the owner (legacy) is the app handed to handle
    runner = ShadowRunner(
        native=candidate, legacy=answering(), sink=sink, metrics=GatewayMetrics(), concurrency=concurrency
    )
    runner.budget = budget
    rules = merge_shadow(
        DEFAULT_SHADOW,
        ShadowSettings(sample=1.0, noise_sample=0, timeout_ms=timeout_ms, unsafe=Unsafe.ROLLBACK),
    )
    route = Route(id="r", owner=Owner.LEGACY, path="/r", methods=("GET", "POST"), shadow=rules)
    await runner.start()
    return runner, sink, route


async def shadowed(runner: ShadowRunner, route: Route, owner_app: ASGIApp, method: str = "GET") -> list[Message]:
    scope: Scope = {"type": "http", "method": method, "path": "/r", "query_string": b"", "headers": []}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await runner.handle(scope, receive, send, route, owner_app, Owner.LEGACY)
    return sent


def cpu_counter(runner: ShadowRunner) -> float:
    return runner.metrics.registry.get_sample_value("gateway_shadow_cpu_seconds_total") or 0.0


async def test_the_hand_off_on_the_request_path_is_charged_but_not_the_owner_s_run() -> None:
    clock = Clock()
    # no worker: the job stays queued, so all that is charged is what handle did
    runner, _, route = await runner_with(answering(), CpuBudget(0.5, clock=clock, burst=1.0), concurrency=0)
    sent = await shadowed(runner, route, answering(clock, holds=10.0))  # the owner holds the loop 10 s
    assert [m.get("body") for m in sent] == [None, b"ok"]
    assert runner.queued == 1
    # a tick or so for each: the read, the copy, the capture of both messages, the hand-off;
    # never the owner's 10 s
    assert 3 * TICK < runner.budget.used < 1e-3
    await runner.stop(0)


async def test_a_budget_the_hand_off_alone_spends_skips_the_next_shadow() -> None:
    clock = Clock()
    runner, sink, route = await runner_with(answering(), CpuBudget(1e-9, clock=clock), concurrency=0)
    await shadowed(runner, route, answering())
    assert runner.budget.used > 1e-9 and not sink.skips  # no candidate ran, yet the budget is spent
    sent = await shadowed(runner, route, answering())
    assert [m.get("body") for m in sent] == [None, b"ok"]  # the client still gets the owner's answer
    assert [s["reason"] for s in sink.skips] == ["budget"] and runner.queued == 1
    await runner.stop(0)


async def test_shadows_yield_to_a_busy_gateway_and_run_again_once_it_has_headroom() -> None:
    clock = Clock()
    cpu = ProcessCpu(clock, busy=0.9)
    budget = CpuBudget(0.05, clock=clock, ceiling=0.75, floor=0.0, cpu_clock=cpu)
    runner, sink, route = await runner_with(answering(), budget, concurrency=0)
    budget.charge(budget.capacity)  # empty: from here on it fills at the rate the process leaves
    clock.now += 0.5  # the gateway at 0.9 of a core, over its 0.75 ceiling
    sent = await shadowed(runner, route, answering())
    assert [m.get("body") for m in sent] == [None, b"ok"]  # the client gets the owner's answer
    assert [s["reason"] for s in sink.skips] == ["budget"] and runner.queued == 0
    assert budget.rate == 0.0
    cpu.busy = 0.3  # the load eases: 0.45 of a core of headroom, more than the 0.05 share
    clock.now += 0.5
    await shadowed(runner, route, answering())
    assert budget.rate == 0.05 and runner.queued == 1 and len(sink.skips) == 1
    await runner.stop(0)


async def test_the_candidate_is_charged_once_with_all_of_its_job() -> None:
    clock = Clock()
    runner, sink, route = await runner_with(answering(clock, holds=0.02), CpuBudget(0.5, clock=clock, burst=1.0))
    await shadowed(runner, route, answering())
    await runner.drain()
    assert len(sink.comparisons) == 1 and not sink.errors
    # the candidate's 20 ms (counted twice: 40 ms; run out of the meter's sight: 0) and the ticks
    # of everything else, the hand-off, the copies, the comparison, its record
    assert 0.02 < runner.budget.used < 0.0205
    assert cpu_counter(runner) == pytest.approx(runner.budget.used)
    await runner.stop(1)


async def test_the_inline_candidate_of_a_write_is_charged_once() -> None:
    clock = Clock()
    runner, sink, route = await runner_with(answering(clock, holds=0.02), CpuBudget(0.5, clock=clock, burst=1.0))
    await shadowed(runner, route, answering(), method="POST")  # the candidate runs before the owner
    await runner.drain()
    assert len(sink.comparisons) == 1 and not sink.errors
    assert 0.02 < runner.budget.used < 0.0205
    await runner.stop(1)


async def test_a_candidate_holding_the_real_loop_20_ms_is_charged_about_that() -> None:
    runner, sink, route = await runner_with(answering(holds=0.02, busy=True), CpuBudget(0.5))
    await shadowed(runner, route, answering())
    await runner.drain()
    assert len(sink.comparisons) == 1
    assert 0.02 <= runner.budget.used < 0.04  # twice would be 40 ms
    assert cpu_counter(runner) == pytest.approx(runner.budget.used)
    await runner.stop(1)


async def test_a_candidate_past_its_timeout_is_an_error_and_what_it_ran_is_charged() -> None:
    clock = Clock()

    async def hangs(scope: Scope, receive: Receive, send: Send) -> None:
        clock.now += 0.003
        await asyncio.Event().wait()

    runner, sink, route = await runner_with(hangs, CpuBudget(0.5, clock=clock, burst=1.0), timeout_ms=50)
    await shadowed(runner, route, answering())
    await runner.drain()
    assert [e["error"] for e in sink.errors] == ["timeout after 50 ms"] and not sink.comparisons
    assert 0.003 < runner.budget.used < 0.0035
    await runner.stop(1)
