"""Faults on the new side, in-process: as a shadow candidate the client never notices them; as a
canary, safe requests fall back to legacy and the guard rolls the route back.

The faulty apps are in tests/reliability/faulty_apps.py; each fault has its own path and route.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from gateway.app import Gateway
from gateway.exchange import DiffKind
from gateway.rollout.state import RuntimeState
from legacy_flask.seed import seed
from tests.reliability.fault_support import FAULTY, client, running_gateway, sample
from tests.reliability.faulty_apps import HUGE_BYTES, closing_server, good_body
from tests.shadow.sink import MemorySink
from tests.support import eventually

pytestmark = pytest.mark.anyio

# generous: the candidate sleeps 2 s or hangs; an owner answer on a busy 2-core machine takes ms
UNAFFECTED_S = 1.0

SHADOW_MAP = """\
version: 1
defaults:
  shadow: {noise_sample: 0, timeout_ms: 500, max_body_bytes: 65536}
routes:
  - {id: f.FAULT, path: /f/FAULT, methods: [GET], owner: OWNER, shadow: {sample: 1.0, timeout_ms: TIMEOUT}}
"""


def shadow_map(fault: str, *, owner: str = "legacy", timeout_ms: int = 500) -> str:
    return SHADOW_MAP.replace("FAULT", fault).replace("OWNER", owner).replace("TIMEOUT", str(timeout_ms))


async def timed_gets(c: httpx.AsyncClient, path: str, n: int) -> list[tuple[httpx.Response, float]]:
    async def one() -> tuple[httpx.Response, float]:
        started = time.monotonic()
        r = await c.get(path)
        return r, time.monotonic() - started

    return await asyncio.gather(*(one() for _ in range(n)))


def assert_owner_answered(answers: list[tuple[httpx.Response, float]], side: str, body: bytes) -> None:
    for r, took in answers:
        assert (r.status_code, r.headers["x-served-by"], r.content) == (200, side, body)
        assert took < UNAFFECTED_S, f"the client waited {took:.2f} s for the shadow"


# -- shadow: the new side is the candidate of a legacy-owned route --------------------------------


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("raise", "RuntimeError: faulty native raised on purpose"),
        ("hang", "timeout after 500 ms"),
        ("break", "ConnectionResetError: faulty native: upstream closed the connection mid-response"),
    ],
)
async def test_a_failing_candidate_is_an_error_the_client_never_sees(
    tmp_path: Path, fault: str, error: str
) -> None:
    sink = MemorySink()
    async with running_gateway(tmp_path, shadow_map(fault), sink=sink) as gw, client(gw) as c:
        answers = await timed_gets(c, f"/f/{fault}", 3)
        assert_owner_answered(answers, "legacy", good_body(fault))
        await eventually(lambda: len(sink.errors) == 3, timeout=10, what="three candidate errors")
        assert sample(gw, "gateway_shadow_comparisons_total", route=f"f.{fault}", result="error") == 3
    assert {e["error"] for e in sink.errors} == {error}
    assert (sink.comparisons, sink.skips) == ([], [])


async def test_a_slow_candidate_is_compared_after_the_client_has_its_answer(tmp_path: Path) -> None:
    sink = MemorySink()
    async with running_gateway(tmp_path, shadow_map("slow", timeout_ms=5000), sink=sink) as gw, client(gw) as c:
        answers = await timed_gets(c, "/f/slow", 3)
        assert_owner_answered(answers, "legacy", good_body("slow"))
        await eventually(lambda: len(sink.comparisons) == 3, timeout=15, what="three late comparisons")
        assert sample(gw, "gateway_shadow_comparisons_total", route="f.slow", result="match") == 3
    assert [c["diffs"] for c in sink.comparisons] == [(), (), ()]
    assert all(c["candidate_ms"] >= 1900 for c in sink.comparisons)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("5xx", {("status", DiffKind.STATUS, "200", "500")}),
        ("badjson", {("body", DiffKind.TYPE, '{"item": "badjson", "n": 1}', '{"item": "badjson", "n": ')}),
    ],
)
async def test_a_wrong_candidate_answer_is_a_diff_the_client_never_sees(
    tmp_path: Path, fault: str, expected: set[tuple[str, DiffKind, str, str]]
) -> None:
    sink = MemorySink()
    async with running_gateway(tmp_path, shadow_map(fault), sink=sink) as gw, client(gw) as c:
        answers = await timed_gets(c, f"/f/{fault}", 3)
        assert_owner_answered(answers, "legacy", good_body(fault))
        await eventually(lambda: len(sink.comparisons) == 3, timeout=10, what="three comparisons")
        assert sample(gw, "gateway_shadow_comparisons_total", route=f"f.{fault}", result="diff") == 3
    found = {(d.path, d.kind, d.owner, d.candidate) for d in sink.comparisons[0]["diffs"]}
    assert expected <= found, found


async def test_a_huge_candidate_answer_is_skipped_not_buffered(tmp_path: Path) -> None:
    sink = MemorySink()
    async with running_gateway(tmp_path, shadow_map("huge"), sink=sink) as gw, client(gw) as c:
        answers = await timed_gets(c, "/f/huge", 3)
        assert_owner_answered(answers, "legacy", good_body("huge"))
        await eventually(lambda: len(sink.skips) == 3, timeout=10, what="three skips")
        assert sample(gw, "gateway_shadow_skipped_total", route="f.huge", reason="response_too_large") == 3
    assert {s["reason"] for s in sink.skips} == {"response_too_large"}
    assert (sink.comparisons, sink.errors) == ([], [])


@pytest.mark.parametrize("sent", [12, None], ids=["mid_response", "before_answering"])
async def test_a_remote_candidate_closing_the_connection_is_an_error(tmp_path: Path, sent: int | None) -> None:
    """Remote mode: legacy is a server that closes the socket (mid-response, or before any);
    the route is new-owned and legacy is its shadow candidate."""
    sink = MemorySink()
    with closing_server(sent=sent) as upstream:
        async with running_gateway(
            tmp_path, shadow_map("ok", owner="new"), sink=sink, legacy_url=upstream.url, remote_timeout=5
        ) as gw, client(gw) as c:
            answers = await timed_gets(c, "/f/ok", 3)
            assert_owner_answered(answers, "new", good_body("ok"))
            await eventually(lambda: len(sink.errors) == 3, timeout=10, what="three candidate errors")
            assert sample(gw, "gateway_shadow_comparisons_total", route="f.ok", result="error") == 3
        assert upstream.requests == 3
    # not compared (a 502 of the gateway's own is not legacy's answer); the text is the
    # HTTP client's, which only the logs and this sink ever see
    assert all(e["error"] for e in sink.errors)
    assert sink.comparisons == []


@pytest.fixture
def demo_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/demo.db"
    seed(url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SECRET_KEY", "faults-secret")
    return url


DEAD_DATABASES = {
    "dead_port": "postgresql://nobody@127.0.0.1:1/none",
    "missing_dir": "sqlite:///TMP/no/such/dir/demo.db",
}

PRODUCT_SHADOW = """\
version: 1
defaults:
  shadow: {noise_sample: 0, timeout_ms: 3000}
