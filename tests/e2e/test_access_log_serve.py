"""The access log of a real `gateway serve`: JSON lines on stderr, and no secret anywhere in its output."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.support import wait_until

pytestmark = pytest.mark.e2e

FIELDS = {"time", "request_id", "method", "path", "route", "backend", "status", "latency_ms"}
SECRETS = ("tok-SECRET", "cookie-SECRET", "override-SECRET", "q-SECRET", "pw-SECRET", "login-SECRET")
HEADERS = {
    "Authorization": "Bearer tok-SECRET",
    "Cookie": "session=cookie-SECRET",
    "X-Gateway-Token": "override-SECRET",
    "X-Gateway-Backend": "new",
}


def access_lines(server: Server) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return {line["request_id"]: line for line in lines if "request_id" in line}


def test_serve_writes_json_access_lines_without_secrets(start_server: Callable[..., Server]) -> None:
    server = start_server()  # the shipped map: products.get is shadowed for every request
    with server.client(headers=HEADERS) as c:
        shadowed = c.get("/api/products/3?token=q-SECRET", headers={"X-Request-ID": "e2e-shadowed"})
        native = c.get("/api/users/1?token=q-SECRET", headers={"X-Request-ID": "e2e-native"})
        unmapped = c.get("/healthz?token=q-SECRET", headers={"X-Request-ID": "e2e-unmapped"})
        created = c.post("/api/users?token=q-SECRET", headers={"X-Request-ID": "e2e-body"},
                         json={"email": "e2e@example.com", "name": "E2E", "password": "pw-SECRET-123"})
        login = c.post("/auth/login", headers={"X-Request-ID": "e2e-login"},
                       data={"email": "alice@example.com", "password": "login-SECRET-1"})
    assert [r.status_code for r in (shadowed, native, unmapped, created, login)] == [200, 200, 200, 201, 401]
    ids = {"e2e-shadowed", "e2e-native", "e2e-unmapped", "e2e-body", "e2e-login"}
    wait_until(lambda: set(access_lines(server)) >= ids, timeout=10, what="five access lines")

    server.process.send_signal(signal.SIGTERM)  # the whole output, shutdown included
    server.process.wait(20)
    log = server.log()
    for secret in SECRETS:
        assert secret not in log, f"{secret} in the server's output:\n{log}"
    # every JSON line parses (the gateway's own lines are JSON too, by default)
    json_lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(line.get("logger") == "gateway" for line in json_lines)
    lines = access_lines(server)
    assert set(lines) == ids  # one line per request; health checks and /metrics are not in it
    for line in lines.values():
        assert FIELDS <= set(line) <= FIELDS | {"shadow"}
        assert "?" not in line["path"]
    assert lines["e2e-shadowed"]["route"] == "products.get"
    assert lines["e2e-shadowed"]["backend"] == "legacy"  # the override without its token is ignored
    assert lines["e2e-shadowed"]["shadow"] in {"match", "diff"}
    assert (lines["e2e-native"]["route"], lines["e2e-native"]["backend"]) == ("users.get", "new")
    assert (lines["e2e-unmapped"]["route"], lines["e2e-unmapped"]["path"]) == ("unmapped", "/healthz")
    assert (lines["e2e-body"]["route"], lines["e2e-body"]["status"]) == ("users.create", 201)
    assert "shadow" not in lines["e2e-body"]
    # uvicorn's own access log (which prints query strings) is off
    assert '"GET /api/products/3' not in log
