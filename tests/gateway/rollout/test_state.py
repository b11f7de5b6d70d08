"""The rollout store on SQLite and PostgreSQL: states, retries, the audit log, concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.rollout.state import AuditKind, RolloutStore, RouteState, RuntimeState

WORKERS = 8


@pytest.fixture
def store(db_url: str) -> Iterator[RolloutStore]:
    s = RolloutStore(db_url)
    yield s
    s.dispose()


def rollback(store: RolloutStore, route_id: str = "users.get", reason: str = "error rate 0.5 > 0.2") -> RouteState:
    figures = {"new_requests": 12, "error_rate": 0.5, "p99_ratio": float("inf")}
    return store.set_state(
        route_id, RuntimeState.ROLLED_BACK, reason=reason, figures=figures, actor="guard", map_sha256="a" * 64
    )


def test_states_follow_set_and_clear(store: RolloutStore) -> None:
    assert store.states() == {}
    rolled = rollback(store)
    promoted = store.set_state("orders.list", RuntimeState.PROMOTED, reason="", figures={}, actor="alice")
    states = store.states()
    assert states == {"users.get": rolled, "orders.list": promoted}
    got = states["users.get"]
    assert got.state is RuntimeState.ROLLED_BACK and got.actor == "guard" and got.map_sha256 == "a" * 64
    assert got.figures == {"new_requests": 12, "error_rate": 0.5, "p99_ratio": None}  # JSON has no infinity
    assert store.state("users.get") == got and store.state("nope") is None
    assert store.clear("users.get", actor="bob", reason="fixed in 1.4.2") is True
    assert store.clear("users.get", actor="bob") is False  # nothing left to retry
    assert set(store.states()) == {"orders.list"}


def test_every_change_is_audited_newest_first(store: RolloutStore) -> None:
    rollback(store)
    store.set_state("users.get", RuntimeState.ABORTED, reason="pager", figures={}, actor="alice")
    store.clear("users.get", actor="bob", reason="fixed")
    store.set_state("orders.list", RuntimeState.PROMOTED, reason="done", figures={}, actor="carol")
    entries = store.audit_entries()
    kinds = [(e.kind, e.route_id, e.actor) for e in entries]
    assert kinds == [
        (AuditKind.PROMOTE, "orders.list", "carol"),
        (AuditKind.RETRY, "users.get", "bob"),
        (AuditKind.ABORT, "users.get", "alice"),
        (AuditKind.ROLLBACK, "users.get", "guard"),
    ]
    assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)
    promote, retry, abort, rolled = entries
    assert rolled.summary == "users.get rolled back to legacy by guard: error rate 0.5 > 0.2"
    assert rolled.details["figures"]["new_requests"] == 12 and rolled.details["previous"] is None
    assert abort.summary == "users.get aborted by alice: legacy serves it (pager)"
    assert abort.details["previous"]["state"] == "rolled_back"  # what the person replaced
    assert retry.summary == "users.get retried by bob: it follows the map again (was aborted: pager); fixed"
    assert retry.details["previous"]["actor"] == "alice"
    assert "the new side serves every request" in promote.summary
    assert [e.kind for e in store.audit_entries(route_id="users.get", limit=2)] == [AuditKind.RETRY, AuditKind.ABORT]
    assert store.audit_entries(route_id="nope") == []


def test_a_rollback_never_replaces_a_state_already_there(store: RolloutStore) -> None:
    first = rollback(store, reason="error rate 0.5 > 0.2")
    again = rollback(store, reason="error rate 0.9 > 0.2")
    assert again == first  # the existing decision, untouched
    store.set_state("orders.list", RuntimeState.PROMOTED, reason="", figures={}, actor="alice")
    kept = rollback(store, "orders.list")
    assert kept.state is RuntimeState.PROMOTED and kept.actor == "alice"  # a person's decision stands
    assert [e.kind for e in store.audit_entries()] == [AuditKind.PROMOTE, AuditKind.ROLLBACK]


def race(db_url: str, action: Callable[[RolloutStore], Any]) -> list[Any]:
    """`action` run at once by WORKERS threads, each with a store of its own (as worker processes have)."""
    stores = [RolloutStore(db_url) for _ in range(WORKERS)]
    for s in stores:
        s.ensure_schema()  # connected and ready, so the threads really meet at the barrier
    barrier = threading.Barrier(WORKERS)
    results: list[Any] = [None] * WORKERS
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = action(stores[i])
        except BaseException as exc:  # collected and re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for s in stores:
        s.dispose()
    assert not errors, errors
    return results


def test_concurrent_rollbacks_of_one_breach_leave_one_state_and_one_entry(db_url: str) -> None:
    results = race(db_url, lambda s: rollback(s, reason=f"breach seen by {threading.get_ident()}"))
    store = RolloutStore(db_url)
    (state,) = store.states().values()
    assert all(r == state for r in results)  # every worker is told the one decision on record
    (entry,) = store.audit_entries()
    assert entry.kind is AuditKind.ROLLBACK and entry.summary.endswith(state.reason)
    store.dispose()


def test_concurrent_retries_record_one_retry(db_url: str) -> None:
    store = RolloutStore(db_url)
    rollback(store)
    results = race(db_url, lambda s: s.clear("users.get", actor="ops"))
    assert sorted(results) == [False] * (WORKERS - 1) + [True]
    assert [e.kind for e in store.audit_entries()] == [AuditKind.RETRY, AuditKind.ROLLBACK]
    store.dispose()


def test_reading_a_store_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    store = RolloutStore(f"sqlite:///{tmp_path}/store.db")
    assert store.states() == {} and store.audit_entries() == [] and store.state("x") is None
    assert store.clear("x", actor="ops") is False
    assert not (tmp_path / "store.db").exists()
    rollback(store)
    assert (tmp_path / "store.db").exists() and set(store.states()) == {"users.get"}
