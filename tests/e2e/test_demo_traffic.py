"""`gateway demo-traffic` against a real `gateway serve`: every mapped route gets traffic, counts add up."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.map_loader import load_map
from tests.e2e.conftest import GATEWAY, ROOT, Server

pytestmark = pytest.mark.e2e


def demo_traffic(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    command = [*GATEWAY, "demo-traffic", "--url", server.url, "--map", str(server.map_path), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def answered_per_route(server: Server) -> Counter[str]:
    """gateway_requests_total of the requests clients sent (not the shadow copies), by route."""
    text = httpx.get(server.url + "/metrics", timeout=5).text
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_requests_total" and sample.labels["role"] == "primary":
                counts[sample.labels["route"]] += int(sample.value)
    return counts


def test_demo_traffic_reaches_every_mapped_route(start_server: Callable[..., Server]) -> None:
    server = start_server()  # the shipped map
    run = demo_traffic(server, "--requests", "200", "--seed", "1", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["requests"] == 202  # 200 in the mix and the two demo logins
    assert sum(route["requests"] for route in summary["routes"].values()) == 202
    assert summary["by_class"]["5xx"] == 0 and summary["by_class"]["error"] == 0
    assert summary["by_class"]["4xx"] > 0  # a few 404s and validation errors, on purpose

    answered = answered_per_route(server)
    mapped = [entry.id for entry in load_map(ROOT / "migration_map.yaml").map.routes]
    assert all(answered[route] > 0 for route in mapped), answered
    assert answered["unmapped"] > 0
    # the gateway counted exactly what the command says it sent, route by route
    assert dict(answered) == {route: counts["requests"] for route, counts in summary["routes"].items()}
    # not a terminal, so no progress bar: one final line
    assert run.stderr.splitlines()[-1].startswith(f"demo-traffic: 202 requests to {server.url} in ")
    assert "\r" not in run.stderr and "\x1b[" not in run.stderr


def test_the_summary_table(start_server: Callable[..., Server]) -> None:
    server = start_server()
    run = demo_traffic(server, "--requests", "20", "--seed", "2", "--concurrency", "2")
    assert run.returncode == 0, run.stderr
    rows = {}
    for line in run.stdout.splitlines():
        if line.startswith(("│", "┃")):
            cells = [cell.strip() for cell in line.strip("│┃ ").replace("┃", "│").split("│")]
            rows[cells[0]] = cells[1:]
    assert rows["route"] == ["requests", "2xx", "3xx", "4xx", "5xx", "errors"]
    assert rows["total"][0] == "22"  # 20 and the two logins
    assert sum(int(cells[0]) for route, cells in rows.items() if route not in {"route", "total"}) == 22
    assert {"users.list", "users.get", "products.list", "unmapped"} <= set(rows)
    assert "req/s" in run.stdout
