"""One measurement: a pre-flight request, wrk pinned to its core, the CPU every process used
meanwhile (so a busy machine shows in the results), and the gateway's own counters."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import promtext, report, wrk
from bench.configs import BENCH_DIR, Measurement, Settings, plan, start_servers
from bench.procstat import core_busy_seconds, cpu_seconds
from bench.servers import Server, Servers, http_get


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def scrape(server: Server) -> list[promtext.Sample] | None:
    status, _, body = http_get(server.url + "/metrics")
    return promtext.parse(body.decode()) if status == 200 else None


def gateway_counts(samples: list[promtext.Sample] | None) -> dict[str, dict[str, float]]:
    if samples is None:
        return {}
    primary = promtext.by_label(samples, "gateway_requests_total", "backend", role="primary")
    shadow = promtext.by_label(samples, "gateway_shadow_comparisons_total", "result")
    skipped = promtext.by_label(samples, "gateway_shadow_skipped_total", "reason")
    return {"primary": primary, "shadow": shadow, "skipped": skipped}


def preflight(m: Measurement, server: Server, body: bytes) -> str:
    """One request before any load: the configuration must answer 200 from the expected side."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        server.url + m.path, data=body if m.method == "POST" else None, method=m.method
    )
    if m.method == "POST":
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, side, data = int(response.status), response.headers.get("x-served-by"), response.read()
    except urllib.error.HTTPError as exc:
        status, side, data = exc.code, exc.headers.get("x-served-by"), exc.read()
    if status != 200:
        raise RuntimeError(
            f"{m.key}: {m.method} {m.path} answered {status} (served by {side}): {data[:300]!r}"
        )
    if m.expect_side is not None and side != m.expect_side:
        raise RuntimeError(f"{m.key}: {m.path} was served by {side!r}, not {m.expect_side!r}")
    if m.method == "POST" and json.loads(data) != json.loads(body):
        raise RuntimeError(f"{m.key}: the echo did not send the body back")
    return f"{len(data)} B"


def wrk_command(m: Measurement, url: str, settings: Settings, seconds: float) -> list[str]:
    """wrk for one measurement: on the load core, or beside the servers when `m` says so."""
    return wrk.command(
        url + m.path,
        seconds=seconds,
        connections=settings.connections,
        threads=settings.threads,
        script=BENCH_DIR / "post.lua" if m.method == "POST" else None,
        cpu=settings.server_cpu if m.wrk_on_server_core else settings.load_cpu,
    )