routes:
  - {id: products.get, path: '/api/products/<int:product_id>', methods: [GET], owner: legacy, shadow: {sample: 1.0}}
"""


@pytest.mark.parametrize("database", sorted(DEAD_DATABASES))
async def test_a_candidate_without_its_database_is_an_error_the_client_never_sees(
    tmp_path: Path, demo_db: str, monkeypatch: pytest.MonkeyPatch, database: str
) -> None:
    monkeypatch.setenv("FAULTY_NATIVE_DATABASE_URL", DEAD_DATABASES[database].replace("TMP", str(tmp_path)))
    sink = MemorySink()
    async with running_gateway(
        tmp_path, PRODUCT_SHADOW, sink=sink, legacy_app="legacy_flask.app:create_app",
        native_app=f"{FAULTY}:features_without_database",
    ) as gw, client(gw) as c:
        answers = await timed_gets(c, "/api/products/3", 2)
        for r, took in answers:
            assert (r.status_code, r.headers["x-served-by"], r.json()["id"]) == (200, "legacy", 3)
            assert took < UNAFFECTED_S * 2  # the real demo app, on a shared machine
        await eventually(lambda: len(sink.errors) == 2, timeout=10, what="two candidate errors")
        assert sample(gw, "gateway_shadow_comparisons_total", route="products.get", result="error") == 2
    assert all(e["error"].startswith("OperationalError: ") for e in sink.errors), sink.errors


# -- canary: the new side serves a legacy-owned route, legacy is the fallback --------------------

CANARY_MAP = """\
version: 1
routes:
  - id: f.FAULT
    path: /f/FAULT
    methods: [GET, POST]
    owner: legacy
    canary: {percent: 100, sticky: [client_ip]}
    fallback: {on: [5xx, exception, timeout], methods: [GET, HEAD], timeout_ms: 500}
    guard: {window_s: 60, min_samples: 5, max_error_rate: 0.5}
