"""Prometheus multiprocess mode: with `--workers 2`, one scrape adds up what every worker counted."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.e2e.conftest import GATEWAY, ROOT, Server
from tests.gateway.test_metrics import value
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def requests_per_worker(directory: Path) -> list[float]:
    """gateway_requests_total as each worker process wrote it to its own file."""
    counts = []
    for file in sorted(directory.glob("counter_*.db")):
        total = 0.0
        for family in MultiProcessCollector.merge([str(file)]):  # type: ignore[no-untyped-call]
            if family.name == "gateway_requests":
                total += sum(s.value for s in family.samples if s.name == "gateway_requests_total")
        counts.append(total)
    return counts


def test_two_workers_counts_add_up(start_server: Callable[..., Server], tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left over from an earlier run")  # must be cleared
    server = start_server(workers=2, PROMETHEUS_MULTIPROC_DIR=str(directory))

    def get(path: str) -> int:
        # a new connection each time, so that both workers' accept() calls get a share
        return httpx.get(server.url + path, timeout=10).status_code

    sent = {"users.get": 0, "healthz": 0}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in range(20):  # until both workers have answered some (the kernel decides who accepts)
            statuses = list(pool.map(get, ["/api/users/1"] * 12 + ["/healthz"] * 8))
            assert statuses == [200] * 20
            sent["users.get"] += 12
            sent["healthz"] += 8
            if sum(1 for n in requests_per_worker(directory) if n > 0) >= 2:
                break
    per_worker = [n for n in requests_per_worker(directory) if n > 0]
    assert len(per_worker) == 2, f"one worker answered everything: {per_worker}"

    def scrape_when_published() -> str:
        """Each worker publishes what it counted once a second: wait for both to have."""
        texts: list[str] = []

        def complete() -> bool:
            texts.append(httpx.get(server.url + "/metrics", timeout=10).text)
            # every route's count: a worker may publish between two of its requests
            return all(
                value(texts[-1], "gateway_requests_total", route=route, backend=backend, role="primary",
                      status_class="2xx") == sent[name]
                for name, route, backend in (("users.get", "users.get", "new"), ("healthz", "unmapped", "legacy"))
            )

        wait_until(complete, timeout=10, what="both workers' counts published")
        return texts[-1]

    for _ in range(3):  # whichever worker answers the scrape, the sums are the same
        text = scrape_when_published()
        req = "gateway_requests_total"
        assert value(text, req, route="users.get", backend="new", role="primary", status_class="2xx") == sent[
            "users.get"
        ]
        assert value(text, req, route="unmapped", backend="legacy", role="primary", status_class="2xx") == sent[
            "healthz"
        ]
        count = "gateway_request_duration_seconds_count"
        assert value(text, count, route="users.get", backend="new", role="primary") == sent["users.get"]
        assert value(text, "gateway_map_reloads_total", result="ok") == 2  # one initial load per worker
        # gauges: thread pools add up over live workers, the map's state is the same in each
        assert value(text, "gateway_legacy_threads", pool="primary") == 20
        assert value(text, "gateway_legacy_threads_busy", pool="primary") == 0
        assert value(text, "gateway_routes", owner="new") == 3
        assert value(text, "gateway_in_flight_requests", backend="new") == 0
    sha = server.health()["map"]["sha256"]  # type: ignore[index]
    assert value(text, "gateway_map_info", sha256=str(sha), routes=str(server.health()["map"]["routes"])) == 1  # type: ignore[index]


def test_serve_makes_and_removes_its_own_metrics_directory(start_server: Callable[..., Server]) -> None:
    server = start_server(workers=2)
    line = next(line for line in server.log().splitlines() if "workers add up their values in" in line)
    directory = Path(line.split(" in ", 1)[1].split(" (", 1)[0])
    assert directory.is_dir()
    for _ in range(30):
        assert httpx.get(server.url + "/api/users/2", timeout=10).status_code == 200
    labels = {"route": "users.get", "backend": "new", "role": "primary", "status_class": "2xx"}

    def counted() -> bool:
        return value(httpx.get(server.url + "/metrics", timeout=10).text, "gateway_requests_total", **labels) == 30

    wait_until(counted, timeout=10, what="30 requests counted over both workers")
    server.process.terminate()
    server.process.wait(20)
    assert not directory.exists()


def test_an_unusable_metrics_directory_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(blocker / "metrics")}
    done = subprocess.run([*GATEWAY, "serve", "--workers", "2", "--port", "0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"gateway serve: error: cannot use PROMETHEUS_MULTIPROC_DIR={blocker / 'metrics'}" in done.stderr
    assert "Traceback" not in done.stderr
