"""Live map flips under sustained load: no request fails, and every answer comes from a side
the map allowed while that request was in flight.

A real `gateway serve` takes 64 keep-alive connections from a separate load-generator process
(tests/reliability/loadgen.py) for 30 s, while the map is rewritten 20 times the way editors
save (a new file renamed over the old one), flipping two routes between legacy, new and
canaries of 0..100 %, with invalid versions in between that must be refused.

What "allowed" means: version i of the map can be in force from the moment it is written
(w_i: the gateway cannot see it earlier) until every worker has swapped in the next valid
version (the gateway logs "map reloaded ... -> <hash>" right after the swap, with a
millisecond timestamp). A response may come from any side permitted, for its route and its
sticky user, by a version whose window overlaps the request's [sent, received]. Canaries are
keyed on X-User-Id, so even a 30 % canary allows exactly one side per user.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import mmh3
import pytest

from tests.e2e.conftest import ROOT, Server
from tests.support import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.load]

DURATION = 30.0
CONNECTIONS = 64
WRITES = 20
ROUTES = {
    "users.get": ("/api/users/<int:user_id>", "/api/users/{n}"),
    "products.get": ("/api/products/<int:product_id>", "/api/products/{n}"),
}

Config = str | int  # "legacy", "new", or a canary percent on a legacy-owned route

# (users.get, products.get) for each write; None is an invalid version (see BROKEN)
PLAN: list[tuple[Config, Config] | None] = [
    ("new", "legacy"),
    (30, "new"),
    (100, 0),
    None,
    ("legacy", 50),
    (70, "new"),
    (0, 100),
    None,
    ("new", 25),
    (50, "legacy"),
    None,
    ("legacy", "new"),
    (10, 90),
    None,
    ("new", "new"),
    (100, 60),
    ("legacy", "legacy"),
    None,
    (45, 5),
    ("new", 35),
]
INITIAL: tuple[Config, Config] = ("legacy", "new")

def broken_text(serial: int, index: int) -> tuple[str, str]:
    """An invalid version: a valid one with one rule broken; (what is wrong, the text). The
    gateway must refuse each and keep the map it has."""
    good = map_text(serial, ("legacy", 10))
    canary = "canary: {percent: 10, sticky: [header:X-User-Id]}"
    broken = [
        ("a percentage over 100", good.replace("percent: 10", "percent: 150")),
        ("an unknown key", good.replace("owner: legacy", "ownr: legacy")),
        ("bad YAML", good + "  - id: [unclosed\n"),
        ("a duplicate id", good.replace("id: products.get", "id: users.get")),
        ("a canary on a new-owned route", good.replace("owner: legacy\n    " + canary, "owner: new\n    " + canary)),
    ]
    what, text = broken[index % len(broken)]
    assert text != good, what
    return what, text


def route_yaml(route_id: str, config: Config, shadow: bool) -> str:
    lines = [f"  - id: {route_id}", f"    path: {ROUTES[route_id][0]}", "    methods: [GET]"]
    if isinstance(config, int):
        lines += ["    owner: legacy", f"    canary: {{percent: {config}, sticky: [header:X-User-Id]}}"]
    else:
        lines.append(f"    owner: {config}")
    if shadow:  # some versions also shadow, so the shadow path is flipped under load too
        lines.append("    shadow: {sample: 0.1, noise_sample: 0}")
    return "\n".join(lines)


def map_text(serial: int, configs: tuple[Config, Config]) -> str:
    users, products = configs
    body = [
        f"# version {serial}: every version differs, even when the owners repeat",
        "version: 1",
        "routes:",
        route_yaml("users.get", users, shadow=False),
        route_yaml("products.get", products, shadow=serial % 3 == 0),
    ]
    return "\n".join(body) + "\n"


def sides(route_id: str, config: Config, user: str) -> str:
    if isinstance(config, str):
        return config
    # the canary's bucket, as Unleash computes it: murmur3("route:key") % 100 + 1 <= percent
    bucket = mmh3.hash(f"{route_id}:header:{user}", 0, signed=False) % 100 + 1
    return "new" if bucket <= config else "legacy"


@dataclass
class Version:
    configs: tuple[Config, Config]
    written: float  # it cannot be in force before this
    until: float = float("inf")  # every worker has swapped in the next version by then

    def side(self, route_id: str, user: str) -> str:
        return sides(route_id, self.configs[list(ROUTES).index(route_id)], user)


@dataclass
class LogTail:
    """Reads the gateway's log incrementally: it grows by one access-log line per request."""

    path: Path
    offset: int = 0
    reloads: dict[str, list[float]] = field(default_factory=dict)  # short hash -> swap times
    rejected: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def poll(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data.rpartition(b"\n")[0]
        if not complete:
            return
        self.offset += len(complete) + 1
        for raw in complete.decode(errors="replace").splitlines():
            if not raw.startswith('{"time"') or '"logger":"gateway' not in raw:
                if "Traceback" in raw:
                    self.errors.append(raw)
                continue
            line = json.loads(raw)
            message = line["message"]
            if message.startswith("map reloaded from "):
                short = message.split(" -> ")[1].split(" ")[0]
                # the timestamp is cut to the millisecond: the swap happened before it + 1 ms
                at = datetime.fromisoformat(line["time"].replace("Z", "+00:00")).timestamp() + 0.001
                self.reloads.setdefault(short, []).append(at)
            elif message.startswith("map reload rejected"):
                self.rejected.append(message)
            elif line["level"] in ("ERROR", "CRITICAL"):
                self.errors.append(raw)


def write_atomically(path: Path, text: str) -> float:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    written = time.time()  # before the rename: the gateway cannot see it any earlier
    os.replace(tmp, path)
    return written


def allowed(versions: list[Version], route_id: str, user: str, sent: float, received: float) -> set[str]:
    return {v.side(route_id, user) for v in versions if v.written <= received and v.until >= sent}


@pytest.mark.parametrize("workers", [1, 2])
def test_flips_under_load_drop_nothing_and_serve_the_allowed_side(
    start_server: Callable[..., Server], tmp_path: Path, workers: int, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_server(map_text(0, INITIAL), workers=workers, GATEWAY_SHADOW_QUEUE_SIZE="1000")
    sha = hashlib_sha(map_text(0, INITIAL))
    wait_until(lambda: server.health()["map"]["sha256"] == sha, timeout=10, what="initial map")  # type: ignore[index]
    tail = LogTail(server.log_path)
    tail.poll()
    versions = [Version(INITIAL, written=float("-inf"))]

    out = tmp_path / "load.jsonl"
    routes = [f"--route={rid}={template}" for rid, (_, template) in ROUTES.items()]
    loadgen = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.loadgen", f"--url={server.url}", f"--out={out}",
         f"--connections={CONNECTIONS}", f"--duration={DURATION}", *routes],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert loadgen.stdout is not None
        assert loadgen.stdout.readline().strip() == "loadgen: running"
        load_started = time.time()
        # spread the writes over the run, leaving load before the first and after the last
        slot = (DURATION - 4.0) / WRITES
        rejected_seen = 0
        for serial, configs in enumerate(PLAN, start=1):
            pause = load_started + 1.5 + (serial - 1) * slot - time.time()
            if pause > 0:
                time.sleep(pause)  # pacing the schedule, not waiting for a condition
            if configs is None:
                what, text = broken_text(serial, rejected_seen)
                write_atomically(server.map_path, text)
                rejected_seen += 1

                def refused(n: int = rejected_seen) -> bool:
                    tail.poll()
                    return len(tail.rejected) >= n * workers

                wait_until(refused, timeout=15, what=f"invalid version {serial} ({what}) rejected")
                continue
            text = map_text(serial, configs)
            short = hashlib_sha(text)[:12]
            written = write_atomically(server.map_path, text)
            versions.append(Version(configs, written))

            def loaded(short: str = short) -> bool:
                tail.poll()
                return len(tail.reloads.get(short, ())) >= workers

            wait_until(loaded, timeout=15, what=f"version {serial} loaded by {workers} worker(s)")
            versions[-2].until = max(tail.reloads[short])
        flips_done = time.time()
        stdout, stderr = loadgen.communicate(timeout=DURATION + 90)
    finally:
        if loadgen.poll() is None:
            loadgen.kill()
            loadgen.wait()
    assert loadgen.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    with capsys.disabled():
        print(f"\n[load, {workers} worker(s)] {summary['answered']} answered in {summary['duration_s']} s: "
              f"{summary['req_per_s']} req/s over {CONNECTIONS} connections, {len(versions) - 1} flips, "
              f"{len(PLAN) - len(versions) + 1} invalid maps refused; statuses {summary['statuses']}")

    # zero failed or dropped requests
    assert summary["crashed_tasks"] == [], summary
    assert summary["failed"] == 0 and summary["unfinished"] == 0, summary
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == summary["sent"] == summary["answered"]
    failures = [r for r in records if r["error"] is not None or r["status"] != 200]
    assert not failures, f"{len(failures)} failed requests, e.g. {failures[:5]}"
    # sustained load, and the flips all happened while it ran
    assert summary["answered"] >= 50 * DURATION, summary
    assert min(r["sent"] for r in records) < versions[1].written
    assert max(r["received"] for r in records) > flips_done

    # every answer from a side some version in force during the request allowed
    wrong = []
    for r in records:
        ok = allowed(versions, r["route"], r["user"], r["sent"], r["received"])
        if r["served_by"] not in ok:
            wrong.append((r, sorted(ok)))
    assert not wrong, f"{len(wrong)} answers from a side the map did not allow, e.g. {wrong[:5]}"
    # not vacuous: both routes were served by both sides, and by one side only when pinned
    served = Counter((r["route"], r["served_by"]) for r in records)
    assert all(served[(rid, side)] > 100 for rid in ROUTES for side in ("legacy", "new")), served
    exact = sum(1 for r in records if len(allowed(versions, r["route"], r["user"], r["sent"], r["received"])) == 1)
    lags = sorted(round(v.until - later.written, 3) for v, later in itertools.pairwise(versions))
    assert exact > 0.8 * len(records), (
        f"only {exact} of {len(records)} answers had a single allowed side; "
        f"write-to-swap lags (s): {lags}")

    # the invalid versions were refused and the last valid one is serving
    tail.poll()
    assert len(tail.rejected) == PLAN.count(None) * workers, tail.rejected
    assert not tail.errors, tail.errors[:5]
    health = httpx.get(server.url + "/_gateway/health", timeout=10).json()
    assert health["map"]["sha256"] == hashlib_sha(map_text(len(PLAN), PLAN[-1]))  # type: ignore[arg-type]
    assert server.process.poll() is None


def hashlib_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