def run_wrk(
    m: Measurement, servers: dict[str, Server], settings: Settings, seconds: float, workdir: Path
) -> dict[str, Any]:
    server = servers[m.server]
    involved = [server, *(servers[name] for name in m.also)]
    cmd = wrk_command(m, server.url, settings, seconds)
    env = {**os.environ, "BENCH_POST_BODY": str(workdir / "post.json")}
    is_gateway = m.server.startswith("gateway")
    before = scrape(server) if is_gateway else None
    pids = [pid for s in involved for pid in s.pids()]
    ours0, busy0, wrk0, wall0 = cpu_seconds(pids), core_busy_seconds(""), _children_cpu_s(), time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    ours1, busy1, wrk1, wall1 = cpu_seconds(pids), core_busy_seconds(""), _children_cpu_s(), time.monotonic()
    if done.returncode != 0:
        raise RuntimeError(f"{m.key}: wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    run = wrk.parse(done.stdout).to_dict()
    wall = wall1 - wall0
    run["server_cores"] = round((ours1 - ours0) / wall, 3)
    run["wrk_cores"] = round((wrk1 - wrk0) / wall, 3)
    run["other_cores"] = round(max(0.0, busy1 - busy0 - (ours1 - ours0) - (wrk1 - wrk0)) / wall, 3)
    if is_gateway:
        after = scrape(server)
        b, a = gateway_counts(before), gateway_counts(after)
        run["gateway"] = {part: promtext.delta(a.get(part, {}), b.get(part, {})) for part in a}
    return run


def describe(m: Measurement, runs: list[dict[str, Any]]) -> str:
    """A short note per configuration: what the gateway did, and what else ran on the machine."""
    notes: list[str] = []
    requests = sum(r["requests"] for r in runs)
    if runs and "gateway" in runs[0]:
        primary: dict[str, float] = {}
        shadow: dict[str, float] = {}
        skipped: dict[str, float] = {}
        for r in runs:
            for part, into in (("primary", primary), ("shadow", shadow), ("skipped", skipped)):
                for k, v in r["gateway"].get(part, {}).items():
                    into[k] = into.get(k, 0) + v
        served = sum(primary.values())
        if m.config == "gw_canary" and served:
            notes.append(f"new side served {primary.get('new', 0) / served:.0%}")
        if m.config.startswith("gw_shadow"):
            compared = sum(shadow.values())
            notes.append(
                f"shadows compared {compared:,.0f} ({compared / max(requests, 1):.0%} of requests; "
                f"{shadow.get('match', 0):,.0f} match, {shadow.get('diff', 0):,.0f} diff, "
                f"{shadow.get('error', 0):,.0f} error)"
            )
            if skipped:
                notes.append("skipped " + ", ".join(f"{v:,.0f} {k}" for k, v in sorted(skipped.items())))
    if runs:
        other = max(r["other_cores"] for r in runs)
        server = sum(r["server_cores"] for r in runs) / len(runs)
        notes.append(f"server {server:.2f} cores; others up to {other:.2f} cores")
    return "; ".join(notes)


def measure(settings: Settings, workdir: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    measurements = [
        m
        for m in plan()
        if (settings.configs is None or m.config in settings.configs)
        and (settings.workloads is None or m.workload in settings.workloads)
    ]
    wanted = {m.server for m in measurements} | {name for m in measurements for name in m.also}
    body = (workdir / "post.json").read_bytes()
    results: dict[str, dict[str, Any]] = {}
    with Servers(workdir, cpu=settings.server_cpu, cwd=Path(env["BENCH_SRC"])) as servers_ctl:
        servers = start_servers(servers_ctl, env, workdir, wanted, load_cpu=settings.load_cpu)
        for m in measurements:
            size = preflight(m, servers[m.server], body)
            results[m.key] = {
                "config": m.config,
                "workload": m.workload,
                "server": m.server,
                "path": m.path,
                "method": m.method,
                "response": size,
                "runs": [],
            }
        if settings.warmup > 0:
            log(f"warm-up: {len(measurements)} x {settings.warmup:g} s")
            for m in measurements:
                run_wrk(m, servers, settings, settings.warmup, workdir)
                pause(m, settings)
        for round_no in range(1, settings.repeats + 1):
            log(f"round {round_no}/{settings.repeats}: {len(measurements)} x {settings.duration:g} s")
            # forwards, then backwards: a load that drifts over a round favours neither side of a pair
            for m in measurements if round_no % 2 else measurements[::-1]:
                run = run_wrk(m, servers, settings, settings.duration, workdir)
                run["round"] = round_no
                results[m.key]["runs"].append(run)
                flag = f"  ERRORS {run['errors']}" if run["errors"] else ""
                log(
                    f"  {m.key:<22} {run['requests_per_s']:>9,.0f} req/s  p50 {run['p50_ms']:7.2f} ms  "
                    f"p99 {run['p99_ms']:7.2f} ms  others {run['other_cores']:.2f}{flag}"
                )
                pause(m, settings)
        for m in measurements:
            results[m.key]["summary"] = report.summarise(results[m.key]["runs"])
            results[m.key]["notes"] = describe(m, results[m.key]["runs"])
        for name, server in servers.items():
            if server.process.poll() is not None:
                raise RuntimeError(f"{name} died during the run:\n{server.log_tail()}")
    return results


def pause(m: Measurement, settings: Settings) -> None:
    # a shadow run leaves comparisons queued in the gateway: let them finish before the next
    time.sleep(settings.settle + (1.0 if m.config.startswith("gw_shadow") else 0.0))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
