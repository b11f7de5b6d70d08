"""/metrics after known traffic: exact counts per route, backend, role and status class."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from tests.gateway import wsgi_fixtures
from tests.shadow.sink import MemorySink
from tests.support import asgi_client, eventually

pytestmark = pytest.mark.anyio

MAP = """\
version: 1
routes:
  - {id: users.get, path: '/api/users/<int:id>', methods: [GET], owner: new}
  - {id: token, path: /token, methods: [GET], owner: legacy, shadow: {sample: 1.0, noise_sample: 0}}
"""


def value(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and line.split("{", 1)[1].split("}", 1)[0] == wanted:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_exact_counts_after_known_traffic(tmp_path: Path) -> None:
    map_path = tmp_path / "m.yaml"
    map_path.write_text(MAP)
    sink = MemorySink()
    gw = Gateway(GatewaySettings(map_path=map_path, legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
                                 native_app="tests.gateway.wsgi_fixtures:native_app"), sink=sink)
    await gw.startup({})
    try:
        async with asgi_client(gw.dispatcher) as c:
            for i in range(7):
                await c.get(f"/api/users/{i}")
            for _ in range(3):
                await c.get("/anything/else")
            for _ in range(4):
                await c.get("/token")
            await eventually(lambda: len(sink.comparisons) == 4, what="shadows compared")
            text = (await c.get("/metrics")).text
    finally:
        await gw.shutdown()
    req = "gateway_requests_total"
    assert value(text, req, route="users.get", backend="new", role="primary", status_class="2xx") == 7
    assert value(text, req, route="unmapped", backend="legacy", role="primary", status_class="2xx") == 3
    assert value(text, req, route="token", backend="legacy", role="primary", status_class="2xx") == 4
    assert value(text, req, route="token", backend="new", role="shadow", status_class="2xx") == 4
    assert value(text, "gateway_request_duration_seconds_count", route="users.get", backend="new", role="primary") == 7
    assert value(text, "gateway_shadow_comparisons_total", route="token", result="diff") == 4
    assert value(text, "gateway_in_flight_requests", backend="new") == 0
    assert value(text, "gateway_legacy_threads", pool="primary") == 10
    assert value(text, "gateway_legacy_threads_busy", pool="primary") == 0
    assert value(text, "gateway_routes", owner="new") == 1 and value(text, "gateway_routes", owner="legacy") == 1
    assert 'gateway_map_reloads_total{result="ok"} 1.0' in text


def gateway(tmp_path: Path, map_text: str = MAP, **settings: object) -> Gateway:
    map_path = tmp_path / "m.yaml"
    map_path.write_text(map_text)
    return Gateway(GatewaySettings(map_path=map_path, legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
                                   native_app="tests.gateway.wsgi_fixtures:native_app",
                                   store_url=f"sqlite:///{tmp_path}/store.db", **settings), sink=MemorySink())


async def test_busy_legacy_threads_are_counted_while_they_work(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    await gw.startup({})
    wsgi_fixtures.GATE.clear()
    try:
        async with asgi_client(gw.dispatcher) as c:
            blocked = [asyncio.ensure_future(c.get("/block")) for _ in range(3)]

            async def busy() -> float:
                return value((await c.get("/metrics")).text, "gateway_legacy_threads_busy", pool="primary")

            for _ in range(300):
                if await busy() == 3:
                    break
                await asyncio.sleep(0.01)
            assert await busy() == 3
            in_flight = value((await c.get("/metrics")).text, "gateway_in_flight_requests", backend="legacy")
            assert in_flight == 3
            wsgi_fixtures.GATE.set()
            assert [r.status_code for r in await asyncio.gather(*blocked)] == [200] * 3
            assert await busy() == 0
    finally:
        wsgi_fixtures.GATE.set()
        await gw.shutdown()


async def test_a_map_reload_replaces_the_map_info_series(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    await gw.startup({})
    try:
        first = gw.holder.loaded
        assert first is not None
        gw.holder.path.write_text(MAP + "  - {id: extra, path: /extra, methods: [GET], owner: new}\n")
        gw.holder.check()
        second = gw.holder.loaded
        assert second is not None and second.sha256 != first.sha256
        async with asgi_client(gw.dispatcher) as c:
            text = (await c.get("/metrics")).text
    finally:
        await gw.shutdown()
    assert value(text, "gateway_map_info", sha256=second.sha256, routes="3") == 1
    assert f'sha256="{first.sha256}"' not in text  # the replaced map is gone, not left at 1
    assert value(text, "gateway_routes", owner="new") == 2


async def test_metrics_token_guards_the_scrape(tmp_path: Path) -> None:
    gw = gateway(tmp_path, metrics_token="scrape-secret")
    await gw.startup({})
    try:
        async with asgi_client(gw.dispatcher) as c:
            bare = await c.get("/metrics")
            wrong = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
            right = await c.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    finally:
        await gw.shutdown()
    for refused in (bare, wrong):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["message"] == (
            "/metrics needs a token: send 'Authorization: Bearer <GATEWAY_METRICS_TOKEN>'"
        )
    assert right.status_code == 200 and "gateway_map_info{" in right.text


def test_batched_counts_publish_exactly_what_observe_would() -> None:
    """answered() only adds to dicts; publish() must give the histogram and counters a scrape
    would show had every request been observed one by one (it uses the histogram's parts)."""
    from prometheus_client import generate_latest

    from gateway.metrics import GatewayMetrics

    batched, direct = GatewayMetrics(), GatewayMetrics()
    latencies_ms = [0.2, 1.0, 2.5, 2.6, 9.99, 10.0, 10.01, 480.0, 999.0, 12_000.0, 0.0]
    for i, ms in enumerate(latencies_ms):
        status = (200, 404, 503, None)[i % 4]
        batched.answered("r", "new", "primary", status, ms)
        direct.duration.labels("r", "new", "primary").observe(ms / 1000)
        status_class = f"{status // 100}xx" if status else "error"
        direct.requests.labels("r", "new", "primary", status_class).inc()

    def series(metrics: GatewayMetrics) -> list[str]:
        text = generate_latest(metrics.scrape_registry()).decode()
        return sorted(line for line in text.splitlines()
                      if line.startswith(("gateway_request_duration_seconds_", "gateway_requests_total"))
                      and "_created" not in line)

    assert series(batched) == series(direct)
    batched.publish()  # publishing twice adds nothing
    assert series(batched) == series(direct)


async def test_a_map_reload_moves_counts_and_served_by_to_the_new_table(tmp_path: Path) -> None:
    # the dispatcher prepares headers and metrics series per route and routing table: a
    # reload that renames a route and hands it to the other side must show in both at once
    gw = gateway(tmp_path)
    async with asgi_client(gw.dispatcher) as c:
        before = await c.get("/api/users/1")
        (tmp_path / "m.yaml").write_text(MAP.replace("{id: users.get,", "{id: users.moved,").replace(
            "methods: [GET], owner: new}", "methods: [GET], owner: legacy}"))
        assert gw.holder.check() is not None
        after = await c.get("/api/users/1")
        text = (await c.get("/metrics")).text
    assert (before.headers["x-served-by"], after.headers["x-served-by"]) == ("new", "legacy")
    req = "gateway_requests_total"
    assert value(text, req, route="users.get", backend="new", role="primary", status_class="2xx") == 1
    assert value(text, req, route="users.moved", backend="legacy", role="primary", status_class="2xx") == 1


async def test_a_cut_off_answer_counts_as_an_error_between_publishes() -> None:
    metrics = GatewayMetrics()
    series = metrics.series("r", "new", "primary")
    series.add(200, 1.0)
    metrics.publish()
    series.add(None, 2.0)  # the same series object, after a publish took its counts
    series.add(503, 3.0)
    text = metrics.exposition().decode()
    assert value(text, "gateway_requests_total", route="r", backend="new", role="primary", status_class="2xx") == 1
    assert value(text, "gateway_requests_total", route="r", backend="new", role="primary", status_class="error") == 1
    assert value(text, "gateway_requests_total", route="r", backend="new", role="primary", status_class="5xx") == 1
    count = "gateway_request_duration_seconds_count"
    assert value(text, count, route="r", backend="new", role="primary") == 3
