"""Property-based fuzzing (schemathesis) of a real `gateway serve`: the admin API from its own
OpenAPI document, and the native features' API from theirs, called through the gateway (so
both the native side and, for routes legacy still owns, the Flask app get the generated
input). Zero server errors: any 5xx fails the test with the request that caused it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.e2e.conftest import GATEWAY, ROOT, free_port
from tests.support import wait_until

pytestmark = pytest.mark.e2e
TOKEN = "fuzz-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("fuzz")
    db = base / "demo.db"
    subprocess.run([*GATEWAY, "seed", "--database-url", f"sqlite:///{db}"], check=True, cwd=ROOT, capture_output=True)
    map_path = base / "migration_map.yaml"
    shutil.copy(ROOT / "migration_map.yaml", map_path)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "SECRET_KEY": "fuzz-secret",
        "UPLOAD_DIR": str(base / "uploads"),
        "GATEWAY_MAP_PATH": str(map_path),
        "GATEWAY_STORE_URL": f"sqlite:///{base}/parity.db",
        "GATEWAY_ADMIN_TOKEN": TOKEN,
    }
    log = open(base / "gateway.log", "wb")  # noqa: SIM115 - open for the server's whole life
    process = subprocess.Popen([*GATEWAY, "serve", "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, (base / "gateway.log").read_text()
        try:
            return httpx.get(url + "/_gateway/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, timeout=30, what="gateway up")
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    assert "Traceback" not in (base / "gateway.log").read_text()


OPEN = {"GET /_gateway/health", "GET /metrics"}  # for probes and scrapers (GATEWAY_METRICS_TOKEN guards the latter)


def fuzz(schema: Any, call: Any, skip: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """Run `call(case)` on generated cases of every operation; the operations that failed."""
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in skip:
            continue

        @given(case=operation.as_strategy())
        @FUZZ
        def run(case: Any) -> None:
            call(case)

        try:
            run()
        except AssertionError as exc:
            failures.append(f"{operation.label}: {exc}")
    return failures


def no_server_error(response: Any, case: Any) -> None:
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {case.query or ''} -> {response.status_code}: {response.text[:300]}"
    )


def test_admin_api_never_answers_5xx_and_accepts_the_token(gateway_url: str) -> None:
    schema = schemathesis.openapi.from_url(gateway_url + "/_gateway/openapi.json")

    def call(case: Any) -> None:
        response = case.call(base_url=gateway_url, headers=AUTH)
        no_server_error(response, case)
        assert response.status_code not in (401, 403), response.text

    assert not fuzz(schema, call)


def test_admin_api_refuses_every_operation_without_the_token(gateway_url: str) -> None:
    schema = schemathesis.openapi.from_url(gateway_url + "/_gateway/openapi.json")

    def call(case: Any) -> None:
        response = case.call(base_url=gateway_url, headers={"Authorization": "Bearer wrong"})
        no_server_error(response, case)
        assert response.status_code in (401, 422), f"{case.method} {case.formatted_path}: {response.status_code}"

    assert not fuzz(schema, call, skip=OPEN)


def test_native_features_through_the_gateway_never_answer_5xx(gateway_url: str) -> None:
    from features.main import create_app

    schema = schemathesis.openapi.from_dict(create_app().openapi())

    def call(case: Any) -> None:
        no_server_error(case.call(base_url=gateway_url), case)

    assert not fuzz(schema, call)
