"""The gateway's own per-request cost on a native route: `.venv/bin/python -m bench.request_path`.

A no-op ASGI app (it sends a fixed 200 at once) stands in for the native app. The real
`Dispatcher`, built by `Gateway` as the app factory builds it (the bench map, default
settings: access log and metrics on), serves it; ASGI scope/receive/send are driven directly
in a loop, inside one running event loop. Nothing suspends on this path, so an `await` costs
no trip through the loop, and what is timed is Python work only. The overhead is the gateway
path minus the no-op app called directly, in CPU time (`time.process_time`, best of N
repeats): the machine is shared, so wall-clock throughput would measure the neighbours.

The parts are measured as variants of the same gateway in the same run: access log off
(what the access log costs), then no observers at all (what metrics and the rollout guard's
observer cost); `RoutingTable.lookup` alone; what is left is the dispatcher's own work
(headers, request id, scope, response tagging, in-flight counts).

`--callgrind` counts instructions instead (valgrind's callgrind, ~50x slower): the count
of one request is the same from run to run whatever the neighbours do, so it tells two
variants apart where CPU time on a busy machine cannot. Each loop is counted alone (the
counters are zeroed before it and dumped after it with `callgrind_control`).

`--compare DIR` also times another tree (e.g. an older commit exported with `git archive`)
in a subprocess, round by round alternating with this one, so both share the machine's load;
copy this file into DIR/bench/ first if that tree lacks it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent

# (name, method, path, route id the bench map gives it): one templated and two static paths
WORKLOADS = (
    ("GET item (templated)", "GET", "/bench/native/items/1", "bench.native.item"),
    ("POST echo (static)", "POST", "/bench/native/echo", "bench.native.echo"),
    ("GET /api/users/1 (static)", "GET", "/api/users/1", "users.get.native"),
)
BODY = b'{"id":1}'
# what a small client request carries (wrk sends Host alone; browsers and SDKs send more)
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"*/*"),
]


def scope_for(method: str, path: str) -> dict[str, Any]:
    headers = list(HEADERS)
    if method == "POST":
        headers += [(b"content-type", b"application/json"), (b"content-length", b"1024")]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "state": {},
    }


async def noop_app(scope: Any, receive: Any, send: Any) -> None:
    # fresh messages each call, as a real app makes them (the gateway edits the start's headers)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"8")],
        }
    )
    await send({"type": "http.response.body", "body": BODY, "more_body": False})


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Any) -> None:
    return None


def noop_wsgi(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"legacy"]


def build_gateway(tmp: Path, **settings: Any) -> Any:
    """A Gateway as `create_app` builds it, with the no-op apps and the access log to /dev/null."""
    from gateway.app import Gateway
    from gateway.logs import configure_logging
    from gateway.settings import GatewaySettings

    gs = GatewaySettings(
        map_path=BENCH_DIR / "bench_map.yaml",
        store_url=f"sqlite:///{tmp}/parity-{len(list(tmp.iterdir()))}.db",
        **settings,
    )
    configure_logging(gs.log_level, gs.log_format)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for name in ("gateway", "gateway.access"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(devnull)
    return Gateway(gs, native_app=noop_app, legacy_app=noop_wsgi)


Timer = Callable[[int], Coroutine[Any, Any, float]]


def request_loop(app: Any, scope: dict[str, Any]) -> Timer:
    async def run(n: int) -> float:
        clock = time.process_time
        start = clock()
        for _ in range(n):
            await app(dict(scope), receive, send)  # a server makes a new scope per request
        return clock() - start

    return run


def call_loop(fn: Callable[[], object]) -> Timer:
    async def run(n: int) -> float:
        clock = time.process_time
        start = clock()
        for _ in range(n):
            fn()
        return clock() - start

    return run


async def best_us(timers: dict[str, Timer], n: int, repeats: int) -> dict[str, float]:
    """µs per call, best of `repeats`; the variants interleave, so drifting load hits all alike."""
    best = dict.fromkeys(timers, float("inf"))
    for timer in timers.values():
        await timer(max(1, n // 10))  # warm-up: caches, first-time allocations
    for _ in range(repeats):
        for name, timer in timers.items():
            gc.collect()
            best[name] = min(best[name], await timer(n) / n * 1e6)
    return best


async def counted(workload: str, timers: dict[str, Timer], n: int) -> dict[str, float]:
    """Under callgrind: each loop between a zeroing and a dump of the counters, the dump
    labelled `<workload index>.<variant>`; the outer process reads the counts (`read_dumps`)."""
    pid = str(os.getpid())

    async def control(*args: str) -> None:
        command = ["callgrind_control", *args, pid]
        done = await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True, text=True)
        if "OK." not in done.stdout:  # it exits 0 whatever happened
            raise RuntimeError(f"{' '.join(command)}: {done.stdout}{done.stderr}")

    index = [w[0] for w in WORKLOADS].index(workload)  # callgrind_control passes the label to a shell
    for name, timer in timers.items():
        await timer(max(1, n // 10))
        await control("-z")
        await timer(n)
        await control(f"--dump={index}.{name}")
    return dict.fromkeys(timers, 0.0)


async def measure(n: int, repeats: int, counting: bool = False) -> dict[str, dict[str, float]]:
    """Per workload, per variant: µs per request (or 0 when counting: the dumps hold it)."""
    with tempfile.TemporaryDirectory() as tmp:
        full = build_gateway(Path(tmp))
        quiet = build_gateway(Path(tmp), access_log=False)
        bare = build_gateway(Path(tmp), access_log=False)
        _no_metrics(bare)  # no metrics, no guard: the dispatcher's own work
        table = full.holder.table
        raw: dict[str, dict[str, float]] = {}
        for name, method, path, route_id in WORKLOADS:
            assert table.lookup(method, path).id == route_id, (path, table.lookup(method, path).id)
            await _check(full.dispatcher, method, path)
            scope = scope_for(method, path)
            timers = {
                "noop": request_loop(noop_app, scope),
                "gateway": request_loop(full.dispatcher, scope),
                "no_access_log": request_loop(quiet.dispatcher, scope),
                "no_metrics": request_loop(bare.dispatcher, scope),
                "lookup": call_loop(lambda m=method, p=path: table.lookup(m, p)),
            }
            raw[name] = await (counted(name, timers, n) if counting else best_us(timers, n, repeats))
        for gw in (full, quiet, bare):
            gw.rollout_store.dispose()
            if gw.access_log is not None:
                gw.access_log.flush()
        return raw


def derive(raw: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The overhead and its parts, from each variant's figure."""
    out: dict[str, Any] = {}
    for workload, v in raw.items():
        noop = v["noop"]
        out[workload] = {
            "bare": noop,
            "gateway": v["gateway"],
            "overhead": v["gateway"] - noop,
            "parts": {
                "access log": v["gateway"] - v["no_access_log"],
                "metrics (answers, in flight) + guard": v["no_access_log"] - v["no_metrics"],
                "route lookup": v["lookup"],
                "dispatcher, tagging, request id (the rest)": v["no_metrics"] - noop - v["lookup"],
            },
        }
    return out


