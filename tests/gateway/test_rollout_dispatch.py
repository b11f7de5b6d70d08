"""Who serves a request at run time: canary, override, fallback, runtime states and guards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from gateway.app import Gateway
from gateway.asgi import Message, Receive, Scope, Send
from gateway.map_schema import Owner
from gateway.rollout.state import RuntimeState
from gateway.settings import GatewaySettings

pytestmark = pytest.mark.anyio

MAP = """\
version: 1
routes:
  - {id: fail5xx, path: /fail500, methods: [GET, POST], owner: new, fallback: {on: [5xx]}}
  - {id: raises, path: /raise, methods: [GET, POST], owner: new, fallback: {}}
  - {id: hangs, path: /hang, methods: [GET], owner: new, fallback: {timeout_ms: 200}}
  - {id: nofallback, path: /nofallback/<x>, methods: [GET], owner: new}
  - {id: whoami, path: /whoami, methods: [GET], owner: new}
  - id: canary
    path: /api/users/<int:id>
    methods: [GET]
    owner: legacy
    canary: {percent: 30, sticky: ["header:X-User-Id"]}
"""

CANARY_FALLBACK_MAP = """\
version: 1
routes:
  - id: canaried
    path: /raise
    methods: [GET, POST]
    owner: legacy
    canary: {percent: 100, sticky: [client_ip]}
    fallback: {}
"""

GUARD_MAP = """\
version: 1
routes:
  - id: guarded
    path: /fail500
    methods: [GET]
    owner: new
    guard: {min_samples: 5, max_error_rate: 0.2, window_s: 60}
