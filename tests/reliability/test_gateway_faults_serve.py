"""Faults on the legacy side and of the gateway itself, against a real `gateway serve`: the
legacy app raising, the map file deleted, and SIGTERM while requests are in flight."""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import time
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.reliability.fault_support import scraped
from tests.reliability.faulty_apps import good_body
from tests.support import wait_until

pytestmark = pytest.mark.e2e

FAULTY_APPS = {
    "GATEWAY_LEGACY_APP": "tests.reliability.faulty_apps:legacy_app",
    "GATEWAY_NATIVE_APP": "tests.reliability.faulty_apps:native_app",
}

MAP = """\
version: 1
routes:
  - {id: native.ok, path: /f/ok, methods: [GET], owner: new}
  - {id: native.slow, path: /f/slow, methods: [GET], owner: new}
  - {id: native.hang, path: /f/hang, methods: [GET], owner: new}
"""


def test_legacy_raising_is_a_500_and_the_gateway_serves_on(start_server: Callable[..., Server]) -> None:
    server = start_server(MAP, **FAULTY_APPS)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        crashes = list(pool.map(
            lambda i: httpx.get(f"{server.url}/f/crash", headers={"X-Request-ID": f"crash-{i}"}, timeout=10),
            range(16),
        ))
    for i, r in enumerate(crashes):
        assert (r.status_code, r.headers["x-served-by"]) == (500, "legacy")
        assert r.json() == {"error": {"code": "legacy_error", "message": "the legacy app failed to answer",
                                      "request_id": f"crash-{i}"}}
    # raising after the answer started: the connection is cut, nothing else is disturbed
    with server.client() as c, pytest.raises(httpx.RemoteProtocolError):
        c.get("/f/crash_midway")
    with server.client() as c:
        fine = c.get("/f/fine")
        native = c.get("/f/ok")
    assert (fine.status_code, fine.headers["x-served-by"], fine.content) == (200, "legacy", good_body("fine"))
    assert (native.status_code, native.headers["x-served-by"]) == (200, "new")
    assert server.process.poll() is None
    health = server.health()
    assert health["legacy"] == {"mode": "in-process", "threads": 10, "busy": 0, "rejected": 0}
    text = httpx.get(server.url + "/metrics").text
    labels = {"route": "unmapped", "backend": "legacy", "role": "primary"}
    assert scraped(text, "gateway_requests_total", **labels, status_class="5xx") == 16
    assert scraped(text, "gateway_requests_total", **labels, status_class="error") == 1
    log = server.log()
    assert log.count("legacy WSGI app raised before starting a response") == 16
    assert "RuntimeError: legacy raised on purpose, mid-answer" in log


def test_a_deleted_map_keeps_serving_and_health_says_why(start_server: Callable[..., Server]) -> None:
    server = start_server(MAP, GATEWAY_RELOAD_POLL_INTERVAL="0.5", **FAULTY_APPS)
    good = server.health()["map"]["sha256"]  # type: ignore[index]
    server.map_path.unlink()

    def rejected() -> bool:
        return server.health()["map"]["last_reload"]["ok"] is False  # type: ignore[index]

    wait_until(rejected, timeout=5, what="the deleted map noticed")
    health = server.health()["map"]
    error = f"{server.map_path}: map file not found; keeping the last good map"
    assert health["sha256"] == good and health["last_reload"]["error"] == error  # type: ignore[index]
    with server.client() as c:
        for _ in range(5):
            r = c.get("/f/ok")
            assert (r.status_code, r.headers["x-served-by"]) == (200, "new")
    assert f"map reload rejected, still serving {good[:12]}: {error}" in server.log()
    text = httpx.get(server.url + "/metrics").text
    assert scraped(text, "gateway_map_reloads_total", result="error") == 1


def test_sigterm_lets_in_flight_requests_finish_and_exits_within_its_bound(
    start_server: Callable[..., Server],
) -> None:
    shutdown_timeout = 4
    server = start_server(MAP, GATEWAY_SHUTDOWN_TIMEOUT=str(shutdown_timeout), FAULTY_SLOW_S="1.5",
                          FAULTY_LEGACY_SLOW_S="1.5", **FAULTY_APPS)
    paths = ["/f/slow"] * 8 + ["/f/lslow"] * 8 + ["/f/hang"]

    def get(path: str) -> httpx.Response | Exception:
        try:
            return httpx.get(server.url + path, timeout=30)
        except httpx.HTTPError as exc:
            return exc

    def in_flight() -> bool:
        text = httpx.get(server.url + "/metrics", timeout=5).text
        return (scraped(text, "gateway_in_flight_requests", backend="new") == 9
                and scraped(text, "gateway_in_flight_requests", backend="legacy") == 8)

    with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
        futures = [pool.submit(get, path) for path in paths]
        wait_until(in_flight, timeout=10, what="every request in flight")
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            server.process.wait(shutdown_timeout + 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {shutdown_timeout + 10} s after SIGTERM:\n{server.log()}")
        took = time.monotonic() - signalled
        answers = [f.result() for f in futures]
    # the slow ones (1.5 s) finished; the hanging one is answered 503 when the shutdown timeout runs out
    for path, answer in zip(paths[:-1], answers[:-1], strict=True):
        assert isinstance(answer, httpx.Response), f"{path}: {answer!r}"
        side = "new" if path == "/f/slow" else "legacy"
        assert (answer.status_code, answer.headers["x-served-by"]) == (200, side)
        assert answer.content == good_body(path.rsplit("/", 1)[-1])
    hung = answers[-1]
    assert isinstance(hung, httpx.Response), hung
    assert (hung.status_code, hung.headers["retry-after"], hung.headers["x-served-by"]) == (503, "1", "new")
    assert hung.json() == {"error": {
        "code": "shutting_down",
        "message": "the gateway is shutting down and this request did not finish in time; retry it",
        "request_id": hung.headers["x-request-id"],
    }}
    # uvicorn ends by re-raising the signal it caught: exit by SIGTERM, after a clean shutdown
    assert server.process.returncode in (0, -signal.SIGTERM), server.log()
    assert "Application shutdown complete." in server.log()
    assert shutdown_timeout - 0.5 <= took < shutdown_timeout + 5, took
