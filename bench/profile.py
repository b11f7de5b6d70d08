"""Profiles of the gateway under wrk load: `python -m bench.profile [--seconds N] [TARGET ...]`.

For each target (native, legacy, shadow100, remote) a gateway serves the bench map as in
`make bench`, wrk drives the route, and `py-spy record` samples the gateway process: a flame
graph (profiles/<target>.svg) and the collapsed stacks (profiles/<target>.txt). Each sample is
then charged to the innermost frame whose code belongs to a known package, which gives the
"where does a request's time go" table of PROFILE.md (profiles/summary.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import wrk
from bench.configs import BENCH_DIR, prepare, start_servers
from bench.meta import code_fingerprint, git_state, loadavg
from bench.servers import Servers, signals_raise

OUT = BENCH_DIR / "profiles"
TARGETS = {
    "native": ("gateway", "/bench/native/items/1"),
    "legacy": ("gateway", "/bench/legacy/items/1"),
    "shadow100": ("gateway", "/bench/shadow100/items/1"),
    "remote": ("gateway_remote", "/bench/legacy/items/1"),
}
# who owns a sample: the innermost frame from one of these packages; frames of the standard
# library (asyncio, json, logging, threading...) and C frames are charged to their caller, so
# `json.dumps` called by the access log is the gateway's, the event loop itself uvicorn's
OWNERS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rf"(^|/)({dirs})/"), name)
    for dirs, name in (
        ("gateway", "gateway"),
        ("bench", "bench apps (handlers)"),
        ("legacy_flask", "legacy_flask (app code)"),
        ("features", "features (app code)"),
        ("a2wsgi", "a2wsgi"),
        ("flask|werkzeug|jinja2|itsdangerous|markupsafe|click", "Flask/Werkzeug"),
        ("fastapi|starlette|pydantic|pydantic_core", "FastAPI/Starlette/pydantic"),
        ("uvicorn|httptools|uvloop|h11", "uvicorn + event loop"),
        ("httpx|httpcore|anyio|sniffio|h2|certifi", "httpx/httpcore/anyio"),
        ("prometheus_client", "prometheus_client"),
        ("sqlalchemy|aiosqlite", "SQLAlchemy"),
    )
)
# the gateway's parts, inclusive (what they call included): samples with one of these on the stack
GROUPS: dict[str, tuple[str, ...]] = {
    "access log": ("AccessLog.observe", "AccessLog.resolve", "AccessLog.sweep"),
    "metrics and guard observers": ("Gateway._count_answer", "Gateway._guard_observer"),
    "request id and header copy": ("Dispatcher._read_headers",),
    "route lookup": ("RoutingTable.lookup",),
    "legacy bridge (with the WSGI app it runs)": (
        "LegacyBridge.",
        "_Responder.",
        "_Receive.",
        "_terminated_input",
    ),
    "shadow runner (with the candidate it runs)": ("ShadowRunner.",),
    "remote legacy (with httpx)": ("RemoteLegacy.",),
}
DISPATCH_SELF = "dispatcher and response tagging (their own lines only)"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _parsed(frame: str) -> tuple[str, str] | None:
    match = _FRAME.match(frame)
    return (match["func"], match["file"]) if match is not None else None


def owner(stack: list[str]) -> tuple[str, str]:
    """(owner, innermost frame of that owner) of one sample, the stack listed outermost first."""
    for frame in reversed(stack):
        parsed = _parsed(frame)
        if parsed is None:
            continue
        func, file = parsed
        for pattern, name in OWNERS:
            if pattern.search(file):
                return name, f"{func} ({file})"
    return "other (stdlib or C, no known caller)", stack[-1] if stack else "?"


def summarise(collapsed: str) -> dict[str, Any]:
    owners: Counter[str] = Counter()
    gateway_self: Counter[str] = Counter()
    gateway_inclusive: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        stack = stack_text.split(";")
        name, frame = owner(stack)
        owners[name] += count
        total += count
        if name == "gateway":
            gateway_self[frame] += count
        seen = {
            f"{p[0]} ({p[1]})" for p in map(_parsed, stack) if p is not None and OWNERS[0][0].search(p[1])
        }
        for f in seen:  # inclusive: each gateway function on the stack, once per sample
            gateway_inclusive[f] += count
        names = {f.split(" (")[0] for f in seen}
        for group, prefixes in GROUPS.items():
            if any(name.startswith(prefixes) for name in names):
                groups[group] += count
        if name == "gateway" and frame.startswith(
            ("Dispatcher.__call__", "Dispatcher._observed", "Dispatcher._tagger", "_Tagged.", "Exchange")
        ):
            groups[DISPATCH_SELF] += count

    def share(counter: Counter[str], n: int | None = None) -> dict[str, float]:
        return {k: round(v / total, 4) for k, v in counter.most_common(n)} if total else {}

    return {
        "samples": total,
        "by_owner": share(owners),
        "gateway_self_top": share(gateway_self, 15),
        "gateway_inclusive_top": share(gateway_inclusive, 15),
        "gateway_groups": {g: round(groups[g] / total, 4) for g in [*GROUPS, DISPATCH_SELF] if groups[g]}
        if total
        else {},
    }


def record(pid: int, seconds: int, out: Path, fmt: str, native: bool) -> None:
    cmd = [
        "py-spy",
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        "250",
        "--format",
        fmt,
        "--output",
        str(out),
    ]
    if native:
        cmd.append("--native")
    if os.environ.get("BENCH_PROFILE_GIL", "1") != "0":
        # only the thread holding the GIL: CPU work, not the pools' threads waiting for a job
        # (which py-spy, with --native especially, can count as active)
        cmd.append("--gil")
    subprocess.run([str(Path(sys.executable).with_name("py-spy")), *cmd[1:]], check=True, capture_output=True)


def profile(target: str, seconds: int, connections: int, native: bool, workdir: Path) -> dict[str, Any]:
    server_name, path = TARGETS[target]
    env = prepare(workdir)
    with Servers(workdir, cwd=Path(env["BENCH_SRC"])) as servers:
        server = start_servers(servers, env, workdir, {server_name})[server_name]
        pid = server.serving_pid()
        url = server.url + path
        # warm up, then record twice under the same load: collapsed stacks, and a flame graph
        subprocess.run(wrk.command(url, seconds=3, connections=connections), check=True, capture_output=True)
        results: dict[str, Any] = {
            "path": path,
            "git": git_state(),
            "code": code_fingerprint(Path(env["BENCH_SRC"])),
            "at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load average": loadavg(),
        }
        for fmt, suffix in (("raw", "txt"), ("flamegraph", "svg")):
            load = subprocess.Popen(
                wrk.command(url, seconds=seconds + 2, connections=connections),
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                record(pid, seconds, OUT / f"{target}.{suffix}", fmt, native)
            finally:
                stdout, _ = load.communicate(timeout=seconds + 60)
            if fmt == "raw":
                results["wrk"] = wrk.parse(stdout).to_dict()
    results.update(summarise((OUT / f"{target}.txt").read_text()))
    return results


def resummarise() -> None:
    """summary.json again from the collapsed stacks on disk (after a change to the charging rules)."""
    path = OUT / "summary.json"
    summary = json.loads(path.read_text())
    for target, entry in summary.items():
        stacks = OUT / f"{target}.txt"
        if stacks.exists():
            entry.update(summarise(stacks.read_text()))
    path.write_text(json.dumps(summary, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*", help=f"any of {', '.join(TARGETS)} (default: native legacy)")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--native", action="store_true", help="also C frames (py-spy --native: slows the server)"
    )
    parser.add_argument(
        "--resummarise", action="store_true", help="only redo summary.json from profiles/*.txt"
    )
    args = parser.parse_args(argv)
    if args.resummarise:
        resummarise()
        return 0
    unknown = set(args.targets) - TARGETS.keys()
    if unknown:
        parser.error(f"unknown target(s) {', '.join(sorted(unknown))}: choose from {', '.join(TARGETS)}")
    targets = args.targets or ["native", "legacy"]
    OUT.mkdir(exist_ok=True)
    summary_path = OUT / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    try:
        with signals_raise():
            for target in targets:
                with tempfile.TemporaryDirectory(prefix="gateway-profile-") as tmp:
                    summary[target] = profile(target, args.seconds, args.connections, args.native, Path(tmp))
                print(f"{target}: {json.dumps(summary[target], indent=1)}", file=sys.stderr)
    except KeyboardInterrupt:
        print("profile: interrupted; the servers it started are stopped", file=sys.stderr)
        return 130
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
