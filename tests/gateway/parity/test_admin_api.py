"""The parity data under /_gateway/api/parity: only with the admin token, off without one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.settings import GatewaySettings
from tests.gateway.parity.support import compare_once, diff
from tests.support import asgi_client

pytestmark = pytest.mark.anyio
TOKEN = "s3cret-admin-token"
MAP = """\
version: 1
routes:
  - {id: users.get, path: '/api/users/<int:user_id>', methods: [GET], owner: new}
  - {id: users.list, path: '/api/users', methods: [GET]}
"""


async def started(tmp_path: Path, **settings: Any) -> Gateway:
    map_path = tmp_path / "migration_map.yaml"
    map_path.write_text(MAP)
    gw = Gateway(
        GatewaySettings(
            map_path=map_path,
            legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
            native_app="tests.gateway.wsgi_fixtures:native_factory",
            **{"store_url": f"sqlite:///{tmp_path}/parity.db", **settings},
        )
    )
    await gw.startup({})
    return gw


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await started(tmp_path, admin_token=TOKEN)
    compare_once(gw.recorder, "users.get", (diff("body.name"),))
    compare_once(gw.recorder, "users.get")
    assert await gw.recorder.flush()
    yield gw
    await gw.shutdown()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_token_opens_the_parity_api(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        everything = await c.get("/_gateway/api/parity", headers=bearer())
        one = await c.get("/_gateway/api/parity/users.get", headers=bearer())
        quiet = await c.get("/_gateway/api/parity/users.list", headers=bearer())
        unknown = await c.get("/_gateway/api/parity/nope", headers=bearer())
    assert everything.status_code == 200
    [route] = everything.json()["routes"]
    assert (route["route_id"], route["compared"], route["mismatched"], route["owner"]) == ("users.get", 2, 1, "new")
    assert route["cutover"]["ready"] is False
    body = one.json()
    assert one.status_code == 200 and body["fields"][0]["path"] == "body.name"
    assert body["mismatch_samples"][0]["differences"][0]["path"] == "body.name"
    assert quiet.status_code == 200 and quiet.json()["samples"] == 0  # in the map, no data yet
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong"), {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}, bearer("")],
    ids=["missing", "wrong", "no-scheme", "basic", "empty"],
)
async def test_a_missing_or_wrong_token_is_401(gateway: Gateway, headers: dict[str, str]) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        for path in ("/_gateway/api/parity", "/_gateway/api/parity/users.get"):
            r = await c.get(path, headers=headers)
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"]["code"] == "unauthorized"
            assert "users.get" not in r.text


async def test_without_a_token_the_admin_api_is_off_and_health_and_metrics_stay_open(tmp_path: Path) -> None:
    gw = await started(tmp_path)
    try:
        async with asgi_client(gw.dispatcher) as c:
            off = await c.get("/_gateway/api/parity", headers=bearer())
            off_route = await c.get("/_gateway/api/parity/users.get")
            health = await c.get("/_gateway/health")
            metrics = await c.get("/metrics")
    finally:
        await gw.shutdown()
    assert off.status_code == off_route.status_code == 404
    assert off.json()["error"] == {
        "code": "not_found", "message": "the admin API is off: set GATEWAY_ADMIN_TOKEN to turn it on"
    }
    assert health.status_code == 200 and metrics.status_code == 200
    assert not (tmp_path / "parity.db").exists()  # an idle gateway never created its store


async def test_a_store_that_cannot_be_read_is_503(tmp_path: Path) -> None:
    gw = await started(tmp_path, admin_token=TOKEN, store_url="postgresql://postgres@127.0.0.1:1/none")
    try:
        async with asgi_client(gw.dispatcher) as c:
            r = await c.get("/_gateway/api/parity", headers=bearer())
    finally:
        await gw.shutdown()
    assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"


async def test_shutdown_flushes_what_was_recorded(tmp_path: Path) -> None:
    gw = await started(tmp_path, admin_token=TOKEN, store_flush_interval=3600)
    compare_once(gw.recorder, "users.get")
    await gw.shutdown()
    again = await started(tmp_path, admin_token=TOKEN)
    try:
        async with asgi_client(again.dispatcher) as c:
            r = await c.get("/_gateway/api/parity/users.get", headers=bearer())
    finally:
        await again.shutdown()
    assert r.json()["compared"] == 1


async def test_shadowed_requests_reach_the_store_and_the_api(tmp_path: Path) -> None:
    map_path = tmp_path / "shadowed.yaml"
    map_path.write_text(
        "version: 1\nroutes:\n"
        "  - {id: users.get, path: '/api/users/<int:user_id>', methods: [GET], owner: legacy,\n"
        "     shadow: {sample: 1.0, noise_sample: 0.0}}\n"
    )
    gw = Gateway(
        GatewaySettings(
            map_path=map_path,
            legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
            native_app="tests.gateway.wsgi_fixtures:native_factory",
            store_url=f"sqlite:///{tmp_path}/parity.db",
            store_flush_interval=0.05,
            admin_token=TOKEN,
        )
    )
    await gw.startup({})
    try:
        async with asgi_client(gw.dispatcher) as c:
            for i in range(3):
                r = await c.get(f"/api/users/{i}", headers={"Authorization": "Bearer user-s3cret"})
                assert r.text == f"legacy GET /api/users/{i}"  # the owner answers the client

            async def compared() -> int:
                got = await c.get("/_gateway/api/parity/users.get", headers=bearer())
                return int(got.json()["compared"])

            deadline = asyncio.get_running_loop().time() + 5
            while await compared() < 3:
                assert asyncio.get_running_loop().time() < deadline, "the shadows were not recorded"
                await asyncio.sleep(0.02)
            detail = (await c.get("/_gateway/api/parity/users.get", headers=bearer())).json()
    finally:
        await gw.shutdown()
    assert detail["mismatched"] == 3  # text on one side, JSON on the other
    assert detail["latency_ms"]["legacy"]["count"] == detail["latency_ms"]["new"]["count"] == 3
    sample = detail["mismatch_samples"][0]
    assert sample["owner_side"] == "legacy" and sample["owner"]["body"]["kind"] == "text"
    assert "user-s3cret" not in json.dumps(detail)
