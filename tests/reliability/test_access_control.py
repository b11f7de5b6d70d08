"""Every secret the gateway checks (admin and named tokens, the dashboard's sign-in and its
session signature, the metrics token, the override token) is compared with
hmac.compare_digest, whose time does not depend on where the bytes differ; and every
guarded door is shut to a wrong secret. A timing measurement would be noise on a shared
machine: the test records the comparisons instead."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest

from tests.reliability.fault_support import client, running_gateway

pytestmark = pytest.mark.anyio
MAP = "version: 1\nroutes:\n  - {id: f.ok, path: /f/ok, methods: [GET], owner: legacy}\n"


async def test_every_secret_is_compared_in_constant_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((bytes(a), bytes(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    secrets = {
        "admin_token": "adm-secret-1",
        "admin_tokens": {"alice": "alice-secret-2"},
        "metrics_token": "metrics-secret-3",
        "override_token": "override-secret-4",
    }
    async with running_gateway(tmp_path, MAP, **secrets) as gw, client(gw) as c:  # type: ignore[arg-type]
        wrong = {"Authorization": "Bearer nope"}
        assert (await c.get("/_gateway/api/rollout", headers=wrong)).status_code == 401
        assert (await c.get("/metrics", headers=wrong)).status_code == 401
        assert (await c.post("/_gateway/login", data={"token": "nope"})).status_code == 401
        forced = await c.get("/f/ok", headers={"X-Gateway-Backend": "new", "X-Gateway-Token": "nope"})
        assert forced.headers["x-served-by"] == "legacy"  # a wrong override token is ignored
        # and the right ones open them
        assert (await c.get("/_gateway/api/rollout", headers={"Authorization": "Bearer alice-secret-2"})).status_code == 200
        assert (await c.get("/metrics", headers={"Authorization": "Bearer metrics-secret-3"})).status_code == 200
        signed_in = await c.post("/_gateway/login", data={"token": "adm-secret-1"})
        assert signed_in.status_code == 303
        page = await c.get("/_gateway/")  # the session cookie (kept by the client), its signature checked
        assert page.status_code == 200
        forced = await c.get("/f/ok", headers={"X-Gateway-Backend": "new", "X-Gateway-Token": "override-secret-4"})
        assert forced.headers["x-served-by"] == "new"
    seen = {b for pair in compared for b in pair}
    for name, secret in (("admin", b"adm-secret-1"), ("named", b"alice-secret-2"),
                         ("metrics", b"metrics-secret-3"), ("override", b"override-secret-4")):
        assert secret in seen, f"the {name} token was not compared with hmac.compare_digest"
    assert b"nope" in seen
    assert len([p for p in compared if len(p[0]) == 32 and len(p[1]) == 32]) >= 1  # the cookie's HMAC
