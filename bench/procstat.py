"""CPU time from /proc, for the benchmarks that read it: robust where req/s on a shared machine is not."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_cpu(path: str) -> float:
    """utime + stime of one /proc/.../stat file, in seconds; 0 for a process or thread gone."""
    with contextlib.suppress(OSError, IndexError, ValueError), open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return 0.0


def cpu_seconds(pids: Iterable[int]) -> float:
    """User and system CPU the processes used so far."""
    return sum(_stat_cpu(f"/proc/{pid}/stat") for pid in pids)


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """The same, per thread of one process."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    return {int(tid): _stat_cpu(f"/proc/{pid}/task/{tid}/stat") for tid in tids}


def voluntary_switches(pids: Iterable[int]) -> int:
    """How often the processes' threads so far gave up the CPU to wait (for a socket, a lock,
    the GIL), from /proc/<pid>/task/*/status; threads gone are not counted."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            total += int(line.split()[1])
    return total


def core_busy_seconds(cpu: str) -> float:
    """CPU time one core (`"0"`), or all of them (`""`), spent on anything, every process
    included, from /proc/stat: all but idle and iowait."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                ticks = [int(x) for x in line.split()[1:]]
                return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS
    raise RuntimeError(f"no cpu{cpu} in /proc/stat")
