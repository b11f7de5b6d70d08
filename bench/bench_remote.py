"""Remote mode against a keep-alive upstream, with the gateway on a core of its own:
`.venv/bin/python -m bench.bench_remote [--rounds 3] [--seconds 8] [--profile 12]` (a few
minutes, not part of `make bench`, not run by pytest).

One upstream serving `bench.apps:legacy_app()` (`--upstream`: gunicorn gthread or uvicorn +
a2wsgi, started as bench_http_clients.py starts them) pinned to `--upstream-cpu` (1); wrk on
the same core (`--wrk-cpu`, 1), so the proxies on `--proxy-cpu` (0) have that core to
themselves. Each round, for the GET and the POST workloads, wrk drives in turn:

- `upstream`: the upstream itself, directly: the req/s remote mode is held to (>= 0.90x);
- `gw_remote`: the gateway (`uvicorn --factory gateway.app:create_app`, the bench map, the
  settings `make bench` uses) with `GATEWAY_LEGACY_URL` = the upstream;
- `naive_proxy`: FastAPI + one plain `httpx.AsyncClient` (bench/baselines.py) to the upstream.

req/s are the medians over the rounds; the CPU each process used per request (/proc) is
given beside them, which a shared machine moves much less, and how often per request the
upstream's threads waited (voluntary context switches): beside wrk on one core, the upstream
waits about twice as often when its requests come from a proxy on the other core as when wrk
sends them, and pays ~25 µs more per request for it; `--wrk-cpu 0` gives the upstream its
core to itself, so that its requests come from the other core in every configuration.
`--profile N` then samples the gateway with `py-spy record --gil` for N seconds under the GET
load and charges the samples as bench/profile.py does (profiles/remote-keepalive.{txt,svg},
and the summary on stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import wrk
from bench.bench_http_clients import tree_cpu_s, upstream_commands
from bench.configs import BENCH_DIR, gateway_env, prepare, uvicorn_flags
from bench.procstat import voluntary_switches
from bench.servers import Server, Servers, free_port, signals_raise

WORKLOADS = {"get": "/bench/legacy/items/1", "post": "/bench/legacy/echo"}
OUT = BENCH_DIR / "profiles"


def start(
    args: argparse.Namespace, workdir: Path, env: dict[str, str], ups: Servers, proxies: Servers
) -> dict[str, Server]:
    port = free_port()
    servers = {
        "upstream": ups.start(
            "upstream", upstream_commands(port)[args.upstream], port=port, env=env, ready_path="/healthz"
        )
    }
    flags, _ = uvicorn_flags()
    uvicorn = [sys.executable, "-m", "uvicorn", *flags, "--host", "127.0.0.1"]
    upstream = servers["upstream"].url
    for name, factory, server_env, ready in (
        (
            "gw_remote",
            "gateway.app:create_app",
            gateway_env(env, workdir, "remote", GATEWAY_LEGACY_URL=upstream),
            "/_gateway/health",
        ),
        ("naive_proxy", "bench.baselines:naive_proxy", {**env, "BENCH_UPSTREAM_URL": upstream}, "/healthz"),
    ):
        p = free_port()
        servers[name] = proxies.start(
            name, [*uvicorn, "--port", str(p), "--factory", factory], port=p, env=server_env, ready_path=ready
        )
    return servers


def drive(
    args: argparse.Namespace,
    workdir: Path,
    servers: dict[str, Server],
    target: str,
    workload: str,
    seconds: float,
) -> dict[str, Any]:
    url = servers[target].url + WORKLOADS[workload]
    script = BENCH_DIR / "post.lua" if workload == "post" else None
    cmd = wrk.command(url, seconds=seconds, connections=args.connections, script=script, cpu=args.wrk_cpu)
    before = {name: tree_cpu_s(s) for name, s in servers.items()}
    upstream_pids = servers["upstream"].pids()
    waits_before = voluntary_switches(upstream_pids)
    out = subprocess.run(
        cmd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_POST_BODY": str(workdir / "post.json")},
    )
    run = wrk.parse(out.stdout)
    cpu = {name: (tree_cpu_s(s) - before[name]) / max(run.requests, 1) * 1e6 for name, s in servers.items()}
    return {
        "rps": run.requests_per_s,
        "p99_ms": run.p99_ms,
        "errors": run.errors,
        "proxy_cpu_us": cpu[target] if target != "upstream" else 0.0,
        "upstream_cpu_us": cpu["upstream"],
        # the upstream's threads waiting, per request: where its requests come from changes it
        "upstream_waits": (voluntary_switches(upstream_pids) - waits_before) / max(run.requests, 1),
    }


def profile(args: argparse.Namespace, servers: dict[str, Server]) -> dict[str, Any]:
    from bench.profile import record, summarise

    OUT.mkdir(exist_ok=True)
    pid = servers["gw_remote"].serving_pid()
    url = servers["gw_remote"].url + WORKLOADS["get"]
    for fmt, suffix in (("raw", "txt"), ("flamegraph", "svg")):
        load = subprocess.Popen(
            wrk.command(url, seconds=args.profile + 2, connections=args.connections, cpu=args.wrk_cpu),
            stdout=subprocess.DEVNULL,
        )
        try:
            record(pid, args.profile, OUT / f"remote-keepalive.{suffix}", fmt, native=False)
        finally:
            load.wait(args.profile + 60)
    return summarise((OUT / "remote-keepalive.txt").read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--upstream", default="gunicorn_gthread", choices=["gunicorn_gthread", "uvicorn_a2wsgi"]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--targets", default="upstream,gw_remote,naive_proxy")
    parser.add_argument("--workloads", default="get,post")
    parser.add_argument("--proxy-cpu", default="0")
    parser.add_argument("--upstream-cpu", default="1")
    parser.add_argument("--wrk-cpu", default="1")
    parser.add_argument("--profile", type=int, default=0, help="seconds of py-spy on the gateway (0: none)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    targets, workloads = args.targets.split(","), args.workloads.split(",")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    summary: dict[str, Any] = {}
    load0 = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp, signals_raise():
        workdir = Path(tmp)
        env = prepare(workdir)
        src = Path(env["BENCH_SRC"])
        with (
            Servers(workdir, cpu=args.upstream_cpu, cwd=src) as ups,
            Servers(workdir, cpu=args.proxy_cpu, cwd=src) as proxies,
        ):
            servers = start(args, workdir, env, ups, proxies)
            for workload in workloads:
                for target in targets:
                    drive(args, workdir, servers, target, workload, args.warmup)
            for r in range(args.rounds):
                for workload in workloads:
                    order = targets if r % 2 == 0 else list(reversed(targets))
                    for target in order:
                        result = drive(args, workdir, servers, target, workload, args.seconds)
                        runs.setdefault((workload, target), []).append(result)
                        print(
                            f"round {r + 1} {workload:4} {target:12} {result['rps']:7.0f} req/s "
                            f"p99 {result['p99_ms']:6.1f} ms  proxy {result['proxy_cpu_us']:6.0f} µs/req  "
                            f"upstream {result['upstream_cpu_us']:5.0f} µs/req "
                            f"{result['upstream_waits']:4.2f} waits/req  "
                            f"errors {result['errors']}",
                            file=sys.stderr,
                            flush=True,
                        )
            if args.profile:
                summary = profile(args, servers)
    lines = [
        "| workload | target | req/s | x upstream | p99 ms | proxy CPU µs/req | upstream CPU µs/req "
        "| upstream waits/req | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for workload in workloads:
        base = (
            statistics.median(r["rps"] for r in runs[workload, "upstream"]) if "upstream" in targets else None
        )
        for target in targets:
            mine = runs[workload, target]
            row = {
                "workload": workload,
                "target": target,
                "rps": statistics.median(r["rps"] for r in mine),
                "p99_ms": statistics.median(r["p99_ms"] for r in mine),
                "proxy_cpu_us": statistics.median(r["proxy_cpu_us"] for r in mine),
                "upstream_cpu_us": statistics.median(r["upstream_cpu_us"] for r in mine),
                "upstream_waits": statistics.median(r["upstream_waits"] for r in mine),
                "errors": sum(r["errors"] for r in mine),
            }
            rows.append(row)
            ratio = f"{row['rps'] / base:.2f}" if base else "—"
            lines.append(
                f"| {workload} | {target} | {row['rps']:,.0f} | {ratio} | {row['p99_ms']:.1f} | "
                f"{row['proxy_cpu_us']:,.0f} | {row['upstream_cpu_us']:,.0f} | {row['upstream_waits']:.2f} | "
                f"{row['errors']} |"
            )
    print("\n".join(lines))
    for workload in workloads:
        with contextlib.suppress(KeyError, ZeroDivisionError):
            gw = {r["target"]: r for r in rows if r["workload"] == workload}
            by_rps = gw["gw_remote"]["rps"] / gw["naive_proxy"]["rps"]
            by_cpu = gw["naive_proxy"]["proxy_cpu_us"] / gw["gw_remote"]["proxy_cpu_us"]
            print(f"{workload}: gw_remote / naive_proxy req/s {by_rps:.2f}, by proxy CPU per request "
                  f"{by_cpu:.2f}")
    print(
        f"\nupstream {args.upstream} on CPU {args.upstream_cpu}, wrk ({args.connections} connections) on CPU "
        f"{args.wrk_cpu}, proxies on CPU {args.proxy_cpu}; {args.rounds} x {args.seconds:g} s; "
        f"{time.time() - started:.0f} s; load average before {' '.join(f'{x:.2f}' for x in load0)}, "
        f"after {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if summary:
        print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "profile": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