class _NoSeries:
    def add(self, status: object, latency_ms: float) -> None:
        return None


def _no_metrics(gw: Any) -> None:
    """Metrics and guards off: observers gone (how older trees count answers), the metrics'
    request-path methods made no-ops (how this one does)."""
    gw.dispatcher.observers = ()
    metrics = gw.metrics
    metrics.request_started = metrics.request_ended = lambda backend: None
    metrics.series = lambda *key: _NoSeries()


async def _check(dispatcher: Any, method: str, path: str) -> None:
    """One request through the gateway, to be sure the loop measures a native answer."""
    seen: list[Any] = []

    async def keep(message: Any) -> None:
        seen.append(message)

    await dispatcher(scope_for(method, path), receive, keep)
    start = seen[0]
    headers = dict(start["headers"])
    assert start["status"] == 200 and headers.get(b"x-served-by") == b"new", (path, start)
    assert b"x-request-id" in headers, start


def render(results: dict[str, dict[str, dict[str, float]]], unit: str) -> str:
    derived = {name: derive(raw) for name, raw in results.items()}
    names = list(derived)
    lines = []
    fmt = "{:16.2f}" if unit == "µs" else "{:16,.0f}"
    for workload, first in derived[names[0]].items():
        lines.append(f"\n{workload}")
        lines.append(f"  {'':44}" + "".join(f"{n:>16}" for n in names))
        rows: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
            (f"no-op app alone, {unit}/request", lambda w: w["bare"]),
            (f"through the gateway, {unit}/request", lambda w: w["gateway"]),
            (f"gateway overhead, {unit}/request", lambda w: w["overhead"]),
        ]
        rows += [(f"  {part}", lambda w, p=part: w["parts"][p]) for part in first["parts"]]
        for label, get in rows:
            lines.append(f"  {label:44}" + "".join(fmt.format(get(derived[n][workload])) for n in names))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=None, help="requests per loop (20,000; 2,000 counted)")
    parser.add_argument("--repeats", type=int, default=7, help="best of this many")
    parser.add_argument("--rounds", type=int, default=3, help="with --compare: alternating rounds")
    parser.add_argument("--compare", metavar="DIR", help="another tree to measure in the same run")
    parser.add_argument("--callgrind", action="store_true", help="count instructions (valgrind)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # a child's output
    parser.add_argument("--json", action="store_true", help="one JSON object, for bench/extras.py")
    parser.add_argument("--quick", action="store_true", help="fewer loops")
    parser.add_argument("--counting", action="store_true", help=argparse.SUPPRESS)  # a child under valgrind
    args = parser.parse_args()
    n = args.n or (2_000 if args.callgrind or args.counting else 20_000)
    if args.child or args.counting:
        print(json.dumps(asyncio.run(measure(n, args.repeats, args.counting))))
        return
    if args.json:
        print(json.dumps(bench_extra(quick=args.quick)))
        return
    trees = {"this tree": BENCH_DIR.parent}
    if args.compare is not None:
        trees[Path(args.compare).name or "other"] = Path(args.compare)
    results: dict[str, dict[str, dict[str, float]]] = {}
    rounds = 1 if args.callgrind else (args.rounds if args.compare else 1)
    for round_ in range(rounds):
        order = list(trees.items()) if round_ % 2 == 0 else list(reversed(trees.items()))
        for name, root in order:
            got = _callgrind_tree(root, n) if args.callgrind else _run_tree(root, n, args.repeats)
            results[name] = got if name not in results else _best(results[name], got)
    if args.callgrind:
        print(f"instructions per request (callgrind, {n} requests per loop)")
    else:
        print(f"CPU µs per request, best of {rounds} x {args.repeats} loops of {n} (time.process_time)")
    for name, root in trees.items():
        print(f"  {name}: {root}")
    print(render(results, "instructions" if args.callgrind else "µs"))


OVERHEAD_TARGET_US = 10.0  # issue 12: the gateway's own work per request


def bench_extra(*, quick: bool) -> dict[str, Any]:
    """make bench's figure: this tree's overhead in CPU µs, and in instructions when valgrind is here."""
    root = BENCH_DIR.parent
    n, repeats = (5_000, 3) if quick else (20_000, 7)
    cpu = _run_tree(root, n, repeats)
    results = {"CPU µs": cpu}
    table = render({"this tree": cpu}, "µs")
    text = f"CPU µs per request, best of {repeats} loops of {n} (time.process_time):\n```{table}\n```"
    if shutil.which("valgrind") and not quick:
        counted = _callgrind_tree(root, 2_000)
        results["instructions"] = counted
        table = render({"this tree": counted}, "instructions")
        text += f"\n\nInstructions per request (callgrind, 2,000 requests per loop):\n```{table}\n```"
    ratios = [
        {"name": "the gateway's own work per request (no-op native app)", "workload": f"micro, {workload}",
         "value": round(figures["overhead"], 2), "op": "<=", "target": OVERHEAD_TARGET_US, "unit": " µs"}
        for workload, figures in derive(cpu).items()
    ]
    about = ("The real `Dispatcher` (bench_map.yaml, default settings: access log and metrics on) over a "
             "no-op native app, driven with ASGI scope/receive/send in a loop, against the no-op app "
             "called directly; `python -m bench.request_path` (PROFILE.md, \"Native route, second round\").")
    return {"title": "The gateway's own work per request", "ratios": ratios,
            "markdown": f"{about}\n\n{text}", "raw": results}


def _run_tree(root: Path, n: int, repeats: int) -> dict[str, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "bench.request_path", "--child", "-n", str(n), "--repeats", str(repeats)]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=True)
    result: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _callgrind_tree(root: Path, n: int) -> dict[str, dict[str, float]]:
    """The tree's loops under callgrind; instructions per request from the labelled dumps."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    with tempfile.TemporaryDirectory(prefix="request-path-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, "-m", "bench.request_path", "--counting", "-n", str(n),
        ]  # fmt: skip
        subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=True)
        raw: dict[str, dict[str, float]] = {}
        for dump in Path(tmp).glob("cg.out.*"):
            text = dump.read_text(errors="replace")
            label = re.search(r"^desc: Trigger: dump (\d+)\.(\w+)$", text, re.M)
            summary = re.search(r"^summary: (\d+)", text, re.M)
            if label is None or summary is None:
                continue
            workload = WORKLOADS[int(label.group(1))][0]
            raw.setdefault(workload, {})[label.group(2)] = int(summary.group(1)) / n
        return raw


def _best(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {w: {k: min(v, b[w][k]) for k, v in variants.items()} for w, variants in a.items()}


if __name__ == "__main__":
    main()
