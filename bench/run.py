"""`make bench`: every configuration as a real server on one core, wrk on the other, side by side.

All servers are started first and stay up (idle ones cost nothing); then each round runs every
measurement once, so slow drifts of a busy machine hit all configurations alike, and the
ratios are taken between medians of the same run. Then the micro-benchmarks and the soak.
Writes bench/results.json and bench/RESULTS.md. Settings: BENCH_* variables (bench/configs.py,
bench/README.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import extras, report
from bench.configs import POST_BODY_BYTES, Settings, prepare, uvicorn_flags
from bench.measure import log, measure
from bench.meta import code_fingerprint, gateway_settings, git_state, loadavg, machine, notes, versions
from bench.servers import signals_raise


def main() -> int:
    settings = Settings.from_env()
    if shutil.which("wrk") is None:
        log("wrk is not installed: run bench/setup.sh (make bench does)")
        return 2
    out_dir = Path(settings.out_dir)
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    started = datetime.now(UTC)
    load_before = loadavg()
    git_before, code_before = git_state(), code_fingerprint()
    log(f"bench: workdir {workdir}, load average {load_before}, settings {settings}")
    results: dict[str, Any] = {}
    try:
        with signals_raise():
            env = prepare(workdir)
            _, uvicorn_desc = uvicorn_flags()
            results = {
                "settings": {
                    "mode": "quick (BENCH_QUICK=1): indicative only" if settings.quick else "full",
                    "per measurement": f"warm-up {settings.warmup:g} s, then {settings.repeats} x "
                    f"{settings.duration:g} s (rounds: every configuration once per round)",
                    "wrk": f"{settings.threads} thread, {settings.connections} connections, --latency, "
                    f"pinned to CPU {settings.load_cpu} (the `_own` keep-alive rows: to CPU "
                    f"{settings.server_cpu}, beside the gateway, the upstream's core to itself)",
                    "servers": f"one process each (1 worker), pinned to CPU {settings.server_cpu}, 127.0.0.1",
                    "uvicorn (every ASGI server)": uvicorn_desc,
                    "gunicorn": "-w 1 -k sync --log-level warning",
                    "gateway": "uvicorn --factory gateway.app:create_app, map bench/bench_map.yaml, "
                    + gateway_settings(env, workdir),
                    "POST body": f"{POST_BODY_BYTES} B JSON object (run.py post_body), bench/post.lua",
                    "database": "SQLite demo DB seeded in a temp dir (`gateway seed`), parity store too",
                },
                "meta": {"machine": machine(), "versions": versions(), "notes": []},
            }
            results["measurements"] = measure(settings, workdir, env)
            results["ratios"] = report.ratios(results["measurements"])
            if settings.micro:
                results["micro"] = run_micro(settings, env)
            results["extras"] = extras.run(
                extras.selected(os.environ.get("BENCH_EXTRAS")), quick=settings.quick,
                cwd=env["BENCH_SRC"], env=env,
            )
            if settings.soak:
                from bench import soak

                results["soak"] = soak.run(
                    soak.SoakSettings.from_env(), workdir / "soak", Path(env["BENCH_SRC"])
                )
    except KeyboardInterrupt:
        log("bench: interrupted; every server it started is stopped")
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = loadavg()
    finished = datetime.now(UTC)
    results["meta"]["run"] = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "duration": f"{(finished - started).total_seconds() / 60:.1f} min",
        "git": git_before,
        "code the servers ran": f"a snapshot of gateway, features, legacy_flask and bench taken at the start "
        f"(fingerprint {code_before})",
        "load average (1, 5, 15 min) before": load_before,
        "load average after": load_after,
    }
    results["meta"]["notes"] = notes(results, load_before)
    code_after = code_fingerprint()
    if code_after != code_before:
        results["meta"]["notes"].append(
            f"the tree changed during this run (git {git_before} -> {git_state()}); every server ran the "
            f"snapshot taken at the start (fingerprint {code_before}), the figures are of that version."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out_dir / "RESULTS.md").write_text(report.render(results))
    log(f"bench: wrote {out_dir / 'RESULTS.md'} and results.json")
    for row in results["ratios"]:
        value = "—" if row["value"] is None else f"{row['value']:.2f}"
        log(f"  {row['name']:<50} {row['workload']:<7} {value:>6}  {row['mark']}")
    return 0


def run_micro(settings: Settings, env: dict[str, str]) -> dict[str, Any]:
    log("micro-benchmarks (bench/micro.py)")
    cmd = ["taskset", "-c", settings.server_cpu, sys.executable, "-m", "bench.micro", "--json"]
    if settings.quick:
        cmd.append("--quick")
    done = subprocess.run(cmd, cwd=env["BENCH_SRC"], env=env, capture_output=True, text=True, check=True)
    sys.stderr.write(done.stderr)
    return dict(json.loads(done.stdout))


if __name__ == "__main__":
    raise SystemExit(main())
