"""GATEWAY_SHADOW_PROCESSES in a gateway built in-process: reads compared by a real shadow
process, writes' inline candidates kept here; what the worker skips and what the gateway refuses."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.exchange import Side
from gateway.settings import GatewaySettings
from gateway.shadow_worker import STARTED_LATE, Candidates
from legacy_flask import create_app as create_legacy
from tests.shadow.conftest import MakeGateway
from tests.shadow.test_runner import DEMO_MAP, drained
from tests.support import asgi_client

pytestmark = pytest.mark.anyio


async def test_reads_are_compared_in_a_shadow_process_and_writes_inline(demo_db: str, make_gateway: MakeGateway) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(demo_db)
    users = lambda: engine.connect().execute(sa.text("select count(*) from users")).scalar()  # noqa: E731
    before = users()
    gw, sink = await make_gateway(DEMO_MAP, shadow_processes=1, shadow_cpu_budget=1)
    assert gw.shadow_processes is not None and len(gw.shadow_processes.pids) == 1
    async with asgi_client(gw.dispatcher) as c:
        for i in range(1, 4):
            r = await c.get(f"/api/products/{i}")
            assert (r.status_code, r.headers["x-served-by"]) == (200, "legacy")
        r = await c.post("/api/users", json={"email": "p@example.com", "name": "P", "password": "long-enough-pw"})
        assert (r.status_code, r.headers["x-served-by"]) == (201, "legacy")
    await drained(sink, 4)
    assert [c["diffs"] for c in sink.comparisons] == [()] * 4
    assert not sink.skips
    assert users() == before + 1  # the rollback candidate ran here, in a transaction it could not commit
    engine.dispose()


async def test_a_copy_the_worker_could_not_start_in_time_is_skipped_not_run(demo_db: str) -> None:
    settings = GatewaySettings()
    candidates = Candidates({
        "native_app": settings.native_app, "legacy_app": settings.legacy_app, "legacy_url": None,
        "remote_timeout": 1.0, "remote_max_connections": 1, "legacy_threads": 1,
    })
    await candidates.lifespan.startup(candidates.state)
    try:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": "/api/products/1", "raw_path": b"/api/products/1", "root_path": "",
                 "query_string": b"", "headers": [(b"host", b"t")], "server": ("t", 80), "client": ("c", 1)}
        late = await candidates.run((1, Side.NEW.value, dict(scope), b"", 1000, 10_000, 0.5), time.monotonic() - 1)
        assert late == (1, "skipped", STARTED_LATE, 0.0)
        rid, kind, capture, _ = await candidates.run((2, Side.NEW.value, dict(scope), b"", 1000, 10_000, 0.5),
                                                     time.monotonic())
        assert (rid, kind, capture.status) == (2, "ok", 200)
    finally:
        await candidates.close()


def test_shadow_processes_need_the_apps_by_import_string(tmp_path: Path) -> None:
    map_path = tmp_path / "map.yaml"
    map_path.write_text(DEMO_MAP)
    with pytest.raises(ValueError) as raised:
        Gateway(GatewaySettings(map_path=map_path, shadow_processes=2),
                legacy_app=create_legacy({"DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "SECRET_KEY": "s"}))
    assert str(raised.value) == (
        "GATEWAY_SHADOW_PROCESSES=2: shadow processes load the apps by their import strings "
        "(GATEWAY_LEGACY_APP, GATEWAY_NATIVE_APP), but this gateway was handed the app objects; "
        "set GATEWAY_SHADOW_PROCESSES=0 to run shadows in-process"
    )


def test_settings_refuse_a_negative_process_count() -> None:
    with pytest.raises(ValueError, match="shadow_processes"):
        GatewaySettings(shadow_processes=-1)
