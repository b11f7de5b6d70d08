"""Shadow traffic in-process: what the client gets, and what the runner finds and reports."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from flask.testing import FlaskClient

from gateway.compare import classify
from gateway.exchange import DiffKind
from legacy_flask import create_app as create_legacy
from tests.shadow.conftest import MakeGateway
from tests.shadow.sink import MemorySink
from tests.support import asgi_client, eventually

pytestmark = pytest.mark.anyio

DEMO_MAP = """\
version: 1
defaults:
  shadow: {noise_sample: 0}
routes:
  - id: products.get
    path: /api/products/<int:product_id>
    methods: [GET]
    owner: legacy
    shadow: {sample: 1.0}
  - id: users.create
    path: /api/users
    methods: [POST]
    owner: legacy
    shadow: {sample: 1.0, unsafe: rollback, ignore: [body.created_at, body.updated_at]}
"""

FIXTURE_MAP = """\
version: 1
routes:
  - {id: token, path: /token, methods: [GET], owner: legacy, shadow: {sample: 1.0, noise_sample: 1.0}}
  - {id: whoami, path: /whoami, methods: [GET], owner: legacy, shadow: {sample: 1.0}}
"""

async def drained(sink: MemorySink, count: int) -> None:
    await eventually(lambda: sink.total >= count, timeout=10, what=f"{count} shadow results")


def legacy_direct(url: str) -> FlaskClient:
    return create_legacy({"DATABASE_URL": url, "SECRET_KEY": "shadow-secret"}).test_client()


async def test_divergences_are_found_by_path_and_kind_and_the_client_gets_the_owner_answer(
    demo_db: str, make_gateway: MakeGateway
) -> None:
    gw, sink = await make_gateway(DEMO_MAP, native_app="tests.shadow.divergent_native:create_app")
    async with asgi_client(gw.dispatcher) as c:
        answers = {pid: await c.get(f"/api/products/{pid}") for pid in (3, 7)}
    direct = legacy_direct(demo_db)
    for pid, answer in answers.items():
        expected = direct.get(f"/api/products/{pid}")
        assert (answer.status_code, answer.content) == (expected.status_code, expected.data)
        assert answer.headers["x-served-by"] == "legacy"
    await drained(sink, 2)
    by_path = {c["request"].path: {(d.path, d.kind) for d in c["diffs"]} for c in sink.comparisons}
    renamed_and_rounded = by_path["/api/products/3"]
    assert ("body.name", DiffKind.MISSING) in renamed_and_rounded
    assert ("body.title", DiffKind.EXTRA) in renamed_and_rounded
    price = float(answers[3].json()["price"])
    if round(price, 1) != price:
        assert ("body.price", DiffKind.VALUE) in renamed_and_rounded
    assert by_path["/api/products/7"] >= {("status", DiffKind.STATUS)}
    assert all(c["owner_side"] == "legacy" and c["candidate_ms"] > 0 for c in sink.comparisons)


async def test_fixed_candidate_matches(demo_db: str, make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIVERGENT_NATIVE_FIXED", "1")
    gw, sink = await make_gateway(DEMO_MAP, native_app="tests.shadow.divergent_native:create_app")
    async with asgi_client(gw.dispatcher) as c:
        for pid in (2, 3, 7):
            assert (await c.get(f"/api/products/{pid}")).status_code == 200
    await drained(sink, 3)
    assert [c["diffs"] for c in sink.comparisons] == [(), (), ()]


async def test_a_field_differing_on_every_call_is_learnt_as_noise(make_gateway: MakeGateway) -> None:
    gw, sink = await make_gateway(FIXTURE_MAP, legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
                                  native_app="tests.gateway.wsgi_fixtures:native_app")
    async with asgi_client(gw.dispatcher) as c:
        for _ in range(20):
            assert (await c.get("/token")).status_code == 200
    await drained(sink, 20)
    await eventually(lambda: len(sink.noise) == 20, what="owner reruns")
    fields: dict[tuple[str, DiffKind], int] = {}
    for comparison in sink.comparisons:
        for d in comparison["diffs"]:
            fields[(d.path, d.kind)] = fields.get((d.path, d.kind), 0) + 1
    noise: dict[tuple[str, DiffKind], int] = {}
    for run in sink.noise:
        for d in run["diffs"]:
            noise[(d.path, d.kind)] = noise.get((d.path, d.kind), 0) + 1
    assert fields == {("body.token", DiffKind.VALUE): 20}
    verdicts = classify(fields, 20, noise, 20)
    assert verdicts.noise == {("body.token", DiffKind.VALUE)} and not verdicts.real


async def test_both_sides_see_one_request_id_and_only_the_copy_is_marked(make_gateway: MakeGateway) -> None:
    gw, sink = await make_gateway(FIXTURE_MAP, legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
                                  native_app="tests.gateway.wsgi_fixtures:native_app")
    async with asgi_client(gw.dispatcher) as c:
        # a client cannot pretend to be a shadow
        r = await c.get("/whoami", headers={"X-Request-ID": "same-1", "X-Gateway-Shadow": "rollback"})
    assert r.json() == {"request_id": "same-1", "shadow": None}
    await drained(sink, 1)
    (comparison,) = sink.comparisons
    assert {(d.path, d.owner, d.candidate) for d in comparison["diffs"]} == {("body.shadow", "null", '"copy"')}


async def test_a_raising_candidate_never_reaches_the_client(
    demo_db: str, make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIVERGENT_NATIVE_RAISE", "1")
    gw, sink = await make_gateway(DEMO_MAP, native_app="tests.shadow.divergent_native:create_app")
    async with asgi_client(gw.dispatcher) as c:
        r = await c.get("/api/products/3")
    assert (r.status_code, r.headers["x-served-by"]) == (200, "legacy")
    assert r.json()["id"] == 3
    await drained(sink, 1)
    assert "the new code is broken" in sink.errors[0]["error"]


async def test_a_full_queue_skips_and_counts_and_stays_bounded(
    demo_db: str, make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIVERGENT_NATIVE_SLOW", "0.3")
    gw, sink = await make_gateway(DEMO_MAP, native_app="tests.shadow.divergent_native:create_app",
                                  shadow_concurrency=1, shadow_queue_size=2)
    assert gw.shadow is not None
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, gw.shadow.queued)  # type: ignore[union-attr]
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    async with asgi_client(gw.dispatcher) as c:
        answers = await asyncio.gather(*(c.get("/api/products/3") for _ in range(12)))
    took = time.monotonic() - started
    watcher.cancel()
    assert all(a.status_code == 200 for a in answers)
    assert took < 2.5  # twelve slow shadows did not hold the clients up
    full = [s for s in sink.skips if s["reason"] == "queue_full"]
    assert len(full) >= 12 - 2 - 1  # at most queue size + one being worked on got through
    assert peak <= 2
    assert gw.metrics.registry.get_sample_value(
        "gateway_shadow_skipped_total", {"route": "products.get", "reason": "queue_full"}) == len(full)


async def test_rollback_shadow_of_a_create_compares_and_writes_once(demo_db: str, make_gateway: MakeGateway) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(demo_db)
    count = lambda: engine.connect().execute(sa.text("select count(*) from users")).scalar()  # noqa: E731
    before = count()
    gw, sink = await make_gateway(DEMO_MAP)
    async with asgi_client(gw.dispatcher) as c:
        for i in range(5):
            r = await c.post("/api/users", json={"email": f"s{i}@example.com", "name": f"S {i}", "password": "long-enough-pw"})
            assert (r.status_code, r.headers["x-served-by"]) == (201, "legacy")
        dup = await c.post("/api/users", json={"email": "s0@example.com", "name": "S", "password": "long-enough-pw"})
        assert dup.status_code == 409
    await drained(sink, 6)
    assert count() == before + 5  # one write per request, none from the shadow
    assert [c["diffs"] for c in sink.comparisons] == [()] * 6
    engine.dispose()


async def test_owner_response_larger_than_the_limit_is_streamed_and_skipped(
    demo_db: str, make_gateway: MakeGateway
) -> None:
    small = DEMO_MAP.replace("shadow: {noise_sample: 0}", "shadow: {noise_sample: 0, max_body_bytes: 50}")
    gw, sink = await make_gateway(small, native_app="tests.shadow.divergent_native:create_app")
    async with asgi_client(gw.dispatcher) as c:
        r = await c.get("/api/products/3")
    assert r.status_code == 200 and len(r.content) > 50 and r.json()["id"] == 3
    await drained(sink, 1)
    assert [s["reason"] for s in sink.skips] == ["response_too_large"]


async def test_request_body_larger_than_the_limit_reaches_the_owner_whole(
    demo_db: str, make_gateway: MakeGateway
) -> None:
    small = DEMO_MAP.replace("shadow: {noise_sample: 0}", "shadow: {noise_sample: 0, max_body_bytes: 20}")
    gw, sink = await make_gateway(small)
    body = {"email": "big@example.com", "name": "Big Body", "password": "long-enough-pw"}
    async with asgi_client(gw.dispatcher) as c:
        r = await c.post("/api/users", json=body)
    assert r.status_code == 201 and r.json()["email"] == "big@example.com"
    assert [s["reason"] for s in sink.skips] == ["request_too_large"]


async def test_new_owned_routes_shadow_legacy(demo_db: str, make_gateway: MakeGateway) -> None:
    flipped = DEMO_MAP.replace("    owner: legacy\n    shadow: {sample: 1.0}\n", "    owner: new\n    shadow: {sample: 1.0}\n")
    gw, sink = await make_gateway(flipped)
    async with asgi_client(gw.dispatcher) as c:
        r = await c.get("/api/products/4")
    assert r.headers["x-served-by"] == "new"
    await drained(sink, 1)
    assert sink.comparisons[0]["owner_side"] == "new" and sink.comparisons[0]["diffs"] == ()
    assert httpx.codes.is_success(r.status_code)
