"""The cut-over gate: verdicts, and `cutover-check` / `check-map --against-store` through the CLI."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.map_schema import CutoverSettings
from gateway.parity import latency
from gateway.parity.cutover import verdict
from gateway.parity.report import RouteSummary, SignatureCount
from tests.gateway.parity.support import compare_once, diff, recorder

GATE = CutoverSettings(min_samples=100, max_mismatch_rate=0.01, max_p95_ratio=1.5)


def summary(compared: int = 0, mismatched: int = 0, errors: int = 0, legacy_ms: float = 10, new_ms: float = 10,
            timed: bool = True) -> RouteSummary:
    s = RouteSummary("r", compared=compared, exact_matches=compared - mismatched, candidate_errors=errors)
    if mismatched:
        s.signatures.append(SignatureCount("sig", (("body.x", "value"),), mismatched, 0.0, True))
    if timed and compared:
        s.histograms = {"legacy": {latency.bucket(legacy_ms): compared}, "new": {latency.bucket(new_ms): compared}}
    return s


@pytest.mark.parametrize(
    ("case", "ready", "reason"),
    [
        (summary(), False, "no data is not a pass"),
        (summary(compared=99), False, "only 99 of the 100 comparisons required"),
        (summary(compared=200, mismatched=3), False, "mismatch rate 1.5 % (3 of 200) is over the 1 % allowed"),
        (summary(compared=198, errors=2, mismatched=1), False, "(3 of 200)"),  # errors count against
        # histogram buckets are ~8 % wide: 16 ms and 10 ms read back as 16.6 and 9.7
        (summary(compared=200, new_ms=16), False, "new p95 16.6 ms is 1.71x legacy's 9.7 ms (at most 1.5x"),
        (summary(compared=200, timed=False), False, "no latency recorded for the legacy and new side"),
        (summary(compared=200, mismatched=2, new_ms=14), True, ""),  # at the limits: 1 %, 1.4x
        (summary(compared=100), True, ""),
    ],
)
def test_verdicts(case: RouteSummary, ready: bool, reason: str) -> None:
    v = verdict(case, GATE)
    assert v.ready is ready
    assert reason in "; ".join(v.reasons) if reason else v.reasons == ()


# --- through the CLI ------------------------------------------------------------------------

MAP = """\
version: 1
defaults:
  cutover: {{min_samples: 50, max_mismatch_rate: 0.02, max_p95_ratio: 1.5}}
routes:
  - id: ready
    path: /ready
    owner: {ready}
  - id: few
    path: /few
    owner: {few}
  - id: nodata
    path: /nodata
  - id: slow
    path: /slow
  - id: lenient
    path: /lenient
    cutover: {{min_samples: 5}}