"""

MakeGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[MakeGateway]:
    started: list[Gateway] = []

    async def make(map_text: str = MAP, **settings: object) -> Gateway:
        map_path = tmp_path / "migration_map.yaml"
        map_path.write_text(map_text)
        gw = Gateway(GatewaySettings(
            map_path=map_path, store_url=f"sqlite:///{tmp_path}/store.db",
            legacy_app="tests.gateway.wsgi_fixtures:legacy_app", native_app="tests.gateway.wsgi_fixtures:native_app",
            **settings,  # type: ignore[arg-type]
        ))
        await gw.startup({})
        started.append(gw)
        return gw

    yield make
    for gw in started:
        await gw.shutdown()


def client(gw: Gateway) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=gw.dispatcher, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://gw")


def fallbacks(gw: Gateway, route: str, reason: str) -> float:
    return gw.metrics.registry.get_sample_value("gateway_fallbacks_total", {"route": route, "reason": reason}) or 0


@pytest.mark.parametrize(("path", "route", "reason"), [("/fail500", "fail5xx", "5xx"), ("/raise", "raises", "exception"), ("/hang", "hangs", "timeout")])
async def test_a_failing_new_side_falls_back_to_legacy_for_safe_requests(
    make_gateway: MakeGateway, path: str, route: str, reason: str
) -> None:
    gw = await make_gateway()
    async with client(gw) as c:
        r = await c.get(path)
    assert (r.status_code, r.headers["x-served-by"], r.text) == (200, "legacy", f"legacy GET {path}")
    # marked: a fallback is not a move of the user to legacy, and a test or a client can tell
    assert r.headers.get_list("x-gateway-fallback") == [reason]
    assert fallbacks(gw, route, reason) == 1


async def test_only_a_fallback_is_marked_and_no_backend_can_mark_an_answer(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await make_gateway()
    legacy = gw.dispatcher.backends.legacy

    async def spoofing(scope: Scope, receive: Receive, send: Send) -> None:
        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-gateway-fallback", b"5xx")]
            await send(message)

        await legacy(scope, receive, marked)

    monkeypatch.setitem(gw.dispatcher._apps, Owner.LEGACY, spoofing)
    async with client(gw) as c:
        new = await c.get("/whoami")
        on_legacy = [await c.get("/api/users/1", headers={"X-User-Id": f"u{i}"}) for i in range(20)]
        fell_back = await c.get("/raise")
    assert new.headers["x-served-by"] == "new" and "x-gateway-fallback" not in new.headers
    legacy_users = [r for r in on_legacy if r.headers["x-served-by"] == "legacy"]
    assert legacy_users and all("x-gateway-fallback" not in r.headers for r in legacy_users)
    assert fell_back.headers.get_list("x-gateway-fallback") == ["exception"]


async def test_unsafe_requests_get_the_new_sides_error_and_are_never_replayed(make_gateway: MakeGateway) -> None:
    gw = await make_gateway()
    async with client(gw) as c:
        failed = await c.post("/fail500", content=b"x")
        raised = await c.post("/raise", content=b"x")
        unguarded = await c.get("/nofallback/1")
    assert (failed.status_code, failed.headers["x-served-by"], failed.text) == (500, "new", "native broke")
    assert (raised.status_code, raised.headers["x-served-by"]) == (500, "new")
    assert raised.json()["error"] == {"code": "backend_error", "message": "the new side failed to answer",
                                      "request_id": raised.headers["x-request-id"]}
    assert unguarded.headers["x-served-by"] == "new"
    assert fallbacks(gw, "fail5xx", "5xx") == 0 and fallbacks(gw, "raises", "exception") == 0


async def test_override_needs_a_valid_token_and_never_reaches_the_backend(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(override_token="letmein")
    async with client(gw) as c:
        plain = await c.get("/whoami", headers={"X-Gateway-Backend": "legacy"})
        wrong = await c.get("/whoami", headers={"X-Gateway-Backend": "legacy", "X-Gateway-Token": "guess"})
        forced = await c.get("/whoami", headers={"X-Gateway-Backend": "legacy", "X-Gateway-Token": "letmein"})
        to_new = await c.get("/api/users/1", headers={"X-Gateway-Backend": "new", "X-Gateway-Token": "letmein", "X-User-Id": "x"})
    assert plain.headers["x-served-by"] == "new" and "leaked" not in plain.json()
    assert wrong.headers["x-served-by"] == "new" and "leaked" not in wrong.json()
    assert forced.headers["x-served-by"] == "legacy" and "leaked" not in forced.json()
    assert to_new.headers["x-served-by"] == "new"
    get = gw.metrics.registry.get_sample_value
    assert (get("gateway_overrides_total", {"result": "ignored"}), get("gateway_overrides_total", {"result": "applied"})) == (2, 2)


async def test_override_is_off_without_a_configured_token(make_gateway: MakeGateway) -> None:
    gw = await make_gateway()
    async with client(gw) as c:
        r = await c.get("/whoami", headers={"X-Gateway-Backend": "legacy", "X-Gateway-Token": ""})
    assert r.headers["x-served-by"] == "new"


async def test_canary_is_sticky_per_user_and_near_its_percentage(make_gateway: MakeGateway) -> None:
    gw = await make_gateway()
    sides: dict[str, str] = {}
    async with client(gw) as c:
        for user in range(300):
            r = await c.get("/api/users/1", headers={"X-User-Id": f"user-{user}"})
            sides[f"user-{user}"] = r.headers["x-served-by"]
        for user in list(sides)[:50]:
            again = await c.get("/api/users/1", headers={"X-User-Id": user})
            assert again.headers["x-served-by"] == sides[user]
        anonymous = [(await c.get("/api/users/1")).headers["x-served-by"] for _ in range(20)]
    share = sum(side == "new" for side in sides.values()) / len(sides)
    assert 0.2 < share < 0.4
    assert set(anonymous) == {"legacy"}  # on_missing: legacy


async def test_runtime_state_beats_the_map_and_retry_restores_it(make_gateway: MakeGateway) -> None:
    gw = await make_gateway()
    async with client(gw) as c:
        assert (await c.get("/whoami")).headers["x-served-by"] == "new"
        gw.rollout_store.set_state("whoami", RuntimeState.ABORTED, reason="testing", figures={}, actor="test")
        await gw.rollout.refresh()
        assert (await c.get("/whoami")).headers["x-served-by"] == "legacy"
        gw.rollout_store.clear("whoami", actor="test", reason="retry")
        await gw.rollout.refresh()
        assert (await c.get("/whoami")).headers["x-served-by"] == "new"


async def test_guard_breach_rolls_the_route_back_and_says_why(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(GUARD_MAP)
    async with client(gw) as c:
        for _ in range(4):
            assert (await c.get("/fail500")).headers["x-served-by"] == "new"
        await gw.rollout.check_guards()
        assert "guarded" not in gw.rollout.states  # four samples: inconclusive, nothing happens
        for _ in range(4):
            await c.get("/fail500")
        await gw.rollout.check_guards()
        after = await c.get("/fail500")
    assert after.headers["x-served-by"] == "legacy"
    state = gw.rollout_store.states()["guarded"]
    assert state.state is RuntimeState.ROLLED_BACK and state.actor == "guard"
    assert "error rate" in state.reason and state.figures["new_requests"] == 8
    (entry,) = [e for e in gw.rollout_store.audit_entries(route_id="guarded") if e.kind == "rollback"]
    assert "error rate" in entry.summary or "error rate" in str(entry.details)


async def test_a_raising_canary_falls_back_for_reads_and_errors_for_writes(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(CANARY_FALLBACK_MAP)
    async with client(gw) as c:
        read = await c.get("/raise")
        write = await c.post("/raise", content=b"order")
    assert (read.status_code, read.headers["x-served-by"], read.text) == (200, "legacy", "legacy GET /raise")
    assert fallbacks(gw, "canaried", "exception") == 1
    assert (write.status_code, write.headers["x-served-by"]) == (500, "new")  # never replayed on legacy
    assert write.json()["error"]["code"] == "backend_error"


RAMP_MAP = """\
version: 1
routes:
  - id: ramped
    path: /whoami
    methods: [GET]
    owner: legacy
    canary: {percent: 10, sticky: ["header:X-User-Id"], steps: [50, 100], step_pause_s: 60}
    guard: {min_samples: 5, max_error_rate: 0.5, window_s: 60}