"""

ERROR_RATE_BREACH = "new error rate 100.0 % over 60 s (5 of 5) exceeds 50.0 %"


async def rolled_back(gw: Gateway, route_id: str, reason: str) -> None:
    """The guard's loop (every 0.1 s here) rolled the route back: in its state, in the store,
    in the metric and in the audit log, with this reason."""
    def done() -> bool:
        here, stored = gw.rollout.states.get(route_id), gw.rollout_store.states().get(route_id)
        return here is not None and here.state is RuntimeState.ROLLED_BACK and stored is not None

    await eventually(done, timeout=10, what=f"{route_id} rolled back")
    stored = gw.rollout_store.states()[route_id]
    assert (stored.state, stored.actor, stored.reason) == (RuntimeState.ROLLED_BACK, "guard", reason)
    assert sample(gw, "gateway_rollbacks_total", route=route_id) == 1
    (entry,) = [e for e in gw.rollout_store.audit_entries(route_id=route_id) if e.kind == "rollback"]
    assert entry.actor == "guard" and reason in entry.summary


@pytest.mark.parametrize(
    ("fault", "reason"), [("raise", "exception"), ("hang", "timeout"), ("slow", "timeout"), ("5xx", "5xx")]
)
async def test_a_failing_canary_falls_back_to_legacy_and_the_guard_rolls_it_back(
    tmp_path: Path, fault: str, reason: str
) -> None:
    route_id = f"f.{fault}"
    async with running_gateway(tmp_path, CANARY_MAP.replace("FAULT", fault)) as gw, client(gw) as c:
        answers = await asyncio.gather(*(c.get(f"/f/{fault}") for _ in range(5)))
        for r in answers:
            assert (r.status_code, r.headers["x-served-by"], r.content) == (200, "legacy", good_body(fault))
        assert sample(gw, "gateway_fallbacks_total", route=route_id, reason=reason) == 5
        await rolled_back(gw, route_id, ERROR_RATE_BREACH)
        after = await c.get(f"/f/{fault}")  # straight to legacy now: no fallback needed
        assert (after.status_code, after.headers["x-served-by"]) == (200, "legacy")
        assert sample(gw, "gateway_fallbacks_total", route=route_id, reason=reason) == 5
        assert sample(gw, "gateway_requests_total", route=route_id, backend="legacy", role="primary",
                      status_class="2xx") == 6


async def test_an_override_to_a_failing_new_side_falls_back_too(tmp_path: Path) -> None:
    no_canary = CANARY_MAP.replace("FAULT", "raise").replace("    canary: {percent: 100, sticky: [client_ip]}\n", "")
    async with running_gateway(tmp_path, no_canary, override_token="ops-token") as gw, client(gw) as c:
        plain = await c.get("/f/raise")
        forced = await c.get("/f/raise", headers={"X-Gateway-Backend": "new", "X-Gateway-Token": "ops-token"})
    assert plain.headers["x-served-by"] == "legacy"
    assert (forced.status_code, forced.headers["x-served-by"], forced.content) == (200, "legacy", good_body("raise"))
    assert sample(gw, "gateway_fallbacks_total", route="f.raise", reason="exception") == 1


async def test_a_canary_without_its_database_falls_back_and_is_rolled_back(
    tmp_path: Path, demo_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTY_NATIVE_DATABASE_URL", DEAD_DATABASES["dead_port"])
    canary = CANARY_MAP.replace("f.FAULT", "products.get").replace("/f/FAULT", "'/api/products/<int:product_id>'")
    # the refused connection is the fault under test, not the time it takes: on a machine
    # whose host steals CPU the first request (the pool's first connect) took over 500 ms
    # and fell back as a timeout
    canary = canary.replace("timeout_ms: 500", "timeout_ms: 5000")
    async with running_gateway(
        tmp_path, canary, legacy_app="legacy_flask.app:create_app", native_app=f"{FAULTY}:features_without_database"
    ) as gw, client(gw) as c:
        for _ in range(5):
            r = await c.get("/api/products/3")
            assert (r.status_code, r.headers["x-served-by"], r.json()["id"]) == (200, "legacy", 3)
        assert sample(gw, "gateway_fallbacks_total", route="products.get", reason="5xx") == 5
        await rolled_back(gw, "products.get", ERROR_RATE_BREACH)


@pytest.mark.parametrize("fault", ["break", "close"])
async def test_a_canary_breaking_off_mid_answer_counts_as_an_error_and_is_rolled_back(
    tmp_path: Path, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the new side's headers have gone out there is nothing to fall back to: the client
    sees the connection break. The guard must see it as the error it is."""
    with closing_server(sent=12) as upstream:
        monkeypatch.setenv("FAULTY_UPSTREAM_URL", upstream.url)
        async with running_gateway(tmp_path, CANARY_MAP.replace("FAULT", fault)) as gw, client(gw) as c:
            for _ in range(5):
                r = await c.get(f"/f/{fault}")
                assert r.headers["x-served-by"] == "new"
                assert len(r.content) < int(r.headers["content-length"])  # cut short
            assert sample(gw, "gateway_requests_total", route=f"f.{fault}", backend="new", role="primary",
                          status_class="error") == 5
            await rolled_back(gw, f"f.{fault}", ERROR_RATE_BREACH)
            after = await c.get(f"/f/{fault}")
            assert (after.status_code, after.headers["x-served-by"], after.content) == (200, "legacy", good_body(fault))


