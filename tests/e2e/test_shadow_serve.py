"""Shadow traffic against a real uvicorn process: a slow or broken candidate costs the client nothing."""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.support import wait_until

pytestmark = pytest.mark.e2e

MAP = """\
version: 1
routes:
  - id: products.get
    path: /api/products/<int:product_id>
    methods: [GET]
    owner: legacy
    shadow: {sample: SAMPLE, timeout_ms: 3000, noise_sample: 0}
"""


def latencies(server: Server, n: int) -> list[float]:
    out = []
    with server.client() as c:
        for i in range(n):
            started = time.perf_counter()
            r = c.get(f"/api/products/{1 + i % 5}")
            out.append(time.perf_counter() - started)
            assert (r.status_code, r.headers["x-served-by"]) == (200, "legacy")
            assert "name" in r.json()  # the owner's answer, not the divergent candidate's
    return out


def shadow_count(server: Server, result: str) -> float:
    with server.client() as c:
        text = c.get("/metrics").text
    prefix = f'gateway_shadow_comparisons_total{{result="{result}",route="products.get"}} '
    return next((float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)), 0.0)


def test_a_one_second_candidate_does_not_delay_the_owner(start_server: Callable[..., Server], tmp_path: Path) -> None:
    server = start_server(MAP.replace("SAMPLE", "0"), GATEWAY_NATIVE_APP="tests.shadow.divergent_native:create_app",
                          DIVERGENT_NATIVE_SLOW="1", GATEWAY_STORE_URL=f"sqlite:///{tmp_path}/parity.db")
    latencies(server, 5)  # warm up
    baseline = statistics.median(latencies(server, 15))
    shadowing = MAP.replace("SAMPLE", "1.0")
    server.map_path.write_text(shadowing)
    digest = hashlib.sha256(shadowing.encode()).hexdigest()
    wait_until(lambda: server.health()["map"]["sha256"] == digest, timeout=3, what="shadowing map loaded")  # type: ignore[index]
    shadowed = latencies(server, 15)
    assert statistics.median(shadowed) < baseline + 0.05, (baseline, shadowed)
    assert max(shadowed) < 0.5  # no request waited for its one-second shadow
    wait_until(lambda: shadow_count(server, "diff") >= 15, timeout=10, what="shadows compared")


def test_a_raising_candidate_is_never_seen_by_the_client(start_server: Callable[..., Server], tmp_path: Path) -> None:
    server = start_server(MAP.replace("SAMPLE", "1.0"), GATEWAY_NATIVE_APP="tests.shadow.divergent_native:create_app",
                          DIVERGENT_NATIVE_RAISE="1", GATEWAY_STORE_URL=f"sqlite:///{tmp_path}/parity.db")
    latencies(server, 5)
    wait_until(lambda: shadow_count(server, "error") >= 5, timeout=5, what="candidate errors counted")
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/_gateway/health").status_code == 200
