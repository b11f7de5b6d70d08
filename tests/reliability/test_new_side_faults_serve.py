"""Faults on the new side against a real `gateway serve`: the shadow's faults cost the client
nothing, and a failing canary falls back, is rolled back, and says so in the metrics and audit."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.reliability.fault_support import scraped
from tests.reliability.faulty_apps import closing_server, good_body
from tests.support import wait_until

pytestmark = pytest.mark.e2e

FAULTY_APPS = {
    "GATEWAY_LEGACY_APP": "tests.reliability.faulty_apps:legacy_app",
    "GATEWAY_NATIVE_APP": "tests.reliability.faulty_apps:native_app",
}

SHADOW_MAP = """\
version: 1
defaults:
  shadow: {noise_sample: 0, timeout_ms: 500, max_body_bytes: 65536}
routes:
  - {id: f.hang, path: /f/hang, methods: [GET], owner: legacy, shadow: {sample: 1.0}}
  - {id: f.raise, path: /f/raise, methods: [GET], owner: legacy, shadow: {sample: 1.0}}
  - {id: f.slow, path: /f/slow, methods: [GET], owner: legacy, shadow: {sample: 1.0, timeout_ms: 5000}}
  - {id: f.5xx, path: /f/5xx, methods: [GET], owner: legacy, shadow: {sample: 1.0}}
  - {id: f.badjson, path: /f/badjson, methods: [GET], owner: legacy, shadow: {sample: 1.0}}
  - {id: f.huge, path: /f/huge, methods: [GET], owner: legacy, shadow: {sample: 1.0}}
"""

# what each fault's shadow comes to, as /metrics counts it
SHADOW_OUTCOMES = {
    "hang": ("gateway_shadow_comparisons_total", {"result": "error"}),
    "raise": ("gateway_shadow_comparisons_total", {"result": "error"}),
    "slow": ("gateway_shadow_comparisons_total", {"result": "match"}),
    "5xx": ("gateway_shadow_comparisons_total", {"result": "diff"}),
    "badjson": ("gateway_shadow_comparisons_total", {"result": "diff"}),
    "huge": ("gateway_shadow_skipped_total", {"reason": "response_too_large"}),
}


def metrics(server: Server) -> str:
    return httpx.get(server.url + "/metrics", timeout=10).text


def test_shadow_faults_leave_the_clients_answer_and_latency_alone(start_server: Callable[..., Server]) -> None:
    server = start_server(SHADOW_MAP, **FAULTY_APPS)
    with server.client() as c:
        for _ in range(3):
            for fault in SHADOW_OUTCOMES:
                started = time.monotonic()
                r = c.get(f"/f/{fault}")
                took = time.monotonic() - started
                assert (r.status_code, r.headers["x-served-by"], r.content) == (200, "legacy", good_body(fault))
                assert took < 1.0, f"{fault}: the client waited {took:.2f} s for the shadow"

    def counted() -> bool:
        text = metrics(server)
        return all(scraped(text, name, route=f"f.{fault}", **labels) == 3
                   for fault, (name, labels) in SHADOW_OUTCOMES.items())

    wait_until(counted, timeout=15, what="every shadow outcome counted")
    assert server.process.poll() is None


CANARY_MAP = """\
version: 1
routes:
"""
CANARY_ROUTE = """\
  - id: f.FAULT
    path: /f/FAULT
    methods: [GET]
    owner: legacy
    canary: {percent: 100, sticky: [client_ip]}
    fallback: {on: [5xx, exception, timeout], timeout_ms: 500}
    guard: {window_s: 60, min_samples: 5, max_error_rate: 0.5}
"""


def test_a_failing_canary_falls_back_and_is_rolled_back_with_an_audit_entry(
    start_server: Callable[..., Server],
) -> None:
    faults = {"raise": "exception", "5xx": "5xx", "hang": "timeout"}
    routes = "".join(CANARY_ROUTE.replace("FAULT", f) for f in [*faults, "close"])
    with closing_server(sent=12) as upstream:
        server = start_server(CANARY_MAP + routes, GATEWAY_STATE_POLL_INTERVAL="0.2", GATEWAY_ADMIN_TOKEN="ops",
                              FAULTY_UPSTREAM_URL=upstream.url, **FAULTY_APPS)
        with server.client() as c:
            for _ in range(5):
                for fault in faults:
                    r = c.get(f"/f/{fault}")
                    assert (r.status_code, r.headers["x-served-by"], r.content) == (200, "legacy", good_body(fault))
            for _ in range(5):
                # the new side's headers went out, then its upstream hung up: no fallback is
                # possible, the client sees the connection close short of Content-Length
                with pytest.raises(httpx.RemoteProtocolError, match=r"complete message body \(received 12 bytes, expected 1000\)"):
                    c.get("/f/close")

        def all_rolled_back() -> bool:
            text = metrics(server)
            return all(scraped(text, "gateway_rollbacks_total", route=f"f.{f}") == 1 for f in [*faults, "close"])

        wait_until(all_rolled_back, timeout=15, what="four rollbacks")
        text = metrics(server)
        for fault, reason in faults.items():
            assert scraped(text, "gateway_fallbacks_total", route=f"f.{fault}", reason=reason) == 5
        assert scraped(text, "gateway_requests_total", route="f.close", backend="new", role="primary",
                       status_class="error") == 5
        audit = httpx.get(server.url + "/_gateway/api/audit", headers={"Authorization": "Bearer ops"}).json()
        rollbacks = {e["route_id"]: e for e in audit["entries"] if e["kind"] == "rollback"}
        assert set(rollbacks) == {"f.raise", "f.5xx", "f.hang", "f.close"}
        for entry in rollbacks.values():
            assert entry["actor"] == "guard"
            assert "new error rate 100.0 % over 60 s (5 of 5) exceeds 50.0 %" in entry["summary"]
        with server.client() as c:
            after = c.get("/f/close")
        assert (after.status_code, after.headers["x-served-by"], after.content) == (200, "legacy", good_body("close"))
