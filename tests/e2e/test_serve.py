"""End to end against a real uvicorn process: who answers, live map flips, a2wsgi hardening."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.support import wait_until

pytestmark = pytest.mark.e2e

ADMIN = {"email": "admin@example.com", "password": "admin-password"}
ALICE = {"email": "alice@example.com", "password": "alice-password"}


def login(client: httpx.Client, who: dict[str, str]) -> None:
    r = client.post("/auth/login", json=who)
    assert r.status_code == 200, r.text
    assert r.headers["x-served-by"] == "legacy"


def served_by(server: Server, method: str, path: str) -> str:
    with server.client() as c:
        return c.request(method, path).headers["x-served-by"]


def write_atomically(path: Path, text: str) -> None:
    """How editors and config tools save: a new file renamed over the old one."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_native_and_legacy_answer_as_the_map_says(start_server: Callable[..., Server]) -> None:
    server = start_server()
    with server.client() as c:
        user = c.get("/api/users/1")
        assert (user.status_code, user.headers["x-served-by"]) == (200, "new")
        assert user.json()["id"] == 1
        login(c, ALICE)
        orders = c.get("/api/orders")
        assert (orders.status_code, orders.headers["x-served-by"]) == (200, "legacy")
        # the native side knows who logged in through Flask's session cookie
        me = c.get("/api/me")
        assert (me.status_code, me.headers["x-served-by"], me.json()["email"]) == (200, "new", ALICE["email"])
        rid = c.get("/api/users/1", headers={"X-Request-ID": "e2e-rid-1"})
        assert rid.headers["x-request-id"] == "e2e-rid-1"


def test_editing_the_map_flips_a_route_within_two_seconds(start_server: Callable[..., Server]) -> None:
    server = start_server()
    assert served_by(server, "GET", "/api/users/1") == "new"
    shipped = server.map_path.read_text()
    flipped = shipped.replace("    path: /api/users/<int:user_id>\n    methods: [GET]\n    owner: new",
                              "    path: /api/users/<int:user_id>\n    methods: [GET]\n    owner: legacy")
    assert flipped != shipped
    write_atomically(server.map_path, flipped)
    wait_until(lambda: served_by(server, "GET", "/api/users/1") == "legacy", timeout=2, what="flip to legacy")
    # an in-place save (truncate and write) works too
    server.map_path.write_text(shipped)
    wait_until(lambda: served_by(server, "GET", "/api/users/1") == "new", timeout=2, what="flip back to new")
    # nothing was restarted: the same process answered throughout
    assert server.process.poll() is None


def test_an_invalid_map_keeps_the_previous_owner_and_logs_the_line(start_server: Callable[..., Server]) -> None:
    server = start_server()
    good_hash = server.health()["map"]["sha256"]  # type: ignore[index]
    lines = server.map_path.read_text().splitlines()
    bad_line = next(i for i, line in enumerate(lines) if line.strip() == "owner: new") + 1
    lines[bad_line - 1] = lines[bad_line - 1].replace("owner: new", "ownr: legacy")
    write_atomically(server.map_path, "\n".join(lines) + "\n")

    def rejected() -> bool:
        last = server.health()["map"]["last_reload"]  # type: ignore[index]
        return last["ok"] is False

    wait_until(rejected, timeout=3, what="reload rejected")
    assert server.health()["map"]["sha256"] == good_hash  # type: ignore[index]
    assert served_by(server, "GET", "/api/users/1") == "new"
    log = server.log()
    error_lines = [line for line in log.splitlines() if "ERROR" in line and "map reload rejected" in line]
    assert error_lines, log
    assert f"{server.map_path}:{bad_line}: unknown key 'ownr'" in log
    with server.client() as c:
        metrics = c.get("/metrics").text
    assert 'gateway_map_reloads_total{result="error"} 1.0' in metrics


def multipart_chunks(boundary: str, payload: bytes) -> Iterator[bytes]:
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\n"
           "Content-Type: image/png\r\n\r\n").encode()
    for i in range(0, len(payload), 16384):
        yield payload[i:i + 16384]
    yield f"\r\n--{boundary}--\r\n".encode()


