"""Rollout at run time, without HTTP: what a poll of the store and a guard do to who serves a user."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.asgi import Scope
from gateway.map_schema import Owner
from gateway.metrics import GatewayMetrics
from gateway.reloader import MapHolder
from gateway.rollout.runtime import Rollout
from gateway.rollout.state import RolloutStore, RuntimeState
from gateway.table import Route

pytestmark = pytest.mark.anyio

GUARDED = """\
version: 1
routes:
  - id: guarded
    path: /items
    methods: [GET]
    owner: legacy
    canary: {percent: 50, sticky: ["header:X-User-Id"]}
    guard: {min_samples: 5, max_error_rate: 0.2, window_s: 60}
"""


def user(name: str) -> Scope:
    return {"type": "http", "method": "GET", "path": "/items", "headers": [(b"x-user-id", name.encode())]}


def make_rollout(tmp_path: Path, map_text: str, name: str = "w") -> Rollout:
    map_path = tmp_path / "migration_map.yaml"
    if not map_path.exists():
        map_path.write_text(map_text)
    metrics = GatewayMetrics()
    holder = MapHolder(map_path, metrics)
    holder.load_initial()
    return Rollout(store=RolloutStore(f"sqlite:///{tmp_path}/store.db"), holder=holder, metrics=metrics)


def route_of(rollout: Rollout, path: str = "/items") -> Route:
    assert rollout.holder.table is not None
    return rollout.holder.table.lookup("GET", path)


def canary_users(rollout: Rollout, route: Route) -> list[str]:
    return [f"u{i}" for i in range(100) if rollout.side_for(route, user(f"u{i}"), None) is Owner.NEW]


async def test_a_rollback_the_store_refused_holds_over_polls_and_is_recorded_once_it_can_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The store reads but refuses writes (locked, read-only after a failover): a poll must not
    put the canary users back on the failing new side while nobody lifted the rollback."""
    rollout = make_rollout(tmp_path, GUARDED)
    store = rollout.store
    store.ensure_schema()
    route = route_of(rollout)
    on_new = canary_users(rollout, route)
    assert 30 < len(on_new) < 70
    for _ in range(5):
        rollout.observe(route, Owner.NEW, 500, 1.0)
    real_set_state = store.set_state

    def refused(*args: object, **kwargs: object) -> object:
        raise OSError("database is locked")

    monkeypatch.setattr(store, "set_state", refused)
    with caplog.at_level("ERROR", logger="gateway.rollout"):
        await rollout.check_guards()
    assert "it holds on this worker, and is written when the store takes it" in caplog.text
    assert canary_users(rollout, route) == []
    rollout.stats.clear()  # the window has passed: the guard no longer has failures to judge on
    for _ in range(3):  # polls that read the store, which knows nothing of the rollback
        await rollout.refresh()
        await rollout.record_unrecorded()
        await rollout.check_guards()
    assert canary_users(rollout, route) == []
    assert store.states() == {}
    assert rollout.metrics.registry.get_sample_value("gateway_rollbacks_total", {"route": "guarded"}) == 1

    monkeypatch.setattr(store, "set_state", real_set_state)
    with caplog.at_level("INFO", logger="gateway.rollout"):
        await rollout.record_unrecorded()
    assert "the rollback of guarded is on record now" in caplog.text
    stored = store.states()["guarded"]
    assert (stored.state, stored.actor) == (RuntimeState.ROLLED_BACK, "guard")
    assert stored.reason == "new error rate 100.0 % over 60 s (5 of 5) exceeds 20.0 %"
    await rollout.refresh()
    assert canary_users(rollout, route) == []
    # recorded once: a retry now lifts it, and nothing writes it again
    store.clear("guarded", actor="test")
    await rollout.refresh()
    await rollout.record_unrecorded()
    assert canary_users(rollout, route) == on_new
    assert store.states() == {}


