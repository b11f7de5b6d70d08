"""Server CPU per request, side by side: `.venv/bin/python -m bench.cpu_per_request`.

Req/s on a shared two-core machine measures the neighbours as much as the server; the CPU
time the server process itself spent per request does not (much). Each variant is a real
uvicorn process (the common flags of `make bench`) pinned to BENCH_SERVER_CPU; wrk, pinned
to BENCH_LOAD_CPU, drives it for a short run, and the server's utime + stime from
/proc/<pid>/stat before and after, over wrk's request count, is the figure. Rounds
alternate the variants' order so that drifting load favours none; the median and the best
round are printed.

    python -m bench.cpu_per_request --path /api/users/1 --rounds 5 --seconds 3 \\
        bare gateway 'gateway:GATEWAY_LEGACY_THREADS=1' 'gateway@mymod:factory'

`--path` may be repeated: every variant is then measured on each path, one process per
variant. A variant is `bare` (bench.apps:native_app) or `gateway` (gateway.app:create_app with the bench
map), optionally `@module:factory` (another factory for the same environment, e.g. a wrapper
tried in an experiment, found through --pythonpath) and `:NAME=value,...` extra environment.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import wrk
from bench.configs import BENCH_DIR, gateway_env, prepare, uvicorn_flags
from bench.procstat import cpu_seconds, thread_cpu_seconds
from bench.servers import Server, Servers, free_port, http_status, signals_raise

FACTORIES = {"bare": "bench.apps:native_app", "gateway": "gateway.app:create_app"}
READY = {"bare": "/bench/native/items/1", "gateway": "/_gateway/health"}


def parse_variant(spec: str) -> tuple[str, str, dict[str, str]]:
    head, _, extra = spec.partition(":") if "@" not in spec.split(":", 1)[0] else _split_at(spec)
    kind, _, factory = head.partition("@")
    if kind not in FACTORIES:
        raise SystemExit(f"{spec}: a variant starts with one of {', '.join(FACTORIES)}")
    env = dict(pair.split("=", 1) for pair in extra.split(",") if pair)
    return kind, factory or FACTORIES[kind], env


def _split_at(spec: str) -> tuple[str, str, str]:
    # gateway@module:factory[:ENV=...]: the factory holds one ':' of its own
    kind, _, rest = spec.partition("@")
    module, _, rest = rest.partition(":")
    factory, _, extra = rest.partition(":")
    return f"{kind}@{module}:{factory}", ":", extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument(
        "--path", action="append", help="repeat to measure every variant on each path (one process each)"
    )
    parser.add_argument("--post", action="store_true", help="POST the bench's 1 KB JSON body")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pythonpath", default="", help="prepended for the servers (experiment factories)")
    args = parser.parse_args()
    args.path = args.path or ["/bench/native/items/1"]
    server_cpu = os.environ.get("BENCH_SERVER_CPU", "0")
    load_cpu = os.environ.get("BENCH_LOAD_CPU", "1")
    flags, _ = uvicorn_flags()
    with signals_raise(), tempfile.TemporaryDirectory(prefix="cpu-per-req-") as tmp:
        workdir = Path(tmp)
        env = prepare(workdir)
        if args.pythonpath:
            env["PYTHONPATH"] = args.pythonpath + os.pathsep + env["PYTHONPATH"]
        src = Path(env["BENCH_SRC"])
        with Servers(workdir, cpu=server_cpu, cwd=src) as servers:
            started: dict[str, tuple[Server, int]] = {}
            for i, spec in enumerate(args.variants):
                kind, factory, extra = parse_variant(spec)
                server_env = gateway_env(env, workdir, f"v{i}") if kind == "gateway" else dict(env)
                server_env.update(extra)
                port = free_port()
                argv = [sys.executable, "-m", "uvicorn", *flags, "--host", "127.0.0.1", "--port", str(port)]
                server = servers.start(
                    f"v{i}", [*argv, "--factory", factory], port=port, env=server_env, ready_path=READY[kind]
                )
                for path in args.path:
                    status = http_status(server.url + path)
                    if status >= 400 and not args.post:
                        raise SystemExit(f"{spec}: GET {path} answered {status}")
                started[spec] = (server, server.serving_pid())
            script = ["-s", str(BENCH_DIR / "post.lua")] if args.post else []
            body_env = {**os.environ, "BENCH_POST_BODY": str(workdir / "post.json")}

            def drive(server: Server, path: str, seconds: float) -> int:
                command = [
                    "taskset", "-c", load_cpu, "wrk", "-t1", f"-c{args.connections}",
                    f"-d{seconds:g}s", "--latency", *script, server.url + path,
                ]  # fmt: skip
                out = subprocess.run(command, capture_output=True, text=True, check=True, env=body_env)
                run = wrk.parse(out.stdout)
                if run.errors:
                    raise SystemExit(f"{server.name}: {run.errors} errors")
                return run.requests

            # what is measured: each variant on each path, in the order given
            units = [(spec, path) for spec in started for path in args.path]
            for spec, path in units:
                drive(started[spec][0], path, args.warmup)
            per_req: dict[tuple[str, str], list[float]] = {unit: [] for unit in units}
            # the event loop's thread against all the others (executor, aiosqlite, legacy pool)
            split: dict[tuple[str, str], list[float]] = {unit: [0.0, 0.0, 0] for unit in units}
            for r in range(args.rounds):
                for spec, path in units if r % 2 == 0 else reversed(units):
                    server, pid = started[spec]
                    before, threads = cpu_seconds([pid]), thread_cpu_seconds(pid)
                    requests = drive(server, path, args.seconds)
                    per_req[spec, path].append((cpu_seconds([pid]) - before) / requests * 1e6)
                    after = thread_cpu_seconds(pid)
                    main_s = after.get(pid, 0.0) - threads.get(pid, 0.0)
                    other_s = sum(v - threads.get(t, 0.0) for t, v in after.items() if t != pid)
                    split[spec, path][0] += main_s
                    split[spec, path][1] += other_s
                    split[spec, path][2] += requests
            first = statistics.median(per_req[units[0]])
            print(f"server CPU µs per request ({args.rounds} rounds x {args.seconds:g} s)")
            for (spec, path), values in per_req.items():
                median = statistics.median(values)
                print(
                    f"  {spec:40} {path:28} median {median:8.1f}  best {min(values):8.1f}  "
                    f"x{first / median:5.3f} of the first  rounds {' '.join(f'{v:.0f}' for v in values)}"
                )
                main_s, other_s, n = split[spec, path]
                print(
                    f"  {'':69} loop thread {main_s / n * 1e6:8.1f}  other threads {other_s / n * 1e6:8.1f}"
                    f"  ({len(thread_cpu_seconds(started[spec][1]))} threads now)"
                )

if __name__ == "__main__":
    main()
