"""/_gateway/api/rollout and /_gateway/api/audit: named admin tokens, actions, errors, the log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from gateway.app import Gateway
from gateway.rollout.state import RuntimeState
from gateway.settings import GatewaySettings
from tests.support import asgi_client

pytestmark = pytest.mark.anyio
TOKENS = {"alice": "tok-alice", "bob": "tok-bob"}
MAP = """\
version: 1
routes:
  - {id: users.get, path: '/api/users/<int:user_id>', methods: [GET], owner: new}
  - {id: users.list, path: /api/users, methods: [GET], owner: legacy, canary: {percent: 5}}
"""


async def started(tmp_path: Path, store_url: str, **settings: Any) -> Gateway:
    map_path = tmp_path / "migration_map.yaml"
    map_path.write_text(MAP)
    gw = Gateway(
        GatewaySettings(
            map_path=map_path,
            legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
            native_app="tests.gateway.wsgi_fixtures:native_factory",
            store_url=store_url,
            **settings,
        )
    )
    await gw.startup({})
    return gw


@pytest.fixture
async def gateway(tmp_path: Path, db_url: str) -> AsyncIterator[Gateway]:
    gw = await started(tmp_path, db_url, admin_tokens=TOKENS, admin_token="tok-root")
    yield gw
    await gw.shutdown()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(gateway.dispatcher) as c:
        yield c


def as_(name: str) -> dict[str, str]:
    token = "tok-root" if name == "admin" else TOKENS[name]
    return {"Authorization": f"Bearer {token}"}


async def test_each_token_acts_under_its_own_name(client: httpx.AsyncClient, gateway: Gateway) -> None:
    r = await client.post("/_gateway/api/rollout/users.get/abort", json={"reason": "5xx"}, headers=as_("alice"))
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["actor"], r.json()["serving"]) == ("aborted", "alice", "legacy")
    stored = gateway.rollout_store.states()["users.get"]
    assert (stored.state, stored.actor, stored.reason) == (RuntimeState.ABORTED, "alice", "5xx")

    r = await client.post("/_gateway/api/rollout/users.get/retry", headers=as_("bob"))  # no body at all
    assert r.status_code == 200 and r.json()["state"] is None and r.json()["serving"] == "new"
    r = await client.post("/_gateway/api/rollout/users.list/promote", json={}, headers=as_("admin"))
    assert r.status_code == 200 and r.json()["serving"] == "new" and r.json()["actor"] == "admin"

    r = await client.get("/_gateway/api/audit", headers=as_("bob"))
    assert r.status_code == 200
    entries = [e for e in r.json()["entries"] if e["kind"] != "map_reload"]
    assert [(e["kind"], e["route_id"], e["actor"]) for e in entries] == [
        ("promote", "users.list", "admin"),
        ("retry", "users.get", "bob"),
        ("abort", "users.get", "alice"),
    ]
    assert entries[1]["summary"] == "users.get retried by bob: it follows the map again (was aborted: 5xx)"
    r = await client.get("/_gateway/api/audit?route=users.get&limit=1", headers=as_("alice"))
    assert [e["kind"] for e in r.json()["entries"]] == ["retry"]


async def test_status_says_who_serves_each_route(client: httpx.AsyncClient) -> None:
    r = await client.get("/_gateway/api/rollout", headers=as_("alice"))
    assert r.status_code == 200
    routes = {x["route_id"]: x for x in r.json()["routes"]}
    assert routes["users.get"]["serving"] == "new" and routes["users.get"]["state"] is None
    assert (routes["users.list"]["owner"], routes["users.list"]["canary_percent"]) == ("legacy", 5)
    assert routes["users.list"]["serving"] == "canary 5 %"
    await client.post("/_gateway/api/rollout/users.list/abort", headers=as_("alice"))
    r = await client.get("/_gateway/api/rollout/users.list", headers=as_("bob"))
    one = r.json()
    assert r.status_code == 200 and one["serving"] == "legacy" and one["state"] == "aborted"
    assert one["actor"] == "alice" and one["time"] and [e["kind"] for e in one["audit"]] == ["abort"]


async def test_unknown_routes_are_404_and_a_retry_with_nothing_to_retry_is_409(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/_gateway/api/rollout/nope"),
        ("POST", "/_gateway/api/rollout/nope/promote"),
        ("POST", "/_gateway/api/rollout/nope/abort"),
        ("POST", "/_gateway/api/rollout/nope/retry"),
    ):
        r = await client.request(method, path, headers=as_("alice"))
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found" and "no route 'nope' in the map" in r.json()["error"]["message"]
    r = await client.post("/_gateway/api/rollout/users.get/retry", headers=as_("alice"))
    assert r.status_code == 409
    assert r.json()["error"] == {
        "code": "no_runtime_state",
        "message": "route 'users.get' has no run-time state to retry: it follows the map (new)",
    }
    r = await client.post("/_gateway/api/rollout/users.get/abort", json={"why": "x"}, headers=as_("alice"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert "why" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "tok-alice"}, {"Authorization": "Basic tok-alice"}],
    ids=["missing", "wrong", "no-scheme", "basic"],
)
async def test_a_missing_or_wrong_token_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for method, path in (
        ("GET", "/_gateway/api/rollout"),
        ("GET", "/_gateway/api/rollout/users.get"),
        ("POST", "/_gateway/api/rollout/users.get/abort"),
        ("GET", "/_gateway/api/audit"),
        ("GET", "/_gateway/api/parity"),
    ):
        r = await client.request(method, path, headers=headers)
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"


async def test_without_any_token_the_rollout_api_is_off(tmp_path: Path) -> None:
    gw = await started(tmp_path, f"sqlite:///{tmp_path}/store.db")
    try:
        async with asgi_client(gw.dispatcher) as c:
            answers = [
                await c.get("/_gateway/api/rollout", headers=as_("alice")),
                await c.post("/_gateway/api/rollout/users.get/abort", headers=as_("alice")),
                await c.get("/_gateway/api/audit"),
            ]
    finally:
        await gw.shutdown()
    assert [a.status_code for a in answers] == [404, 404, 404]
    assert all(a.json()["error"]["code"] == "not_found" for a in answers)
    assert gw.rollout_store.states() == {}


async def test_named_tokens_alone_turn_the_api_on(tmp_path: Path) -> None:
    gw = await started(tmp_path, f"sqlite:///{tmp_path}/store.db", admin_tokens={"carol": "tok-carol"})
    try:
        async with asgi_client(gw.dispatcher) as c:
            r = await c.post(
                "/_gateway/api/rollout/users.get/promote", headers={"Authorization": "Bearer tok-carol"}
            )
    finally:
        await gw.shutdown()
    assert r.status_code == 200 and r.json()["actor"] == "carol"


async def test_a_map_reload_reaches_the_audit_log(gateway: Gateway, client: httpx.AsyncClient) -> None:
    before = gateway.holder.loaded
    assert before is not None
    gateway.holder.path.write_text(MAP.replace("owner: new}", "owner: legacy}"))
    result = await asyncio.to_thread(gateway.holder.check)
    assert result is not None and result.ok
    r = await client.get("/_gateway/api/audit", headers=as_("alice"))
    reload = r.json()["entries"][0]
    assert (reload["kind"], reload["actor"], reload["route_id"]) == ("map_reload", "reload", None)
    assert reload["details"]["old_sha256"] == before.sha256
    assert reload["details"]["changes"] == [{"route_id": "users.get", "change": "owner", "from": "new", "to": "legacy"}]


def test_admin_tokens_come_from_json_and_must_be_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKENS", '{"alice": "tok-a", "bob": "tok-b"}')
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", "tok-root")
    named = GatewaySettings().named_admin_tokens()
    assert {name: t.get_secret_value() for name, t in named.items()} == {
        "admin": "tok-root", "alice": "tok-a", "bob": "tok-b"
    }
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", "")
    assert set(GatewaySettings().named_admin_tokens()) == {"alice", "bob"}  # empty: as good as unset
    for tokens, problem in (
        ('{"alice": "same", "bob": "same"}', "are the same"),
        ('{"alice": ""}', "must be non-empty"),
        ('{"admin": "tok-x"}', "rename one"),
    ):
        monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", "tok-root")
        monkeypatch.setenv("GATEWAY_ADMIN_TOKENS", tokens)
        with pytest.raises(ValidationError, match=problem):
            GatewaySettings()