"""


async def traffic(c: httpx.AsyncClient, users: int = 200) -> float:
    sides = [(await c.get("/whoami", headers={"X-User-Id": f"u{i}"})).headers["x-served-by"] for i in range(users)]
    return sides.count("new") / users


async def test_canary_steps_advance_only_on_ok_after_the_pause_then_promote(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(RAMP_MAP)
    rollout, store = gw.rollout, gw.rollout_store
    clock = [1_000_000.0]
    rollout.clock = lambda: clock[0]
    async with client(gw) as c:
        await rollout.check_guards()  # the ramp starts at the map's percentage
        assert rollout.states["ramped"].figures["percent"] == 10
        started = rollout.states["ramped"].at
        clock[0] = started + 3600  # long past the pause, but no traffic: inconclusive holds
        await rollout.check_guards()
        assert rollout.states["ramped"].figures["percent"] == 10
        share = await traffic(c)
        assert 0.03 < share < 0.2
        clock[0] = started + 30  # traffic is fine, but the pause is not over
        await rollout.check_guards()
        assert rollout.states["ramped"].figures["percent"] == 10
        clock[0] = started + 61
        await rollout.check_guards()
        assert rollout.states["ramped"].figures["percent"] == 50
        assert 0.03 < await traffic(c) < 0.2  # every worker switches at the step's switch_at, not before
        clock[0] = rollout.states["ramped"].figures["switch_at"]
        assert 0.35 < await traffic(c) < 0.65  # everyone in at 10 % stays in at 50 %
        clock[0] += 61
        await rollout.check_guards()
        assert rollout.states["ramped"].figures["percent"] == 100
        clock[0] = rollout.states["ramped"].figures["switch_at"]
        assert await traffic(c) == 1.0
        clock[0] += 61
        await rollout.check_guards()
    assert store.states()["ramped"].state is RuntimeState.PROMOTED
    kinds = [e.kind for e in store.audit_entries(route_id="ramped")]
    assert kinds[:4] == ["promote", "ramp", "ramp", "ramp"]  # newest first


async def test_a_breach_during_a_ramp_rolls_it_back(make_gateway: MakeGateway) -> None:
    failing = RAMP_MAP.replace("path: /whoami", "path: /fail500").replace("percent: 10,", "percent: 100,").replace(
        "steps: [50, 100]", "steps: []")
    gw = await make_gateway(failing.replace("steps: [], ", "").replace(
        "canary: {percent: 100,", "canary: {percent: 50, steps: [100],"))
    async with client(gw) as c:
        await gw.rollout.check_guards()
        assert gw.rollout.states["ramped"].state is RuntimeState.RAMPING
        for i in range(100):
            await c.get("/fail500", headers={"X-User-Id": f"u{i}"})
        await gw.rollout.check_guards()
    assert gw.rollout_store.states()["ramped"].state is RuntimeState.ROLLED_BACK


async def test_an_unreadable_store_keeps_the_last_known_states(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await make_gateway()
    gw.rollout_store.set_state("whoami", RuntimeState.ABORTED, reason="testing", figures={}, actor="test")
    await gw.rollout.refresh()

    def down() -> dict[str, object]:
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(gw.rollout_store, "states", down)
    with caplog.at_level("WARNING", logger="gateway.rollout"):
        await gw.rollout.refresh()
        await gw.rollout.refresh()
    assert gw.rollout.states["whoami"].state is RuntimeState.ABORTED
    assert caplog.text.count("cannot read rollout state") == 1  # once per outage, not per poll
    async with client(gw) as c:
        assert (await c.get("/whoami")).headers["x-served-by"] == "legacy"
