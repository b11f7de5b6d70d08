"""Where and with what a run was made: machine, versions, git state, load, and notes on noise."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench import report
from bench.configs import gateway_env
from bench.servers import ROOT


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        kib = int(f.readline().split()[1])
        mem = f"{kib / 1024 / 1024:.0f} GiB"
    return {"CPU": model, "cores": str(os.cpu_count()), "memory": mem, "kernel": platform.release()}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "uvicorn",
        "uvloop",
        "httptools",
        "fastapi",
        "starlette",
        "flask",
        "werkzeug",
        "a2wsgi",
        "gunicorn",
        "httpx",
        "httpcore",
    ):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    first = (done.stdout or done.stderr).splitlines()[:1]
    out["wrk"] = first[0].split()[1] if first and len(first[0].split()) > 1 else "unknown"
    return out


def git_state() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "gateway").splitlines()]
    return commit + (f" + uncommitted changes in {len(dirty)} gateway/ file(s)" if dirty else "")


def code_fingerprint(root: Path = ROOT) -> str:
    """A hash of the code the servers load (gateway/, the demo apps, bench/): a tree others edit
    while a run goes on would otherwise be measured under the wrong commit's name."""
    digest = hashlib.sha256()
    for package in ("gateway", "features", "legacy_flask", "bench"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            with contextlib.suppress(OSError):
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def gateway_settings(env: dict[str, str], workdir: Path) -> str:
    """The gateway settings in effect (non-secret), as its factory reads them."""
    from gateway.settings import GatewaySettings

    genv = gateway_env(env, workdir, "gateway")
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(genv)
        s = GatewaySettings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    keep = (
        "legacy_threads",
        "shadow_concurrency",
        "shadow_queue_size",
        "shadow_legacy_threads",
        "access_log",
        "log_level",
        "state_poll_interval",
        "store_flush_interval",
    )
    dumped = s.model_dump()
    return ", ".join(f"{k}={dumped[k]}" for k in keep if k in dumped)


def notes(results: dict[str, Any], load_before: str) -> list[str]:
    out: list[str] = []
    if results["settings"]["mode"] != "full":
        out.append(
            "quick mode: short single measurements, to check the harness; the figures are indicative only."
        )
    one_min = float(load_before.split()[0])
    measurements = results.get("measurements", {})
    others = [r["other_cores"] for m in measurements.values() for r in m["runs"]]
    busiest = max(others, default=0.0)
    if one_min > 0.5 or busiest > 0.25:
        mean = sum(others) / len(others) if others else 0.0
        out.append(
            f"the machine was busy with other work during this run (load average {load_before} before it "
            f"started; other processes took {mean:.2f} cores on average and up to {busiest:.2f} cores during "
            "measurements, out of 2): absolute figures are low and noisy, and ratios carry that noise too."
        )
    noisy = [k for k, m in measurements.items() if (m["summary"].get("cv") or 0) > report.NOISY_CV]
    if noisy:
        out.append(f"repeats varied by more than {report.NOISY_CV:.0%} for: {', '.join(noisy)}.")
    for row in (results.get("micro") or {}).get("compare", []):
        if row.get("expected") is not None and row["differences"] != row["expected"]:
            out.append(
                f"the comparator found {row['differences']} difference(s) where {row['expected']} were "
                f"expected ({row['size']}, {row['case']}): {'; '.join(row.get('found', []))}."
            )
    errored = [k for k, m in measurements.items() if m["summary"]["errors"]]
    if errored:
        out.append(f"configurations with errors (non-2xx/3xx or socket errors): {', '.join(errored)}.")
    return out