async def test_a_decision_on_record_beats_a_rollback_the_store_has_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout = make_rollout(tmp_path, GUARDED)
    store = rollout.store
    route = route_of(rollout)
    for _ in range(5):
        rollout.observe(route, Owner.NEW, 500, 1.0)
    real_set_state = store.set_state

    def refused(*args: object, **kwargs: object) -> object:
        raise OSError("database is locked")

    monkeypatch.setattr(store, "set_state", refused)
    await rollout.check_guards()
    monkeypatch.setattr(store, "set_state", real_set_state)
    store.set_state("guarded", RuntimeState.PROMOTED, reason="by hand", figures={}, actor="ops")
    await rollout.refresh()
    await rollout.record_unrecorded()
    assert rollout.states["guarded"].state is RuntimeState.PROMOTED
    assert store.states()["guarded"].actor == "ops"
    assert canary_users(rollout, route) == [f"u{i}" for i in range(100)]


RAMP = """\
version: 1
routes:
  - id: ramped
    path: /items
    methods: [GET]
    owner: legacy
    canary: {percent: 50, sticky: ["header:X-User-Id"], steps: [70, 100], step_pause_s: 60}
    guard: {min_samples: 5, max_error_rate: 0.5, window_s: 60}
"""


def sides(rollout: Rollout) -> dict[str, Owner]:
    route = route_of(rollout)
    return {f"u{i}": rollout.side_for(route, user(f"u{i}"), None) for i in range(200)}


async def test_two_workers_take_a_ramp_step_at_the_same_instant(tmp_path: Path) -> None:
    """Worker a takes the step; worker b reads it a poll later. A user whose requests alternate
    between the two must not go new, legacy, new meanwhile: both switch at `switch_at`."""
    a, b = make_rollout(tmp_path, RAMP, "a"), make_rollout(tmp_path, RAMP, "b")
    clock = [1_000_000.0]
    for worker in (a, b):
        worker.clock = lambda: clock[0]
    await a.check_guards()  # the ramp starts at the map's 50 %
    await b.refresh()
    clock[0] = a.states["ramped"].at  # the store's timestamps are wall-clock ones
    at_50 = sides(a)
    assert sides(b) == at_50
    route = route_of(a)
    for _ in range(5):
        a.observe(route, Owner.NEW, 200, 1.0)
    clock[0] += 61
    await a.check_guards()  # the pause is over and the guard is ok: a takes the step to 70 %
    step = a.states["ramped"]
    assert (step.figures["percent"], step.figures["from_percent"]) == (70, 50)
    assert step.figures["switch_at"] == clock[0] + a.switch_delay == clock[0] + 3
    assert sides(a) == sides(b) == at_50  # b has not polled yet, and a waits for it
    await b.refresh()
    clock[0] = step.figures["switch_at"] - 0.001
    assert sides(a) == sides(b) == at_50
    clock[0] = step.figures["switch_at"]
    at_70 = sides(a)
    assert sides(b) == at_70
    assert {u for u, s in at_50.items() if s is Owner.NEW} < {u for u, s in at_70.items() if s is Owner.NEW}

    # the pause before the next step counts from the switch, and the promotion switches alike
    for _ in range(5):
        a.observe(route, Owner.NEW, 200, 1.0)
    clock[0] += 59
    await a.check_guards()
    assert a.states["ramped"].figures["percent"] == 70
    clock[0] += 2
    await a.check_guards()
    assert a.states["ramped"].figures["percent"] == 100
    await b.refresh()
    assert sides(a) == sides(b) == at_70
    clock[0] += 61 + 3
    for _ in range(5):
        a.observe(route, Owner.NEW, 200, 1.0)
    await a.check_guards()
    promoted = a.states["ramped"]
    assert promoted.state is RuntimeState.PROMOTED and promoted.figures["from_percent"] == 100
    await b.refresh()
    assert set(sides(a).values()) == set(sides(b).values()) == {Owner.NEW}
