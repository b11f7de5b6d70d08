"""`gateway parity export-test`: a stored mismatch becomes a test that fails until it is fixed."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cli import main
from gateway.compare import compare, compile_rules
from gateway.exchange import Capture, CapturedRequest, Side
from gateway.map_loader import parse_map
from gateway.parity.recorder import ParityRecorder
from tests.gateway.parity import divergent_apps
from tests.gateway.parity.support import recorder

ROOT = Path(__file__).resolve().parents[3]
APPS = "tests.gateway.parity.divergent_apps"
MAP = """\
version: 1
routes:
  - id: items.get
    path: /api/items/<int:item_id>
    methods: [GET]
    shadow: {sample: 1.0}
  - id: items.create
    path: /api/items
    methods: [POST]
    shadow: {sample: 1.0, unsafe: rollback}
  - id: items.quiet
    path: /api/quiet
"""
TOKEN = "Bearer tok-3x4mple-123"


def legacy_answer(app: Any, method: str, path: str, body: bytes, headers: dict[str, str]) -> Capture:
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver") as client:
        r = client.request(method, path, content=body, headers=headers)
    return Capture(r.status_code, tuple((k.lower(), v) for k, v in r.headers.multi_items()), r.content)


async def native_answer(app: Any, method: str, path: str, body: bytes, headers: dict[str, str]) -> Capture:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        r = await client.request(method, path, content=body, headers=headers)
    return Capture(r.status_code, tuple((k.lower(), v) for k, v in r.headers.multi_items()), r.content)


async def shadow(rec: ParityRecorder, route_id: str, method: str, path: str, payload: Any = None) -> None:
    """What the shadow runner does for one request: both sides, compared; and a noise run."""
    rules = parse_map(MAP).map.shadow_of(next(e for e in parse_map(MAP).map.routes if e.id == route_id))
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = {"authorization": TOKEN, "host": "testserver"}
    if payload is not None:
        headers["content-type"] = "application/json"
    legacy, native = divergent_apps.create_legacy(), divergent_apps.create_native()
    owner = legacy_answer(legacy, method, path, body, headers)
    candidate = await native_answer(native, method, path, body, headers)
    rec.record_comparison(
        route_id=route_id,
        owner_side=Side.LEGACY,
        owner=owner,
        candidate=candidate,
        request=CapturedRequest(method, path, "", tuple(headers.items()), body),
        diffs=compare(owner, candidate, compile_rules(rules)),
        owner_ms=1.0,
        candidate_ms=1.0,
        redact=rules.redact,
    )
    again = legacy_answer(legacy, method, path, body, headers)
    rec.record_noise(route_id=route_id, diffs=compare(owner, again, compile_rules(rules)))


@pytest.fixture
def exported_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    for name in list(os.environ):
        if name.startswith("GATEWAY_") or name == divergent_apps.FIXED:
            monkeypatch.delenv(name)
    monkeypatch.setenv("GATEWAY_LEGACY_APP", f"{APPS}:create_legacy")
    monkeypatch.setenv("GATEWAY_NATIVE_APP", f"{APPS}:create_native")
    url = f"sqlite:///{tmp_path}/parity.db"
    map_path = tmp_path / "migration_map.yaml"
    map_path.write_text(MAP)

    async def fill() -> None:
        rec = recorder(url)
        for i in range(1, 8):
            await shadow(rec, "items.get", "GET", f"/api/items/{i}")
        await shadow(rec, "items.create", "POST", "/api/items", {"name": "pen", "price": 5, "password": "hunter2"})
        assert await rec.flush()
        with monkeypatch.context() as fixed:  # a route whose sides differ only in the timestamp
            fixed.setenv(divergent_apps.FIXED, "1")
            for _ in range(20):  # ... which must be learnt as noise, not only seen once
                await shadow(rec, "items.quiet", "GET", "/api/items/1")
            assert await rec.flush()

    asyncio.run(fill())
    monkeypatch.setenv("GATEWAY_STORE_URL", url)
    monkeypatch.setenv("GATEWAY_MAP_PATH", str(map_path))
    return url, map_path


def run_pytest(path: Path, fixed: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != divergent_apps.FIXED}
    env["PYTHONPATH"] = str(ROOT)
    if fixed:
        env[divergent_apps.FIXED] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_an_exported_test_fails_while_the_sides_differ_and_passes_once_fixed(
    exported_env: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "test_items_get_parity.py"
    assert main(["parity", "export-test", "--route", "items.get", "--output", str(out)]) == 0
    assert "5 cases for route items.get" in capsys.readouterr().err  # the per-signature cap
    text = out.read_text()
    assert "tok-3x4mple" not in text  # credentials were redacted before they were stored
    assert "('body.served_at', 'value')" in text  # known noise travels with the test

    broken = run_pytest(out, fixed=False)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "5 failed" in broken.stdout
    assert "body.price (type): legacy '10' vs new '\"10\"'" in broken.stdout
    assert "body.served_at (value)" not in broken.stdout  # noise is never reported as a failure

    fixed = run_pytest(out, fixed=True)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "5 passed" in fixed.stdout


def test_a_write_with_a_redacted_body_is_replayed_too(
    exported_env: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["parity", "export-test", "--route", "items.create"]) == 0
    text = capsys.readouterr().out
    assert "hunter2" not in text and "'password': '[redacted]'" in text
    out = tmp_path / "test_items_create_parity.py"
    out.write_text(text)
    assert run_pytest(out, fixed=False).returncode == 1
    assert run_pytest(out, fixed=True).returncode == 0


def test_nothing_to_export_and_refusals(exported_env: tuple[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    # items.quiet differs only in its timestamp, which is noise: no real mismatch to replay
    assert main(["parity", "export-test", "--route", "items.quiet"]) == 1
    assert "nothing to export" in capsys.readouterr().err
    assert main(["parity", "export-test", "--route", "nope"]) == 2
    assert "no route 'nope'" in capsys.readouterr().err
    existing = tmp_path / "already.py"
    existing.write_text("keep me")
    assert main(["parity", "export-test", "--route", "items.get", "-o", str(existing)]) == 1
    assert existing.read_text() == "keep me"
    assert main(["parity", "export-test", "--route", "items.get", "-o", str(existing), "--force"]) == 0
    assert "def test_both_sides_answer_alike" in existing.read_text()


def test_redacted_headers_are_not_replayed_and_replacements_can_be_given(
    exported_env: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "test_replay_headers.py"
    assert main(["parity", "export-test", "--route", "items.create", "-o", str(out)]) == 0
    spec = importlib.util.spec_from_file_location("exported_parity_test", out)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    [case] = module.CASES
    host, target, headers, body = module._request(case)
    assert (host, target) == ("testserver", "/api/items")
    assert headers == {"content-type": "application/json"}  # no "[redacted]" Authorization
    assert json.loads(body) == {"name": "pen", "price": 5, "password": "[redacted]"}
    monkeypatch.setenv("GATEWAY_REPLAY_HEADERS", '{"Authorization": "Bearer fresh-test-token"}')
    assert module._request(case)[2] == {"content-type": "application/json", "Authorization": "Bearer fresh-test-token"}