"""
LINES = {"ready": 5, "few": 8}


def write_map(tmp_path: Path, ready: str = "new", few: str = "legacy") -> Path:
    path = tmp_path / "migration_map.yaml"
    path.write_text(MAP.format(ready=ready, few=few))
    return path


async def _fill(url: str) -> None:
    rec = recorder(url)
    for i in range(60):
        compare_once(rec, "ready", diffs=(diff("body.x"),) if i == 0 else (), owner_ms=10, candidate_ms=11)
        compare_once(rec, "slow", owner_ms=10, candidate_ms=30)
    for _ in range(10):
        compare_once(rec, "few")
        compare_once(rec, "lenient")
    assert await rec.flush()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/parity.db"
    asyncio.run(_fill(url))
    monkeypatch.setenv("GATEWAY_STORE_URL", url)
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cutover_check_passes_only_ready_routes(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_map(tmp_path)
    code, out, _ = run(capsys, "cutover-check", "ready", "lenient")
    assert code == 0
    assert out.startswith("ready: ready (60 samples, mismatch 1.67 %")
    for route, reason in (
        ("few", "only 10 of the 50 comparisons required"),
        ("nodata", "no data is not a pass"),
        ("slow", "is 3.17x legacy's"),
    ):
        code, out, _ = run(capsys, "cutover-check", "ready", route)
        assert code == 1, route
        assert f"{route}: NOT READY: " in out and reason in out


def test_cutover_check_without_routes_is_a_report(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_map(tmp_path)
    code, out, _ = run(capsys, "cutover-check")
    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines()] == ["ready", "few", "nodata", "slow", "lenient"]
    code, out, _ = run(capsys, "cutover-check", "--json", "slow", "ready")
    assert code == 1
    doc = json.loads(out)
    assert [(r["route_id"], r["ready"]) for r in doc["routes"]] == [("slow", False), ("ready", True)]
    assert doc["routes"][0]["p95_ratio"] == pytest.approx(3, rel=0.1)
    assert doc["routes"][1]["thresholds"] == {"min_samples": 50, "max_mismatch_rate": 0.02, "max_p95_ratio": 1.5}


def test_cutover_check_cannot_run_without_a_route_or_a_store(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_map(tmp_path)
    code, _, err = run(capsys, "cutover-check", "ready", "typo")
    assert code == 2 and "no route 'typo' in" in err and "ready, few, nodata" in err
    code, _, err = run(capsys, "cutover-check", "ready", "--store", f"sqlite:///{tmp_path}/other.db")
    assert code == 2 and "no parity store at" in err and "GATEWAY_STORE_URL" in err


def test_check_map_against_store_refuses_owner_new_on_a_route_not_ready(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_map(tmp_path, ready="new", few="legacy")
    code, out, _ = run(capsys, "check-map", "--no-apps", "--against-store", str(path))
    assert code == 0 and out.startswith(f"ok: {path}")

    path = write_map(tmp_path, ready="new", few="new")  # the change CI must stop
    code, out, err = run(capsys, "check-map", "--no-apps", "--against-store", str(path))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"{path}:{LINES['few']}: error: route 'few' is owner: new but not ready for cut-over: "
        "only 10 of the 50 comparisons required (see `gateway cutover-check few`)"
    ]
    code, _, _ = run(capsys, "check-map", "--no-apps", str(path))
    assert code == 0  # without the flag the store is not consulted

    code, _, err = run(capsys, "check-map", "--no-apps", "--against-store", "--store",
                       "postgresql://postgres@127.0.0.1:1/none", str(path))
    assert code == 2 and "cannot read the parity store" in err


def test_parity_report_and_route_view(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_map(tmp_path)
    code, out, _ = run(capsys, "parity")
    assert code == 0
    assert out.splitlines()[0].split() == [
        "ROUTE", "SAMPLES", "MATCH", "%", "MISMATCHED", "ERRORS", "SKIPPED", "LEGACY", "p50/p95", "NEW", "p50/p95"
    ]
    assert "cut-over: not ready: only 10 of the 50" in out
    code, out, _ = run(capsys, "parity", "--json")
    routes = {r["route_id"]: r for r in json.loads(out)["routes"]}
    assert routes["ready"]["mismatched"] == 1 and routes["ready"]["owner"] == "new"
    assert routes["ready"]["top_fields"][0]["path"] == "body.x"
    code, out, _ = run(capsys, "parity", "--route", "ready")
    assert code == 0
    assert "body.x  value" in out
    assert "legacy (owner)" in out and "| new (candidate)" in out
    assert '!   "price": 1' in out  # the differing line is marked, both sides shown
    assert "body.x (value): legacy 1 vs new 2" in out
    code, out, _ = run(capsys, "parity", "--route", "ready", "--json")
    assert json.loads(out)["mismatch_samples"][0]["owner"]["body"]["value"] == {"price": 1}
    code, _, err = run(capsys, "parity", "--route", "nodata")
    assert code == 1 and "no data for route 'nodata'" in err


@pytest.mark.parametrize("command", [["parity"], ["parity", "export-test"], ["cutover-check"], ["check-map"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    assert "--store" in capsys.readouterr().out