def test_chunked_upload_reaches_flask_whole(start_server: Callable[..., Server], tmp_path: Path) -> None:
    server = start_server()
    payload = bytes(range(256)) * 1024  # 256 KiB
    boundary = "gatewayboundary"
    with server.client() as c:
        login(c, ADMIN)
        r = c.post("/api/products/1/image", content=multipart_chunks(boundary, payload),
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in r.request.headers
    assert (r.status_code, r.headers["x-served-by"]) == (200, "legacy"), r.text
    image_url = r.json()["image_url"]
    stored = tmp_path / "uploads" / image_url.rsplit("/", 1)[-1]
    assert stored.read_bytes() == payload


def test_streamed_csv_client_disconnect_frees_its_thread(start_server: Callable[..., Server], tmp_path: Path) -> None:
    report = tmp_path / "export.json"
    server = start_server(GATEWAY_LEGACY_APP="tests.e2e.slow_legacy:create_app",
                          SLOW_EXPORT_REPORT=str(report), SLOW_EXPORT_DELAY="0.05")
    with server.client() as c:
        login(c, ADMIN)
        with c.stream("GET", "/api/orders/export.csv") as r:
            assert r.headers["x-served-by"] == "legacy"
            lines = r.iter_lines()
            assert next(lines).startswith("id,user_id,status,total,created_at")
            next(lines)
            assert server.health()["legacy"]["busy"] == 1  # type: ignore[index]
        # the client has hung up after two rows of ~120 (6 s of streaming)
        hung_up = time.monotonic()
    wait_until(lambda: server.health()["legacy"]["busy"] == 0, timeout=2, what="legacy thread freed")  # type: ignore[index]
    wait_until(lambda: json.loads(report.read_text())["closed"], timeout=2, what="WSGI iterable closed")
    state = json.loads(report.read_text())
    assert state["rows"] < 60, state  # stopped early rather than streaming to nobody
    assert time.monotonic() - hung_up < 3


def test_full_legacy_pool_answers_503_while_native_keeps_answering(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = start_server(GATEWAY_LEGACY_APP="tests.e2e.slow_legacy:create_app",
                          SLOW_EXPORT_REPORT=str(tmp_path / "export.json"), SLOW_EXPORT_DELAY="0.2",
                          GATEWAY_LEGACY_THREADS="2", GATEWAY_LEGACY_QUEUE_TIMEOUT="0.5")
    admin = server.client()
    login(admin, ADMIN)
    streams = [admin.stream("GET", "/api/orders/export.csv") for _ in range(2)]
    try:
        for s in streams:
            s.__enter__()
        wait_until(lambda: server.health()["legacy"]["busy"] == 2, timeout=5, what="both legacy threads busy")  # type: ignore[index]
        with server.client() as c:
            started = time.monotonic()
            busy = c.get("/api/orders", headers={"X-Request-ID": "busy-1"})
            waited = time.monotonic() - started
            native_started = time.monotonic()
            native = c.get("/api/users/1")
            native_took = time.monotonic() - native_started
        assert busy.status_code == 503 and busy.headers["x-served-by"] == "legacy"
        assert busy.json()["error"]["code"] == "legacy_unavailable"
        assert busy.json()["error"]["request_id"] == "busy-1"
        assert busy.json()["error"]["message"] == (
            "all 2 legacy worker threads are busy and none became free within 0.5 s; retry shortly"
        )
        assert busy.headers["retry-after"] == "1"
        assert 0.4 <= waited < 2.5
        assert (native.status_code, native.headers["x-served-by"]) == (200, "new")
        assert native_took < 2
        assert server.health()["legacy"]["rejected"] == 1  # type: ignore[index]
        with server.client() as c:
            assert "gateway_legacy_rejected_total 1.0" in c.get("/metrics").text.splitlines()
    finally:
        for s in streams:
            s.__exit__(None, None, None)
        admin.close()
    wait_until(lambda: server.health()["legacy"]["busy"] == 0, timeout=3, what="threads freed after hang-up")  # type: ignore[index]
