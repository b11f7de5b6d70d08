"""Real server processes for the benchmark: started pinned to a core, polled until they answer,
and always stopped (process group, SIGTERM then SIGKILL), also on Ctrl-C or a failure."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType, FrameType

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    command: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def pids(self) -> list[int]:
        """The launcher and every process it started (gunicorn's or uvicorn's workers), now."""
        return [self.process.pid, *descendants(self.process.pid)]

    def serving_pid(self) -> int:
        """The pid that accepts this server's connections: the launcher itself or one of its
        descendants (gunicorn's worker, uvicorn's worker when there is a supervisor)."""
        inodes = listening_inodes(self.port)
        found = [pid for pid in self.pids() if holds_socket(pid, inodes)]
        if not found:
            raise RuntimeError(f"{self.name}: no process of {self.process.pid}'s tree listens on {self.port}")
        return found[-1]  # the deepest: a worker rather than the master that forked it


def listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":
                    inodes.add(cols[9])
    return inodes


def descendants(pid: int) -> list[int]:
    """Children before grandchildren (breadth first)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
            stat = f.read()
        with contextlib.suppress(NameError, ValueError, IndexError):
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    queue = [pid]
    while queue:
        for child in sorted(children.get(queue.pop(0), [])):
            out.append(child)
            queue.append(child)
    return out


def holds_socket(pid: int, inodes: set[str]) -> bool:
    targets = {f"socket:[{inode}]" for inode in inodes}
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                    return True
    return False


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def http_status(url: str, *, method: str = "GET", body: bytes | None = None, timeout: float = 5) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def http_get(url: str, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), {k.lower(): v for k, v in exc.headers.items()}, exc.read()


class Servers:
    """Starts servers and stops every one of them on exit, whatever ends the block."""

    def __init__(self, workdir: Path, *, cpu: str | None = "0", cwd: Path = ROOT) -> None:
        self.workdir = workdir
        self.cpu = cpu
        self.cwd = cwd  # where the servers start: the code snapshot they import
        self.started: list[Server] = []

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        env: dict[str, str],
        ready_path: str,
        timeout: float = 60,
        cpu: str | EllipsisType | None = ...,
    ) -> Server:
        """Start a server pinned to `cpu` (default: the servers' core; None: not pinned)."""
        pin = self.cpu if isinstance(cpu, EllipsisType) else cpu
        command = (["taskset", "-c", pin] if pin is not None else []) + list(argv)
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped whole, workers included
            )
        server = Server(name, port, process, log_path, command)
        self.started.append(server)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
            with contextlib.suppress(OSError):
                if http_status(server.url + ready_path, timeout=2) < 500:
                    return server
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} did not answer {ready_path} within {timeout:g} s:\n{server.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, server: Server, timeout: float = 15) -> None:
        if server.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGTERM)
            try:
                server.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait(5)
        # a worker that outlived its master (it should not) goes with the group too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.process.pid, signal.SIGKILL)
        if server in self.started:
            self.started.remove(server)

    def stop_all(self) -> None:
        for server in reversed(list(self.started)):
            self.stop(server)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP end the run as Ctrl-C does, so every `finally` stops its servers."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGINT too: a run started in the background (`make bench &`) inherits it ignored
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
