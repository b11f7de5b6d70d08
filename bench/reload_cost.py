"""What a map reload costs the requests being served meanwhile (never run by pytest).

`python -m bench.reload_cost [--rounds N] [--entries N] [--variants child,thread]`

Gateways as `make bench` starts them (uvicorn --factory gateway.app:create_app, the bench apps,
pinned to BENCH_SERVER_CPU), each with its own copy of a map of the bench routes plus N filler
entries (bench/bench_parse_map.py's `generated_map`); `child` parses reloads in a niced child
process (GATEWAY_RELOAD_IN_CHILD=1, the default), `thread` on a thread of the gateway (=0),
`base` is the tree of --base (before issue 12: every reload parsed on a thread, and the
start-up heap not frozen), run from `git archive`, and `base-child` the same tree with its
reloads in the child (an A/B of a change to the child's path: --base the commit before it).
This process, pinned to BENCH_LOAD_CPU, drives /bench/native/items/1 with an open-loop
generator (bench/openloop.py) at the rate at which the first gateway uses --load of its core
(`openloop.calibrate`).

Each round drives every variant in turn (odd rounds forwards, even backwards): a quiet window,
then the map file is replaced (one filler entry's owner flipped, a temp file renamed over it,
as editors save) and /_gateway/health is polled until it serves the new hash. The temp file is
written before the quiet window, while the generator warms up, and only touched and renamed at
the write time: writing 1 MB on the generator's loop stalled its sends for 1-2.6 ms, and the
requests due then counted as slow ones of the reload's. Touched, it is as new as a saved file,
so the gateway waits out its settle time (gateway/reloader.py SETTLE_S) as it would in use.
A request counts for the reload window when it was scheduled between the write and 0.25 s
after the new map was seen (the audit entry of the change is written just after the swap), for
the quiet window when scheduled in the quiet seconds before the write. Latency runs from the
scheduled send time. "Near the swap" counts the requests due within SWAP_S of the moment the
new table took over (/_gateway/health's last_reload.at) that were slower than the quiet
window's p99: ~1 % of them would be by chance.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import configs, openloop
from bench.bench_parse_map import generated_map
from bench.openloop import percentile
from bench.procstat import core_busy_seconds, cpu_seconds
from bench.servers import ROOT, Server, Servers, http_get, signals_raise

TARGET = "/bench/native/items/1"
TAIL = 0.25  # seconds after the new map was seen that still count as the reload's
SWAP_S = 0.05  # seconds either side of the swap that count as near it


def map_text(entries: int) -> str:
    bench = (configs.BENCH_DIR / "bench_map.yaml").read_text()
    filler = generated_map(entries).split("routes:\n", 1)[1]
    return bench.rstrip("\n") + "\n  # filler: bench/reload_cost.py\n" + filler


def flip(text: str, k: int) -> str:
    """Entry k's owner the other way round (kinds 0, 1 and 3 of generated_map have no canary)."""
    lines = text.split("\n")
    start = lines.index(f"  - id: resource{k}.{'create' if k % 4 == 3 else 'get'}")
    for i in range(start + 1, start + 6):
        if lines[i].startswith("    owner: "):
            lines[i] = "    owner: " + ("legacy" if lines[i].endswith("new") else "new")
            return "\n".join(lines)
    raise ValueError(f"no owner line for entry {k}")


