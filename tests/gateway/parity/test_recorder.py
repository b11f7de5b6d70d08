"""The recorder and the store it writes, on SQLite and on PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.compare import signature
from gateway.db import Database
from gateway.exchange import DiffKind, Side
from gateway.parity import latency, schema
from gateway.parity.store import ParityStore
from tests.gateway.parity.support import compare_once, diff, recorder, route_row, table_rows
from tests.support import eventually

pytestmark = pytest.mark.anyio


def count_statements(store: ParityStore) -> dict[str, int]:
    seen = {"execute": 0, "commit": 0}

    def executed(sql: str) -> None:
        seen["commit" if sql == "COMMIT" else "execute"] += 1

    store.db.hooks.append(executed)
    return seen


async def test_recording_touches_no_database_until_a_flush(db_url: str) -> None:
    rec = recorder(db_url)
    seen = count_statements(rec.store)
    for i in range(50):
        compare_once(rec, diffs=(diff("body.price"),) if i % 2 else ())
    rec.record_noise(route_id="items.get", diffs=(diff("body.at"),))
    rec.record_candidate_error(route_id="items.get", owner_side=Side.LEGACY, error="boom", owner_ms=3, candidate_ms=None)
    rec.record_skip(route_id="items.get", reason="queue_full")
    assert seen == {"execute": 0, "commit": 0}
    assert route_row(db_url) is None
    assert await rec.flush() is True
    row = route_row(db_url)
    assert row is not None
    assert (row["compared"], row["exact_matches"], row["candidate_errors"], row["noise_runs"]) == (50, 25, 1, 1)
    assert table_rows(db_url, schema.skips) == [{"route_id": "items.get", "reason": "queue_full", "n": 1}]
    fields = {(r["path"], r["kind"]): (r["candidate_n"], r["noise_n"]) for r in table_rows(db_url, schema.fields)}
    assert fields == {("body.price", "value"): (25, 0), ("body.at", "value"): (0, 1)}
    [signature] = table_rows(db_url, schema.signatures)
    assert (signature["n"], signature["fields"]) == (25, '[["body.price","value"]]')


async def test_a_flush_is_one_transaction_whatever_the_number_of_records(db_url: str) -> None:
    rec = recorder(db_url, samples_per_signature=1)
    rec.store.ensure_schema()
    seen = count_statements(rec.store)
    for i in range(2000):
        compare_once(rec, f"route.{i % 5}", (diff(f"body.f{i % 7}"),), owner_ms=i % 300, candidate_ms=i % 200)
    assert await rec.flush()
    assert seen["commit"] == 1
    # one statement per table (executemany), a few for samples and retention: not one per record
    assert seen["execute"] < 60
    assert sum(r["compared"] for r in table_rows(db_url, schema.routes)) == 2000


async def test_counts_from_two_recorders_add_up_in_one_store(db_url: str) -> None:
    first, second = recorder(db_url), recorder(db_url)
    for rec, ms in ((first, 2.0), (second, 40.0)):
        for _ in range(3):
            compare_once(rec, diffs=(diff("body.price"),), owner_ms=ms, candidate_ms=ms)
        compare_once(rec, owner_ms=ms, candidate_ms=ms)
        rec.record_skip(route_id="items.get", reason="timeout")
    # concurrently: on PostgreSQL both upsert the same rows at the same time
    assert await asyncio.gather(first.flush(), second.flush()) == [True, True]
    row = route_row(db_url)
    assert row is not None and (row["compared"], row["exact_matches"]) == (8, 2)
    assert [r["n"] for r in table_rows(db_url, schema.skips)] == [2]
    assert [r["candidate_n"] for r in table_rows(db_url, schema.fields)] == [6]
    assert [r["n"] for r in table_rows(db_url, schema.signatures)] == [6]
    hist = {(r["side"], r["bucket"]): r["n"] for r in table_rows(db_url, schema.latency)}
    assert hist == {
        (side, latency.bucket(ms)): 4 for side in ("legacy", "new") for ms in (2.0, 40.0)
    }


async def test_samples_are_capped_per_signature_even_when_a_recorder_does_not_know(db_url: str) -> None:
    rec = recorder(db_url, samples_per_signature=2)
    for _ in range(5):
        compare_once(rec, diffs=(diff("body.a"),))
    for _ in range(3):
        compare_once(rec, diffs=(diff("body.b"),))
    compare_once(rec)  # an exact match never makes a sample
    assert rec.pending_samples == 4  # the cap applies before anything is kept in memory
    assert await rec.flush()
    per_signature = [r["signature"] for r in table_rows(db_url, schema.samples)]
    assert sorted(per_signature.count(s) for s in set(per_signature)) == [2, 2]

    # another instance that has not read the store's counts yet: the store still keeps 2 per signature
    fresh = recorder(db_url, samples_per_signature=2)
    for _ in range(3):
        compare_once(fresh, diffs=(diff("body.a"),))
    assert fresh.pending_samples == 2
    assert await fresh.flush()
    assert len(table_rows(db_url, schema.samples)) == 4
    # one that has: it keeps no sample of a full signature in memory at all
    informed = recorder(db_url, samples_per_signature=2)
    assert await informed.load_sample_counts()
    compare_once(informed, diffs=(diff("body.a"),))
    compare_once(informed, diffs=(diff("body.c"),))
    assert informed.pending_samples == 1


async def test_retention_keeps_the_newest_samples_and_none_too_old(db_url: str) -> None:
    now = [time.time() - 30 * 86_400]  # a month ago
    rec = recorder(db_url, max_samples=3, retention_days=14, retention_interval=0, clock=lambda: now[0])
    for i in range(2):
        compare_once(rec, diffs=(diff(f"body.old{i}"),))
    assert await rec.flush()
    assert len(table_rows(db_url, schema.samples)) == 2  # not old yet, by the clock of then
    now[0] = time.time()
    for i in range(5):
        compare_once(rec, diffs=(diff(f"body.new{i}"),))
    assert await rec.flush()
    kept = sorted(r["signature"] for r in table_rows(db_url, schema.samples))
    assert kept == sorted(signature((diff(f"body.new{i}"),)) for i in (2, 3, 4))
    # counters are not samples: nothing of them is lost to retention
    row = route_row(db_url)
    assert row is not None and row["compared"] == 7


async def test_the_background_flusher_writes_on_its_own_and_stop_flushes_the_rest(db_url: str) -> None:
    rec = recorder(db_url, flush_interval=0.05)
    await rec.start()
    try:
        compare_once(rec)
        await eventually(lambda: (route_row(db_url) or {}).get("compared") == 1, what="a background flush")
        compare_once(rec)
    finally:
        await rec.stop(timeout=5)
    row = route_row(db_url)
    assert row is not None and row["compared"] == 2


async def test_an_idle_recorder_never_creates_its_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/parity.db"
    rec = recorder(url, flush_interval=0.01)
    await rec.start()
    assert await rec.flush() is True
    await rec.stop()
    assert not (tmp_path / "parity.db").exists()


async def test_stop_is_bounded_when_the_store_hangs(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()

    class HangingStore(ParityStore):
        def write(self, *args: object, **kwargs: object) -> None:
            release.wait(10)
            raise RuntimeError("gave up")

    rec = recorder(sqlite_url, flush_interval=60)
    rec.store = HangingStore(sqlite_url)
    await rec.start()
    compare_once(rec)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "gateway.parity"):
        await rec.stop(timeout=0.3)
    assert time.monotonic() - started < 3
    assert "did not finish within 0.3 s" in caplog.text
    release.set()


# --- outages --------------------------------------------------------------------------------


async def test_an_unreachable_store_never_stops_recording_and_memory_stays_bounded(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    rec = recorder(
        "postgresql://postgres@127.0.0.1:1/none", max_pending_samples=10, max_pending_keys=200
    )
    accepted = 0
    with caplog.at_level(logging.WARNING, "gateway.parity"):
        for round_ in range(3):
            for i in range(300):
                compare_once(rec, diffs=(diff(f"body.r{round_}x{i}"),))
                compare_once(rec)
                accepted += 2
            assert await rec.flush() is False
            assert rec.pending_samples <= 10 and rec.pending_keys <= 200
    warnings = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per flush
    assert rec.dropped > 0 and rec.dropped_comparisons > 0 and rec.failed_flushes == 3

    rec.store = ParityStore(db_url)  # the store is back (here: somewhere else)
    with caplog.at_level(logging.WARNING, "gateway.parity"):
        assert await rec.flush() is True
    assert "reachable again" in caplog.text
    row = route_row(db_url)
    assert row is not None
    # every comparison kept is whole: its signature and fields were written with it
    assert row["compared"] == accepted - rec.dropped_comparisons
    signatures = table_rows(db_url, schema.signatures)
    assert row["exact_matches"] + sum(s["n"] for s in signatures) == row["compared"]
    assert len(table_rows(db_url, schema.samples)) == 10


@pytest.fixture(params=["sqlite", "postgres"])
def late_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """A store URL that does not work yet, and the function that makes it work."""
    if request.param == "sqlite":
        folder = tmp_path / "later"
        yield f"sqlite:///{folder}/parity.db", lambda: folder.mkdir()
        return
    base = str(request.getfixturevalue("pg_base_url"))
    schema_name = f"t_late_{uuid.uuid4().hex[:10]}"
    admin = Database(base)

    def create() -> None:
        with admin.begin() as conn:
            conn.execute(f'CREATE SCHEMA "{schema_name}"')

    yield f"{base}?options=-csearch_path%3D{schema_name}", create
    with admin.begin() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema_name}" CASCADE')
    admin.dispose()


async def test_counters_recorded_during_an_outage_land_when_the_store_comes_back(
    late_store: tuple[str, Callable[[], None]],
) -> None:
    url, make_available = late_store
    rec = recorder(url)
    compare_once(rec, diffs=(diff("body.price", DiffKind.TYPE),))
    rec.record_skip(route_id="items.get", reason="timeout")
    assert await rec.flush() is False
    compare_once(rec)
    assert await rec.flush() is False
    make_available()
    compare_once(rec)
    assert await rec.flush() is True
    row = route_row(url)
    assert row is not None and (row["compared"], row["exact_matches"]) == (3, 2)
    assert [r["n"] for r in table_rows(url, schema.skips)] == [1]
    assert len(table_rows(url, schema.samples)) == 1
