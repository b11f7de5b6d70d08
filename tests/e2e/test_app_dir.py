"""`GATEWAY_LEGACY_APP=module:app gateway serve` from the app's own directory, with no PYTHONPATH,
as uvicorn, gunicorn and `flask run` allow (issue 13): the installed `gateway` script, one
worker and two, each worker importing the app from that directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.support import wait_until

pytestmark = pytest.mark.e2e

SCRIPT = Path(sys.executable).with_name("gateway")  # the console script: sys.path[0] is its bin/

LEGACY = """\
def app(environ, start_response):
    body = ("legacy answers " + environ["PATH_INFO"]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""

NATIVE = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"side": "new"}
"""

MAP = """\
version: 1
routes:
  - {id: hello, path: /hello, methods: [GET], owner: new}
"""


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") and k != "PYTHONPATH"}
    return {**env, "GATEWAY_STORE_URL": f"sqlite:///{tmp_path}/parity.db", "PYTHONUNBUFFERED": "1", **extra}


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "myproject"
    folder.mkdir()
    (folder / "mylegacy.py").write_text(LEGACY)
    (folder / "mynative.py").write_text(NATIVE)
    (folder / "migration_map.yaml").write_text(MAP)
    return folder


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_imports_the_app_from_the_working_directory(
    app_dir: Path, tmp_path: Path, serve: list[subprocess.Popen[bytes]], workers: int
) -> None:
    port = free_port()
    log_path = tmp_path / "gateway.log"
    env = clean_env(tmp_path, GATEWAY_LEGACY_APP="mylegacy:app", GATEWAY_NATIVE_APP="mynative:app")
    command = [str(SCRIPT), "serve", "--port", str(port), "--workers", str(workers)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    serve.append(process)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"gateway exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            return httpx.get(url + "/_gateway/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, timeout=30, what="gateway up")
    # every worker imported both apps from the directory before it said it was ready
    wait_until(lambda: log_path.read_text().count("gateway ready") == workers, timeout=30,
               what=f"{workers} workers ready")
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(4 * workers):
            legacy = client.get("/anything")
            assert (legacy.status_code, legacy.text) == (200, "legacy answers /anything")
            assert legacy.headers["x-served-by"] == "legacy"
            native = client.get("/hello")
            assert (native.json(), native.headers["x-served-by"]) == ({"side": "new"}, "new")


def test_an_app_not_on_the_path_is_refused_at_start_saying_where_it_looked(
    app_dir: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "migration_map.yaml").write_text(MAP)
    env = clean_env(tmp_path, GATEWAY_LEGACY_APP="mylegacy:app", GATEWAY_NATIVE_APP="mynative:app")
    done = subprocess.run([str(SCRIPT), "serve", "--port", str(free_port())], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "gateway serve: error: cannot load the legacy app (set GATEWAY_LEGACY_APP): 'mylegacy:app': "
        f"cannot import module 'mylegacy' (searched {elsewhere} and the rest of sys.path); "
        "run from the app's directory or pass --app-dir"
    )
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_an_app_that_cannot_share_the_interpreter_stops_serve_with_one_line(
    app_dir: Path, tmp_path: Path, workers: int
) -> None:
    # the module is there, its import fails in every worker: uvicorn's supervisor would restart
    # each worker forever; instead the first failure stops the server and is said once
    (app_dir / "mylegacy.py").write_text("from pydantic.fields import ModelField\n" + LEGACY)
    env = clean_env(tmp_path, GATEWAY_LEGACY_APP="mylegacy:app", GATEWAY_NATIVE_APP="mynative:app")
    command = [str(SCRIPT), "serve", "--port", str(free_port()), "--workers", str(workers)]
    done = subprocess.run(command, cwd=app_dir, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    last = done.stderr.splitlines()[-1]
    prefix = "gateway serve: error: " + ("a worker could not start, so the server stopped: " if workers > 1 else "")
    assert last.startswith(prefix + "'mylegacy:app': cannot import module 'mylegacy': cannot import name "
                           "'ModelField' from 'pydantic.fields'"), done.stderr
    assert last.endswith("(remote mode)") and "installed for the gateway itself" in last
    assert done.stderr.count("ModelField") == 1 and "Traceback" not in done.stderr


def test_a_factory_that_raises_in_every_worker_stops_serve(app_dir: Path, tmp_path: Path) -> None:
    (app_dir / "mylegacy.py").write_text(
        "def create_app():\n    raise RuntimeError('DATABASE_URL is not set')\n"
    )
    env = clean_env(tmp_path, GATEWAY_LEGACY_APP="mylegacy:create_app", GATEWAY_NATIVE_APP="mynative:app")
    command = [str(SCRIPT), "serve", "--port", str(free_port()), "--workers", "2"]
    done = subprocess.run(command, cwd=app_dir, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "gateway serve: error: a worker could not start, so the server stopped: "
        "RuntimeError: DATABASE_URL is not set"
    )
    assert 'mylegacy.py", line 2, in create_app' in done.stderr  # the app's own error keeps its traceback