def stage(path: Path, text: str) -> Path:
    """The next map, written beside the served one (as an editor's temp file) but not yet in place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    return tmp


def swap_in(tmp: Path, path: Path) -> None:
    os.utime(tmp)  # saved just now, as far as the gateway's settle wait can tell
    os.replace(tmp, path)


@dataclass
class Variant:
    name: str
    server: Server
    map_path: Path
    text: str
    reloads: list[float] = field(default_factory=list)  # seconds from the write to the new map seen
    quiet: list[float] = field(default_factory=list)  # latencies, ms
    during: list[float] = field(default_factory=list)
    control: list[float] = field(default_factory=list)  # as long as the reload window, after it
    rounds: list[dict[str, float]] = field(default_factory=list)


def health(server: Server) -> dict[str, Any]:
    status, _, body = http_get(server.url + "/_gateway/health", timeout=10)
    if status != 200:
        raise RuntimeError(f"{server.name}: health answered {status}")
    return dict(json.loads(body))


async def one_round(
    v: Variant, k: int, rate: float, quiet_s: float, conns: int, cpu: str
) -> dict[str, float]:
    new_text = flip(v.text, k)
    new_sha = hashlib.sha256(new_text.encode()).hexdigest()
    tree = v.server.pids()
    ticks0, busy0 = cpu_seconds(tree), core_busy_seconds(cpu)
    gen = openloop.OpenLoop("127.0.0.1", v.server.port, TARGET, rate=rate, connections=conns)
    run = asyncio.create_task(gen.run())
    staged = stage(v.map_path, new_text)  # the gateway looks at it (an event) and finds no change
    await asyncio.sleep(1.0)  # warm-up: connections open, not counted
    q0 = time.time()
    await asyncio.sleep(quiet_s)
    written = time.time()
    swap_in(staged, v.map_path)
    deadline = written + 120
    while True:
        body = await asyncio.to_thread(health, v.server)
        if body["map"]["sha256"] == new_sha:
            seen = time.time()
            swapped = float(body["map"]["last_reload"]["at"])
            break
        if time.time() > deadline:
            raise RuntimeError(f"{v.name}: the reload was not seen within 120 s")
        await asyncio.sleep(0.02)
    # a control window as long as the reload's, right after it: does a window that long catch
    # the other agents' bursts anyway?
    control_from = seen + TAIL + 0.2
    control_to = control_from + min(seen + TAIL - written, 10.0)
    await asyncio.sleep(max(0.0, control_to - time.time()) + 0.1)
    gen.stop()
    samples = await run
    v.text = new_text
    tree = v.server.pids()
    ticks, busy = cpu_seconds(tree) - ticks0, core_busy_seconds(cpu) - busy0
    quiet = [lat for at, lat, ok in samples if q0 <= at < written and ok]
    during = [lat for at, lat, ok in samples if written <= at < seen + TAIL and ok]
    control = [lat for at, lat, ok in samples if control_from <= at < control_to and ok]
    errors = sum(1 for _, _, ok in samples if not ok)
    quiet_p99 = percentile(quiet, 0.99)
    near = [lat for at, lat, ok in samples if abs(at - swapped) <= SWAP_S and ok]
    v.quiet += quiet
    v.during += during
    v.control += control
    v.reloads.append(seen - written)
    row = {
        "reload_s": seen - written,
        "quiet_p50": percentile(quiet, 0.50),
        "quiet_p99": quiet_p99,
        "control_p99": percentile(control, 0.99),
        "reload_p50": percentile(during, 0.50),
        "reload_p99": percentile(during, 0.99),
        "n_quiet": len(quiet),
        "n_reload": len(during),
        "n_near": len(near),
        "slow_near": sum(1 for lat in near if lat > quiet_p99),
        "near_max": max(near, default=float("nan")),
        "errors": errors,
        "others_share": max(0.0, (busy - ticks) / busy) if busy > 0 else 0.0,
    }
    row["ratio_p99"] = row["reload_p99"] / row["quiet_p99"] if row["quiet_p99"] else float("nan")
    v.rounds.append(row)
    return row


async def main_async(args: argparse.Namespace) -> int:
    settings = configs.Settings.from_env()
    with tempfile.TemporaryDirectory(prefix="reload-cost-") as tmp, signals_raise():
        workdir = Path(tmp)
        env = configs.prepare(workdir)
        src = Path(env["BENCH_SRC"])
        flags, flag_text = configs.uvicorn_flags()
        text = map_text(args.entries)
        variants: list[Variant] = []
        base_src = workdir / "base-src"
        if {"base", "base-child"} & set(args.variants.split(",")):
            export(args.base, base_src)
        with (
            Servers(workdir, cpu=settings.server_cpu, cwd=src) as servers,
            Servers(workdir, cpu=settings.server_cpu, cwd=base_src) as base_servers,
        ):
            for name in args.variants.split(","):
                map_dir = workdir / f"map-{name}"
                map_dir.mkdir()
                map_path = map_dir / "bench_map.yaml"
                map_path.write_text(text)
                child = {"child": "1", "thread": "0", "base": "0", "base-child": "1"}[name]
                of_base = name.startswith("base")
                port = configs.free_port()
                # `base` runs the tree of --base (python -m puts its cwd first on sys.path)
                env_of = configs.base_env(workdir, base_src) if of_base else env
                server_env = configs.gateway_env(
                    env_of,
                    workdir,
                    f"reload-{name}",
                    GATEWAY_MAP_PATH=str(map_path),
                    GATEWAY_RELOAD_IN_CHILD=child,
                )
                argv = [sys.executable, "-m", "uvicorn", *flags, "--host", "127.0.0.1", "--port", str(port)]
                server = (base_servers if of_base else servers).start(
                    f"gw_{name}",
                    [*argv, "--factory", "gateway.app:create_app"],
                    port=port,
                    env=server_env,
                    ready_path="/_gateway/health",
                    timeout=120,
                )
                variants.append(Variant(name, server, map_path, text))
            os.sched_setaffinity(0, {int(c) for c in settings.load_cpu.split(",")})
            capacity = await openloop.capacity("127.0.0.1", variants[0].server.port, TARGET, seconds=3)
            first = variants[0].server

            async def cores_at(rate: float) -> float:
                tree = first.pids()
                cpu0, t0 = cpu_seconds(tree), time.monotonic()
                conns = args.connections
                gen = openloop.OpenLoop("127.0.0.1", first.port, TARGET, rate=rate, connections=conns)
                run = asyncio.create_task(gen.run())
                await asyncio.sleep(3)
                gen.stop()
                await run
                return (cpu_seconds(tree) - cpu0) / (time.monotonic() - t0)

            rate, cores = await openloop.calibrate(cores_at, capacity * args.load, args.load)
            print(
                f"# {args.entries:,} filler entries + the bench routes, {len(text) / 1024:,.0f} KB; "
                f"uvicorn {flag_text}; servers on CPU {settings.server_cpu}, load on {settings.load_cpu}"
            )
            print(
                f"# capacity {capacity:,.0f} req/s (closed loop, 32 connections); driving {rate:,.0f} req/s "
                f"open loop, the rate at which the first gateway used {args.load:.0%} of its core "
                f"({cores:.2f} cores measured), quiet window {args.quiet:g} s"
            )
            k = 0
            for v in variants:  # a round not counted: the first collections after start-up, caches
                k += 1 if k % 4 != 1 else 2  # kind 2 of generated_map has a canary: never owner new
                await one_round(v, k, rate, args.quiet, args.connections, settings.server_cpu)
                v.reloads, v.quiet, v.during, v.control, v.rounds = [], [], [], [], []
            for r in range(args.rounds):
                order = variants if r % 2 == 0 else variants[::-1]
                for v in order:
                    k += 1
                    while k % 4 == 2:
                        k += 1
                    row = await one_round(v, k, rate, args.quiet, args.connections, settings.server_cpu)
                    print(
                        f"round {r + 1} {v.name:6} reload {row['reload_s']:.2f} s  "
                        f"quiet p50/p99 {row['quiet_p50']:.2f}/{row['quiet_p99']:.2f} ms  "
                        f"reload p50/p99 {row['reload_p50']:.2f}/{row['reload_p99']:.2f} ms  "
                        f"p99 x{row['ratio_p99']:.2f}  control p99 {row['control_p99']:.2f} ms  "
                        f"near the swap {row['slow_near']:.0f}/{row['n_near']:.0f} slow, "
                        f"max {row['near_max']:.1f} ms  "
                        f"(n {row['n_quiet']:.0f}/{row['n_reload']:.0f}, "
                        f"errors {row['errors']:.0f}, "
                        f"others {row['others_share']:.0%} of CPU {settings.server_cpu})",
                        flush=True,
                    )
                    await asyncio.sleep(0.5)
        print()
        print(
            "| variant | reloads | reload s (median, max) | quiet p50 / p99 | reload p50 / p99 "
            "| p99 ratio (pooled) "
            "| p99 ratio (median of rounds) | control p99 (ratio) | near the swap: slow / due (max) "
            "| others on the server core |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for v in variants:
            ratios = [row["ratio_p99"] for row in v.rounds]
            others = statistics.median(row["others_share"] for row in v.rounds)
            slow = sum(row["slow_near"] for row in v.rounds)
            due = sum(row["n_near"] for row in v.rounds)
            worst = max((row["near_max"] for row in v.rounds), default=float("nan"))
            quiet99, during99, control99 = (percentile(x, 0.99) for x in (v.quiet, v.during, v.control))
            print(
                f"| {v.name} | {len(v.reloads)} | {statistics.median(v.reloads):.2f}, {max(v.reloads):.2f} "
                f"| {percentile(v.quiet, 0.50):.2f} / {quiet99:.2f} ms "
                f"| {percentile(v.during, 0.50):.2f} / {during99:.2f} ms "
                f"| {during99 / quiet99:.2f} | {statistics.median(ratios):.2f} "
                f"| {control99:.2f} ms ({control99 / quiet99:.2f}) "
                f"| {slow:.0f} / {due:.0f} ({worst:.1f} ms) | {others:.0%} |"
            )
        args.measured = [(v, capacity, rate) for v in variants]
    return 0


def export(rev: str, dest: Path) -> None:
    """The packages of an older commit, as configs.snapshot copies the work tree's."""
    dest.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, *configs.SNAPSHOT_PACKAGES], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def main(argv: list[str] | None = None) -> int:
    about = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.reload_cost", description=about)
    parser.add_argument("--rounds", type=int, default=4, help="reloads per variant, interleaved")
    parser.add_argument("--entries", type=int, default=10_000, help="filler entries in the map")
    parser.add_argument(
        "--variants",
        default="child,base",
        help="child: reloads in the niced process; thread: this tree, GATEWAY_RELOAD_IN_CHILD=0; "
        "base: --base's tree, GATEWAY_RELOAD_IN_CHILD=0; base-child: --base's tree with the child",
    )
    parser.add_argument("--base", default="c7f367f", help="the commit `base` runs: the tree before issue 12")
    parser.add_argument(
        "--load", type=float, default=0.5, help="share of a core the first gateway uses at the driven rate"
    )
    parser.add_argument("--quiet", type=float, default=3.0, help="seconds of the quiet window per round")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections of the generator")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout, for bench/extras.py")
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    args = parser.parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    if args.json and "--variants" not in given:
        args.variants = "child"  # make bench: this tree as it runs by default
    if args.json and "--rounds" not in given:
        args.rounds = 6  # make bench: the median of 6 reloads, where one window's stall moves 4 a lot
    if args.quick:
        args.rounds = min(args.rounds, 2)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    if not args.json:
        return asyncio.run(main_async(args))
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        code = asyncio.run(main_async(args))
    sys.stderr.write(log.getvalue())
    print(json.dumps(extra_result(args, log.getvalue())))
    return code


