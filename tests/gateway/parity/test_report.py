"""Reports read back from the store: match rate, real and noise fields, latency percentiles."""

from __future__ import annotations

import math

import pytest

from gateway.exchange import DiffKind, Side
from gateway.parity import latency
from gateway.parity.report import open_store, samples, summaries
from gateway.parity.store import StoreError
from tests.gateway.parity.support import compare_once, diff, recorder

pytestmark = pytest.mark.anyio

STAMP = diff("body.updated_at", DiffKind.VALUE)
PRICE = diff("body.price", DiffKind.TYPE, "10", '"10"')


async def test_match_rate_counts_noise_only_comparisons_as_matched(db_url: str) -> None:
    rec = recorder(db_url)
    for _ in range(90):
        compare_once(rec)
    for _ in range(6):
        compare_once(rec, diffs=(STAMP,))
    for _ in range(3):
        compare_once(rec, diffs=(PRICE,))
    compare_once(rec, diffs=(STAMP, PRICE))  # one noisy field does not excuse a real one
    rec.record_candidate_error(route_id="items.get", owner_side=Side.LEGACY, error="500", owner_ms=1, candidate_ms=2)
    assert await rec.flush()
    engine = open_store(db_url)

    before = summaries(engine)["items.get"]  # no noise runs yet: the timestamp looks real too
    assert (before.compared, before.mismatched, before.matched) == (100, 10, 90)

    for _ in range(10):  # the owner against itself: the timestamp differs every time
        rec.record_noise(route_id="items.get", diffs=(STAMP,))
    rec.record_noise(route_id="items.get", diffs=())
    assert await rec.flush()
    s = summaries(engine)["items.get"]
    assert (s.compared, s.exact_matches, s.noise_runs, s.candidate_errors) == (100, 90, 11, 1)
    assert (s.matched, s.mismatched) == (96, 4)
    assert s.match_rate == pytest.approx(0.96)
    assert s.samples == 101
    assert s.mismatch_rate == pytest.approx(5 / 101)  # mismatches and candidate errors
    doc = s.as_json()
    assert [(f["path"], f["kind"], f["count"]) for f in doc["top_fields"]] == [("body.price", "type", 4)]
    assert [(f["path"], f["verdict"]) for f in doc["noise_fields"]] == [("body.updated_at", "noise")]
    assert doc["noise_fields"][0]["noise_rate"] == pytest.approx(10 / 11)
    assert {g.fields: (g.n, g.real) for g in s.signatures} == {
        (("body.updated_at", "value"),): (6, False),
        (("body.price", "type"),): (3, True),
        (("body.price", "type"), ("body.updated_at", "value")): (1, True),
    }
    stored = samples(engine, "items.get")
    assert len(stored) == 5 + 3 + 1  # 5 of the timestamp (the cap), 3 + 1 with the price
    newest = stored[0]  # newest first: the comparison with both fields
    assert [d["path"] for d in newest.differences] == ["body.updated_at", "body.price"]
    assert newest.owner_side is Side.LEGACY and newest.request["path"] == "/api/items/1"


async def test_percentiles_come_from_the_stored_histograms(db_url: str) -> None:
    rec = recorder(db_url)
    for ms in range(1, 201):  # legacy 1..200 ms, new twice as slow
        compare_once(rec, owner_ms=float(ms), candidate_ms=2.0 * ms)
    assert await rec.flush()
    s = summaries(open_store(db_url))["items.get"]
    assert s.percentile(Side.LEGACY, 0.50) == pytest.approx(100, rel=0.05)
    assert s.percentile(Side.LEGACY, 0.95) == pytest.approx(190, rel=0.05)
    assert s.percentile(Side.NEW, 0.95) == pytest.approx(380, rel=0.05)
    assert s.as_json()["latency_ms"]["new"]["count"] == 200


async def test_only_the_routes_asked_for_are_read_and_always_present(db_url: str) -> None:
    rec = recorder(db_url)
    compare_once(rec, "a")
    compare_once(rec, "b")
    rec.record_skip(route_id="c", reason="request_too_large")
    assert await rec.flush()
    engine = open_store(db_url)
    assert list(summaries(engine)) == ["a", "b", "c"]
    picked = summaries(engine, ["b", "nothing"])
    assert list(picked) == ["b", "nothing"]
    assert picked["b"].compared == 1 and not picked["nothing"].has_data
    assert summaries(engine)["c"].skipped == {"request_too_large": 1}


def test_a_store_that_does_not_exist_is_an_error_not_an_empty_report(tmp_path: object, pg_url: str) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/missing.db")
    with pytest.raises(StoreError, match="holds no parity store tables"):
        open_store(pg_url)
    with pytest.raises(StoreError, match="cannot read"):
        open_store("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="SQLite or PostgreSQL"):
        open_store("mysql://x@localhost/db")


def test_latency_buckets_are_log_spaced_and_bounded() -> None:
    assert latency.bucket(0.1) == 0 and latency.bucket(float("nan")) == 0
    assert latency.bucket(10 * 60_000) == latency.LAST == latency.bucket(60_000)
    assert latency.LAST < 200
    indices = [latency.bucket(ms / 10) for ms in range(5, 600_000, 37)]
    assert indices == sorted(indices)
    for ms in (0.7, 3.3, 42.0, 512.0, 9_999.0, 59_000.0):
        assert math.isclose(latency.value(latency.bucket(ms)), ms, rel_tol=0.04)
    assert latency.percentile({}, 0.5) is None
    assert latency.percentile({3: 1, 10: 1}, 0.5) == latency.value(3)
    assert latency.percentile({3: 1, 10: 1}, 1.0) == latency.value(10)