async def test_a_canary_whose_upstream_closes_before_answering_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with closing_server(sent=None) as upstream:
        monkeypatch.setenv("FAULTY_UPSTREAM_URL", upstream.url)
        async with running_gateway(tmp_path, CANARY_MAP.replace("FAULT", "close")) as gw, client(gw) as c:
            for _ in range(5):
                r = await c.get("/f/close")
                assert (r.status_code, r.headers["x-served-by"], r.content) == (200, "legacy", good_body("close"))
            assert sample(gw, "gateway_fallbacks_total", route="f.close", reason="exception") == 5
            await rolled_back(gw, "f.close", ERROR_RATE_BREACH)


CANARY_SHADOWED = """\
version: 1
routes:
  - id: f.FAULT
    path: /f/FAULT
    methods: [GET]
    owner: legacy
    canary: {percent: 100, sticky: [client_ip]}
    shadow: {sample: 1.0, noise_sample: 0, max_body_bytes: 65536}
    fallback: {on: [5xx, exception, timeout], timeout_ms: 500}
    guard: {window_s: 60, min_samples: 5, max_error_rate: 0.5, max_mismatch_rate: 0.1}
"""


async def test_a_huge_canary_answer_is_streamed_whole_and_is_no_error(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, CANARY_SHADOWED.replace("FAULT", "huge")) as gw, client(gw) as c:
        for _ in range(5):
            r = await c.get("/f/huge")
            assert (r.status_code, r.headers["x-served-by"], len(r.content)) == (200, "new", HUGE_BYTES)
        await eventually(
            lambda: sample(gw, "gateway_shadow_skipped_total", route="f.huge", reason="response_too_large") == 5,
            timeout=10, what="five skips",
        )
        await gw.rollout.check_guards()
        assert "f.huge" not in gw.rollout.states
        assert sample(gw, "gateway_fallbacks_total", route="f.huge", reason="5xx") == 0


@pytest.mark.parametrize(("fault", "reason"), [("raise", "exception"), ("5xx", "5xx"), ("hang", "timeout")])
async def test_a_shadowed_canary_still_falls_back_when_the_new_side_fails(
    tmp_path: Path, fault: str, reason: str
) -> None:
    """A canary that is shadowed too (the mismatch guard needs it) keeps its fallback: the
    client gets legacy's answer, and the comparison is skipped (there is no new answer)."""
    sink = MemorySink()
    shadowed = CANARY_SHADOWED.replace("FAULT", fault)
    async with running_gateway(tmp_path, shadowed, sink=sink) as gw, client(gw) as c:
        for _ in range(5):
            r = await asyncio.wait_for(c.get(f"/f/{fault}"), 20)  # a hang without fallback fails, not hangs
            assert (r.status_code, r.headers["x-served-by"], r.content) == (200, "legacy", good_body(fault))
        assert sample(gw, "gateway_fallbacks_total", route=f"f.{fault}", reason=reason) == 5
        await eventually(lambda: len(sink.skips) == 5, timeout=10, what="five skips")
        await rolled_back(gw, f"f.{fault}", ERROR_RATE_BREACH)
    assert {s["reason"] for s in sink.skips} == {"owner_fell_back"}
    assert sink.comparisons == []
