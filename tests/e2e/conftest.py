"""A real `gateway serve` (uvicorn) process on 127.0.0.1 over a freshly seeded SQLite demo DB."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-secret"
GATEWAY = [sys.executable, "-m", "gateway.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    map_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)  # type: ignore[arg-type]

    def health(self) -> dict[str, object]:
        return dict(httpx.get(self.url + "/_gateway/health", timeout=5).json())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    done = subprocess.run([*GATEWAY, "seed", "--database-url", f"sqlite:///{db}"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"gateway seed exited with {done.returncode}:\n{done.stdout}{done.stderr}"
    return db


@pytest.fixture
def start_server(tmp_path: Path, seeded_db: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(map_text: str | None = None, workers: int = 1, **env: str) -> Server:
        db = tmp_path / "demo.db"
        shutil.copy(seeded_db, db)
        map_path = tmp_path / "maps" / "migration_map.yaml"
        map_path.parent.mkdir(exist_ok=True)
        map_path.write_text(map_text if map_text is not None else (ROOT / "migration_map.yaml").read_text())
        port = free_port()
        log_path = tmp_path / f"gateway-{port}.log"
        full_env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{db}",
            "SECRET_KEY": SECRET,
            "UPLOAD_DIR": str(tmp_path / "uploads"),
            "GATEWAY_MAP_PATH": str(map_path),
            # the shipped map shadows some routes: keep their parity store out of the repository
            "GATEWAY_STORE_URL": f"sqlite:///{tmp_path}/parity-{port}.db",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        with open(log_path, "wb") as log:
            command = [*GATEWAY, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
            process = subprocess.Popen(command,
                                       cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", map_path, log_path, process)
        started.append(server)

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"gateway exited with {process.returncode}:\n{server.log()}")
            try:
                return httpx.get(server.url + "/_gateway/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=30, what="gateway up")
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(15)
            except subprocess.TimeoutExpired:
                server.process.kill()
