"""`gateway init-map` on a real app, and the app shadowed against a second copy of itself.

init-map runs in the app's own virtualenv, from the app's directory, as a user would run it;
the map it writes must pass `gateway check-map` and name every legacy endpoint. The shadow run
sets `shadow.sample: 1.0` on every GET route of that map (and reruns the owner on every one, so
that noise is learned), replays the app's own suite, and reads the parity report: two copies of
the same code on the same database must agree, so whatever the report flags is a false mismatch.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.compat.suite import SuiteRun, run_suite
from tests.compat.venvs import WORK, AppVenv

NO_NATIVE = "gateway.no_native:app"
MAX_FALSE_MISMATCH_RATE = 0.001


@dataclass
class MapCheck:
    routes: int = 0
    endpoints: int = 0
    unlisted: list[str] = field(default_factory=list)  # legacy endpoints no map entry names
    problems: list[str] = field(default_factory=list)


@dataclass
class ShadowCheck:
    run: SuiteRun | None = None
    compared: int = 0
    mismatched: int = 0
    candidate_errors: int = 0
    noise_fields: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)  # route: field (kind) the report calls real
    problems: list[str] = field(default_factory=list)

    @property
    def false_rate(self) -> float | None:
        total = self.compared + self.candidate_errors
        return (self.mismatched + self.candidate_errors) / total if total else None


def _gateway(
    venv: AppVenv, app_dir: Path, args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PYTHONPATH"))}
    run_env.update(env)
    return subprocess.run(
        [str(venv.bin / "gateway"), *args],
        cwd=app_dir,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def init_map(venv: AppVenv, app_dir: Path, spec: str, app_env: dict[str, str]) -> tuple[Path, MapCheck]:
    out = WORK / "out" / venv.app
    out.mkdir(parents=True, exist_ok=True)
    map_path = out / "init-map.yaml"
    env = {**app_env, "GATEWAY_LEGACY_APP": spec, "GATEWAY_NATIVE_APP": NO_NATIVE}
    check = MapCheck()
    done = _gateway(venv, app_dir, ["init-map", "--force", "-o", str(map_path)], env)
    if done.returncode != 0:
        check.problems.append(f"gateway init-map exited {done.returncode}: {done.stderr.strip()}")
        return map_path, check
    done = _gateway(venv, app_dir, ["check-map", str(map_path)], env)
    if done.returncode != 0:
        check.problems.append(
            f"gateway check-map on the generated map exited {done.returncode}: {done.stderr.strip()}"
        )
    done = _gateway(venv, app_dir, ["routes", "--map", str(map_path), "--json"], env)
    if done.returncode != 0:
        check.problems.append(f"gateway routes exited {done.returncode}: {done.stderr.strip()}")
        return map_path, check
    report = json.loads(done.stdout)
    legacy = [e for e in report["endpoints"] if e["legacy"]]
    check.endpoints = len(legacy)
    check.unlisted = [
        f"{e['method']} {e['legacy_path']} ({e['legacy_name']})" for e in legacy if e["entry"] is None
    ]
    check.routes = len(yaml.safe_load(map_path.read_text())["routes"])
    return map_path, check


def shadow_map(source: Path) -> Path:
    """The init-map output with every GET route shadowed, and the owner rerun on every shadow."""
    data = yaml.safe_load(source.read_text())
    data["defaults"]["shadow"] = {"sample": 0.0, "noise_sample": 1.0, "timeout_ms": 10_000}
    for route in data["routes"]:
        methods = route.get("methods")
        if methods is None or "GET" in methods:
            route["shadow"] = {"sample": 1.0}
    target = source.with_name("shadow-map.yaml")
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def shadow_run(
    venv: AppVenv, app_dir: Path, source_map: Path, pytest_args: list[str], env: dict[str, str]
) -> ShadowCheck:
    check = ShadowCheck()
    map_path = shadow_map(source_map)
    store = map_path.with_name("shadow-store.db")
    store.unlink(missing_ok=True)
    url = f"sqlite:///{store}"
    check.run = run_suite(
        venv.app,
        app_dir,
        venv.python,
        "shadow",
        pytest_args,
        {**env, "GATEWAY_COMPAT_MAP": str(map_path), "GATEWAY_COMPAT_STORE": url},
    )
    done = _gateway(venv, app_dir, ["parity", "--json", "--store", url, "--map", str(map_path)], {})
    if done.returncode != 0:
        check.problems.append(f"gateway parity exited {done.returncode}: {done.stderr.strip()}")
        return check
    for route in json.loads(done.stdout)["routes"]:
        rid = route["route_id"]
        check.compared += route["compared"]
        check.mismatched += route["mismatched"]
        check.candidate_errors += route["candidate_errors"]
        check.flagged += [f"{rid}: {f['path']} ({f['kind']})" for f in route["top_fields"]]
        check.noise_fields += [f"{rid}: {f['path']} ({f['kind']})" for f in route["noise_fields"]]
    if check.compared == 0:
        check.problems.append("the shadow run compared nothing: no GET route was shadowed")
    rate = check.false_rate
    if rate is not None and rate > MAX_FALSE_MISMATCH_RATE:
        check.problems.append(
            f"false mismatches {rate:.2%} of {check.compared + check.candidate_errors} shadowed requests "
            f"(at most {MAX_FALSE_MISMATCH_RATE:.1%}): {', '.join(check.flagged) or 'candidate errors'}"
        )
    return check
