"""A guard rolls a failing route back, and every worker of a 2-worker gateway follows (PostgreSQL store)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import GATEWAY, ROOT, Server

pytestmark = pytest.mark.e2e

MAP = """\
version: 1
routes:
  - id: products.get
    path: /api/products/<int:product_id>
    methods: [GET]
    owner: new
    guard: {min_samples: 10, max_error_rate: 0.2, window_s: 30}
"""


def served_by_fresh_connections(server: Server, n: int) -> list[str]:
    """Each request on a new connection, so the kernel spreads them over both workers."""
    sides = []
    for i in range(n):
        with httpx.Client(base_url=server.url, timeout=10) as c:
            sides.append(c.get(f"/api/products/{1 + i % 5}").headers["x-served-by"])
    return sides


def test_guard_rollback_reaches_every_worker_within_five_seconds(
    start_server: Callable[..., Server], pg_url: str
) -> None:
    server = start_server(MAP, workers=2, GATEWAY_STORE_URL=pg_url,
                          GATEWAY_NATIVE_APP="tests.shadow.divergent_native:create_app",
                          DIVERGENT_NATIVE_RAISE="1", GATEWAY_STATE_POLL_INTERVAL="1")
    first_legacy = None
    deadline = time.monotonic() + 30
    while first_legacy is None:
        assert time.monotonic() < deadline, "no rollback within 30 s of failing traffic"
        if "legacy" in served_by_fresh_connections(server, 4):
            first_legacy = time.monotonic()
    # from at most 5 s after the first worker rolled back, no worker sends traffic to new
    while time.monotonic() < first_legacy + 5:
        time.sleep(0.2)
    assert set(served_by_fresh_connections(server, 30)) == {"legacy"}
    env = {**os.environ, "GATEWAY_STORE_URL": pg_url, "GATEWAY_MAP_PATH": str(server.map_path)}
    audit = subprocess.run([*GATEWAY, "audit", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    rollbacks = [e for e in json.loads(audit.stdout)["entries"] if e["kind"] == "rollback"]
    assert len(rollbacks) == 1, rollbacks  # two workers, one decision on record
    assert rollbacks[0]["route_id"] == "products.get" and rollbacks[0]["actor"] == "guard"
    assert "error rate" in rollbacks[0]["summary"]
    assert rollbacks[0]["details"]["figures"]["new_requests"] >= 10