RATIO_TARGET = 1.2  # issue 12: primary p99 during a 10,000-entry reload within 1.2x of quiet


def extra_result(args: argparse.Namespace, text: str) -> dict[str, Any]:
    ratios: list[dict[str, Any]] = []
    for v, _capacity, _rate in args.measured:
        rounds = [row["ratio_p99"] for row in v.rounds]
        ratios.append({
            "name": f"p99 during a {args.entries:,}-entry map reload / quiet p99 ({v.name}, median of "
                    f"{len(rounds)} reloads)",
            "workload": "open loop, fixed rate", "value": statistics.median(rounds) if rounds else None,
            "op": "<=" if v.name == "child" else None, "target": RATIO_TARGET if v.name == "child" else None,
        })
        ratios.append({"name": f"reload time, median ({v.name})", "workload": "open loop, fixed rate",
                       "value": statistics.median(v.reloads) if v.reloads else None, "op": None,
                       "target": None, "unit": " s"})
    table = "\n".join(line for line in text.splitlines() if line.startswith(("|", "#")))
    about = ("A native route driven at a fixed rate while the map (the bench routes and "
             f"{args.entries:,} filler entries) is rewritten and reloaded; p99 of the requests due "
             "during each reload against the quiet windows'. `python -m bench.reload_cost`.")
    return {"title": "Map reloads under load", "ratios": ratios, "markdown": f"{about}\n\n{table}"}


if __name__ == "__main__":
    raise SystemExit(main())
