"""/metrics after known traffic: exact counts per route, backend, role and status class."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.settings import GatewaySettings
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
