"""The benchmarks of `make bench` that are not a wrk run against one of its servers.

Each is a module run as `python -m MODULE --json [--quick]` from the code snapshot, after the
wrk rounds (so it never shares the machine with them). It starts what it needs itself, pins
it as it needs, and prints one JSON object on stdout:

    {"title": "...", "markdown": "a section of RESULTS.md",
     "ratios": [{"name": "...", "workload": "...", "value": 1.04, "op": "<=", "target": 1.2,
                 "unit": "" (optional, e.g. " µs")}]}

Its ratios join the table of ratios with PASS/MISS marks, its markdown becomes a section. A
module that fails is reported as such (its ratios MISS as N/A), never silently dropped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

# (name, module, what it measures): in the order they run and RESULTS.md lists them
EXTRAS: tuple[tuple[str, str, str], ...] = (
    ("request_path", "bench.request_path", "the gateway's own work per request, no-op backend"),
    ("http_clients", "bench.bench_http_clients", "remote mode's HTTP client against httpx and aiohttp"),
    ("shadow_isolation", "bench.shadow_isolation", "primary latency under shadows, open loop"),
    ("reload_cost", "bench.reload_cost", "primary latency during 10,000-entry map reloads"),
    ("parse_map", "bench.bench_parse_map", "parse_map CPU time on 1,000 and 10,000 entries"),
)
TIMEOUT_S = 1800


def selected(raw: str | None) -> list[tuple[str, str, str]]:
    """BENCH_EXTRAS: unset or `1` runs all, `0` none, else a comma-separated list of names."""
    if raw in (None, "", "1", "true", "yes"):
        return list(EXTRAS)
    if raw in ("0", "false", "no"):
        return []
    names = {x.strip() for x in raw.split(",") if x.strip()}
    unknown = names - {name for name, _, _ in EXTRAS}
    if unknown:
        raise ValueError(f"BENCH_EXTRAS: unknown {', '.join(sorted(unknown))} (known: "
                         f"{', '.join(name for name, _, _ in EXTRAS)})")
    return [e for e in EXTRAS if e[0] in names]


def run_one(module: str, *, quick: bool, cwd: str, env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", module, "--json", *(["--quick"] if quick else [])]
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"{module} did not finish within {TIMEOUT_S} s"}
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return {"error": f"{module} exited with {done.returncode}: {tail}"}
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        return {"error": f"{module} printed no JSON result ({exc})"}
    if not isinstance(result, dict):
        return {"error": f"{module} printed {type(result).__name__}, not a JSON object"}
    return result


def run(names: list[tuple[str, str, str]], *, quick: bool, cwd: str, env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, module, about in names:
        print(f"{name}: {about} ({module})", file=sys.stderr, flush=True)
        out[name] = run_one(module, quick=quick, cwd=cwd, env=env)
    return out
