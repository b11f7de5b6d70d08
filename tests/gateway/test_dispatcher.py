import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.map_loader import unfreeze_heap
from gateway.settings import GatewaySettings
from tests.support import asgi_client

MAP = """\
version: 1
routes:
  - {id: users.get, path: '/api/users/<int:user_id>', methods: [GET], owner: new}
  - {id: users.write, path: '/api/users/<int:user_id>', methods: [PUT], owner: legacy}
"""



@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    map_path = tmp_path / "migration_map.yaml"
    map_path.write_text(MAP)
    gw = Gateway(GatewaySettings(
        map_path=map_path,
        legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
        native_app="tests.gateway.wsgi_fixtures:native_factory",
        legacy_threads=2,
        legacy_queue_timeout=0.3,
    ))
    state: dict[str, object] = {}
    await gw.startup(state)
    assert state == {"native_started": True}  # the native app's lifespan ran inside ours
    yield gw
    await gw.shutdown()


@pytest.mark.anyio
async def test_one_path_split_by_method(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        get = await c.get("/api/users/1")
        put = await c.put("/api/users/1", content=b"x")
        other = await c.get("/api/orders")
    assert (get.headers["x-served-by"], get.json()["side"]) == ("new", "native")
    assert (put.headers["x-served-by"], put.text) == ("legacy", "legacy PUT /api/users/1")
    assert (other.headers["x-served-by"], other.text) == ("legacy", "legacy GET /api/orders")


@pytest.mark.anyio
async def test_backend_cannot_spoof_served_by(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        r = await c.get("/anything")
    assert r.headers.get_list("x-served-by") == ["legacy"]


@pytest.mark.anyio
async def test_request_id_is_propagated_to_backend_and_response(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        given = await c.get("/api/users/1", headers={"X-Request-ID": "abc-123"})
        made = await c.get("/api/users/1")
        hostile = await c.get("/api/users/1", headers={"X-Request-ID": "bad id\twith spaces"})
    assert given.headers["x-request-id"] == given.json()["request_id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    assert made.headers["x-request-id"] == made.json()["request_id"]
    assert hostile.headers["x-request-id"] != "bad id\twith spaces"
    assert hostile.headers["x-request-id"] == hostile.json()["request_id"]


@pytest.mark.anyio
async def test_request_id_reaches_the_wsgi_app(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        r = await c.post("/echo", content=b"hello", headers={"X-Request-ID": "rid-1"})
    assert r.json() == {"length": 5, "request_id": "rid-1", "terminated": True}
    assert r.headers["x-request-id"] == "rid-1"


@pytest.mark.anyio
async def test_served_by_header_name_is_configurable_and_can_be_off(tmp_path: Path) -> None:
    map_path = tmp_path / "m.yaml"
    map_path.write_text(MAP)
    base = {"map_path": map_path, "legacy_app": "tests.gateway.wsgi_fixtures:legacy_app",
            "native_app": "tests.gateway.wsgi_fixtures:native_app"}
    named = Gateway(GatewaySettings(**base, served_by_header="X-Backend"))  # type: ignore[arg-type]
    off = Gateway(GatewaySettings(**base, served_by_header=""))  # type: ignore[arg-type]
    async with asgi_client(named.dispatcher) as c:
        assert (await c.get("/api/users/1")).headers["x-backend"] == "new"
    async with asgi_client(off.dispatcher) as c:
        r = await c.get("/api/users/1")
        assert "x-served-by" not in r.headers and "x-request-id" in r.headers


@pytest.mark.anyio
async def test_legacy_crash_is_a_json_500_and_the_gateway_keeps_serving(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        r = await c.get("/crash", headers={"X-Request-ID": "crash-1"})
        after = await c.get("/api/users/2")
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "legacy_error", "message": "the legacy app failed to answer",
                                  "request_id": "crash-1"}}
    assert after.status_code == 200


@pytest.mark.anyio
async def test_health_reports_map_and_legacy_pool(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        body = (await c.get("/_gateway/health")).json()
        metrics = (await c.get("/metrics")).text
    assert body["map"]["routes"] == 2 and body["map"]["last_reload"]["ok"] is True
    assert body["legacy"] == {"mode": "in-process", "threads": 2, "busy": 0, "rejected": 0}
    assert 'gateway_map_reloads_total{result="ok"} 1.0' in metrics


@pytest.mark.anyio
async def test_head_on_a_native_get_route_is_answered_without_body(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        get = await c.get("/api/users/1", headers={"X-Request-ID": "h1"})
        head = await c.head("/api/users/1", headers={"X-Request-ID": "h1"})
    assert (head.status_code, head.headers["x-served-by"], head.content) == (200, "new", b"")
    assert head.headers["content-type"] == get.headers["content-type"]


@pytest.mark.anyio
async def test_a_server_process_freezes_what_start_up_built(tmp_path: Path) -> None:
    # create_app (the uvicorn factory) sets freeze_gc; a Gateway built in-process does not
    map_path = tmp_path / "m.yaml"
    map_path.write_text(MAP)
    gw = Gateway(GatewaySettings(map_path=map_path, store_url=f"sqlite:///{tmp_path}/store.db",
                                 legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
                                 native_app="tests.gateway.wsgi_fixtures:native_factory"))
    assert gw.freeze_gc is False
    gw.freeze_gc = True
    to_app: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    async def send(message: dict[str, object]) -> None:
        await from_app.put(message)

    task = asyncio.create_task(gw.dispatcher({"type": "lifespan", "state": {}}, to_app.get, send))
    try:
        await to_app.put({"type": "lifespan.startup"})
        assert (await from_app.get())["type"] == "lifespan.startup.complete"
        assert gc.get_freeze_count() > 0
        async with asgi_client(gw.dispatcher) as c:
            assert (await c.get("/api/users/1")).headers["x-served-by"] == "new"
        await to_app.put({"type": "lifespan.shutdown"})
        assert (await from_app.get())["type"] == "lifespan.shutdown.complete"
    finally:
        unfreeze_heap()  # the rest of the test run collects as usual
        await task
