"""Shadow traffic through the real recorder and store, read back through `gateway parity`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.cli import main
from gateway.settings import GatewaySettings
from tests.support import asgi_client

MAP = """\
version: 1
routes:
  - {id: token, path: /token, methods: [GET], owner: legacy, shadow: {sample: 1.0, noise_sample: 1.0}}
"""


@pytest.mark.anyio
async def test_per_call_token_is_noise_in_the_report_not_a_mismatch(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    map_path = tmp_path / "migration_map.yaml"
    map_path.write_text(MAP)
    settings = GatewaySettings(
        map_path=map_path, store_url=db_url, legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
        native_app="tests.gateway.wsgi_fixtures:native_app",
    )
    gw = Gateway(settings)
    await gw.startup({})
    try:
        async with asgi_client(gw.dispatcher) as c:
            for _ in range(30):
                assert (await c.get("/token")).status_code == 200
        assert gw.shadow is not None
        await gw.shadow.stop(10)  # every queued comparison done
    finally:
        await gw.shutdown()  # the recorder flushes last
    monkeypatch.setenv("GATEWAY_MAP_PATH", str(map_path))
    assert main(["parity", "--route", "token", "--store", db_url, "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert (detail["compared"], detail["mismatched"], detail["match_rate"]) == (30, 0, 1.0)
    assert [(f["path"], f["verdict"]) for f in detail["fields"]] == [("body.token", "noise")]
    assert main(["parity", "--route", "token", "--store", db_url]) == 0
    assert "to ignore the noise, add to this route's shadow in the map: ignore: [body.token]" in capsys.readouterr().out
