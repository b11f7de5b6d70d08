"""wrk: the command line, and its report parsed into numbers (pure, unit-tested)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = r"([0-9.]+)(us|ms|s|m|h)"


class WrkParseError(ValueError):
    pass


@dataclass(frozen=True)
class WrkRun:
    requests_per_s: float
    requests: int
    seconds: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx_3xx: int = 0
    socket_errors: dict[str, int] | None = None

    @property
    def errors(self) -> int:
        """Responses that were not 2xx/3xx plus socket errors (connect, read, write, timeout)."""
        return self.non_2xx_3xx + sum((self.socket_errors or {}).values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def parse(output: str) -> WrkRun:
    """Numbers from `wrk --latency` output; raises WrkParseError when a part is missing."""
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in " + _DURATION, output, re.M)
    if rps is None or total is None:
        raise WrkParseError(f"not a wrk report (no Requests/sec or request count):\n{output[-2000:]}")
    latency = {
        pct: _ms(value, unit)
        for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+" + _DURATION, output, re.M)
    }
    missing = {"50", "75", "90", "99"} - latency.keys()
    if missing:
        raise WrkParseError(
            f"no latency distribution ({', '.join(sorted(missing))}%): run wrk with --latency"
        )
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True))
        if sockets
        else {}
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return WrkRun(
        requests_per_s=float(rps.group(1)),
        requests=int(total.group(1)),
        seconds=_ms(total.group(2), total.group(3)) / 1000,
        p50_ms=latency["50"],
        p75_ms=latency["75"],
        p90_ms=latency["90"],
        p99_ms=latency["99"],
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def command(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    timeout_s: float = 5.0,
    script: Path | None = None,
    cpu: str | None = "1",
) -> list[str]:
    """The wrk command line, pinned to `cpu` with taskset (None: not pinned)."""
    cmd = ["taskset", "-c", cpu] if cpu is not None else []
    cmd += [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "--latency",
    ]
    if script is not None:
        cmd += ["-s", str(script)]
    return [*cmd, url]
