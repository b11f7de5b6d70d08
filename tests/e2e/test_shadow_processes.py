"""GATEWAY_SHADOW_PROCESSES against a real `gateway serve`: copies run in a process of their own,
which the gateway restarts when it dies, and whose stalls or start-up failures cost clients nothing."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Server
from tests.support import wait_until

pytestmark = pytest.mark.e2e

MAP = """\
version: 1
routes:
  - id: products.get
    path: /api/products/<int:product_id>
    methods: [GET]
    owner: legacy
    shadow: {sample: 1.0, timeout_ms: 300, noise_sample: 0}
"""
NATIVE = "tests.shadow.pid_native:create_app"


def start(start_server: Callable[..., Server], tmp_path: Path, **env: str) -> tuple[Server, Path]:
    pids = tmp_path / "pids.txt"
    server = start_server(MAP, GATEWAY_SHADOW_PROCESSES="1", GATEWAY_NATIVE_APP=NATIVE,
                          GATEWAY_SHADOW_CPU_BUDGET="1", SHADOW_PID_FILE=str(pids), **env)
    return server, pids


def get(server: Server, n: int) -> list[float]:
    """n client requests; each must be the owner's answer, and the time each took."""
    took = []
    with server.client() as c:
        for i in range(n):
            started = time.perf_counter()
            r = c.get(f"/api/products/{1 + i % 5}")
            took.append(time.perf_counter() - started)
            assert (r.status_code, r.headers["x-served-by"]) == (200, "legacy")
    return took


def metric(server: Server, name: str, **labels: str) -> float:
    with server.client() as c:
        text = c.get("/metrics").text
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{name}{{{inner}}} "
    return next((float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)), 0.0)


def compared(server: Server) -> float:
    return metric(server, "gateway_shadow_comparisons_total", result="match", route="products.get")


def skipped(server: Server, reason: str) -> float:
    return metric(server, "gateway_shadow_skipped_total", reason=reason, route="products.get")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def candidate_pids(pids: Path) -> set[int]:
    return {int(line) for line in pids.read_text().split()} if pids.exists() else set()


def test_shadow_copies_run_in_a_process_of_their_own(start_server: Callable[..., Server], tmp_path: Path) -> None:
    server, pids = start(start_server, tmp_path)
    get(server, 10)
    wait_until(lambda: compared(server) >= 10, timeout=10, what="10 shadows compared")
    ran = candidate_pids(pids)
    # the native app ran only for the copies (legacy owns the route), and only in the worker
    assert len(ran) == 1, ran
    assert "-m gateway.shadow_worker" in cmdline(ran.pop())
    assert skipped(server, "no_worker") == skipped(server, "worker_busy") == 0


def test_a_killed_shadow_process_is_restarted(start_server: Callable[..., Server], tmp_path: Path) -> None:
    server, pids = start(start_server, tmp_path)
    get(server, 3)
    wait_until(lambda: compared(server) >= 3, timeout=10, what="first shadows compared")
    (first,) = candidate_pids(pids)
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: f"(pid {first}) exited with code -9; restarting it" in server.log(), timeout=10,
               what="the gateway saying the shadow process died")
    get(server, 5)  # served by the owner all along, whatever the shadows do meanwhile
    before = compared(server)

    def compared_again() -> bool:
        get(server, 1)
        return compared(server) > before

    wait_until(compared_again, timeout=30, what="shadows compared by the restarted process")
    restarted = candidate_pids(pids) - {first}
    assert len(restarted) == 1 and "-m gateway.shadow_worker" in cmdline(restarted.pop())


def test_a_stalled_shadow_process_skips_copies_and_keeps_clients_fast(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server, pids = start(start_server, tmp_path)
    get(server, 2)
    wait_until(lambda: compared(server) >= 2, timeout=10, what="first shadows compared")
    (worker,) = candidate_pids(pids)
    os.kill(worker, signal.SIGSTOP)  # as if the serving processes had every core
    try:
        took = get(server, 10)
        assert max(took) < 0.25, took  # nobody waited for a copy
        # each copy waits 2 x its 300 ms timeout + 1 s for the stopped process, then is skipped
        wait_until(lambda: skipped(server, "worker_busy") >= 5, timeout=15, what="copies skipped as worker_busy")
    finally:
        os.kill(worker, signal.SIGCONT)
    before = compared(server)

    def compared_again() -> bool:
        get(server, 1)
        return compared(server) > before

    wait_until(compared_again, timeout=15, what="shadows compared once the process runs again")


def test_a_shadow_process_that_cannot_start_is_reported_and_its_copies_skipped(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server, _ = start(start_server, tmp_path, FAIL_IN_SHADOW_PROCESS="1")
    wait_until(lambda: "shadow process 0 did not start: LifespanError: native app failed to start: no database in "
               "a shadow process; shadows skip it (reason no_worker)" in server.log(), timeout=10,
               what="the start-up failure in the gateway's log")
    get(server, 5)
    wait_until(lambda: skipped(server, "no_worker") + skipped(server, "worker_starting") >= 5, timeout=10,
               what="copies skipped for want of a shadow process")
    assert compared(server) == 0
    with server.client() as c:
        assert c.get("/_gateway/health").status_code == 200
