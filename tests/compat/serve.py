"""`gateway serve` in the app's own virtualenv, from the app's directory, exercised over HTTP.

This is how a user runs it: `GATEWAY_LEGACY_APP=module:app gateway serve`, with no PYTHONPATH,
the app's own pins, the gateway installed beside them, and a real uvicorn listening on
127.0.0.1. Each app's scenario (tests/compat/scenarios.py) talks to it with httpx, and to the
app under gunicorn alone before that: the two transcripts must be the same.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.compat.gunicorn_child import free_port
from tests.compat.scenarios import SCENARIOS, Scenario
from tests.compat.venvs import WORK, AppVenv

NO_NATIVE = "gateway.no_native:app"
_START_WAIT = 60.0


@dataclass
class ServeCheck:
    steps: list[str] = field(default_factory=list)  # the transcript through the gateway
    direct: list[str] = field(default_factory=list)  # the same scenario against gunicorn alone
    problems: list[str] = field(default_factory=list)


def serve_and_exercise(venv: AppVenv, app_dir: Path, spec: str, config: dict[str, object]) -> ServeCheck:
    check = ServeCheck()
    scenario = SCENARIOS.get(venv.app)
    if scenario is None:
        check.problems.append(f"no scenario for {venv.app} in tests/compat/scenarios.py")
        return check
    gunicorn_spec = str(config.get("gunicorn", spec))
    for kind, steps in (("direct", check.direct), ("gateway", check.steps)):
        problem = _one_run(kind, venv, app_dir, spec, gunicorn_spec, config, scenario, steps)
        if problem:
            check.problems.append(f"{kind}: {problem}")
            return check
    if check.steps != check.direct:
        diff = [
            f"gunicorn: {a!r} / gateway: {b!r}"
            for a, b in zip(check.direct, check.steps, strict=False)
            if a != b
        ]
        check.problems.append(
            "the gateway's transcript differs from gunicorn's: " + "; ".join(diff or ["length"])
        )
    return check


def _one_run(
    kind: str,
    venv: AppVenv,
    app_dir: Path,
    spec: str,
    gunicorn_spec: str,
    config: dict[str, object],
    scenario: Scenario,
    steps: list[str],
) -> str | None:
    workdir = WORK / "out" / venv.app / f"serve-{kind}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    raw_env = config.get("env", {})
    assert isinstance(raw_env, dict)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update({str(k): str(v).replace("{workdir}", str(workdir)) for k, v in raw_env.items()})
    setup = config.get("setup")
    if isinstance(setup, str):  # e.g. create the tables the app expects, with the app's own code
        done = subprocess.run(
            [str(venv.python), "-c", setup],
            cwd=app_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            return f"set-up exited {done.returncode}: {done.stderr.strip()[-500:]}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if kind == "direct":
        cmd = [str(venv.bin / "gunicorn"), "-b", f"127.0.0.1:{port}", "--workers", "1", gunicorn_spec]
        ready = url + "/"
    else:
        map_path = workdir / "map.yaml"
        map_path.write_text("version: 1\ndefaults: {owner: legacy}\nroutes: []\n")
        env.update(
            {
                "GATEWAY_LEGACY_APP": spec,
                "GATEWAY_NATIVE_APP": NO_NATIVE,
                "GATEWAY_STORE_URL": f"sqlite:///{workdir / 'store.db'}",
                "GATEWAY_SERVED_BY_HEADER": "",
            }
        )
        cmd = [
            str(venv.bin / "gateway"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--map",
            str(map_path),
        ]
        ready = url + "/_gateway/health"
    log_path = workdir / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            cmd, cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        if not _wait_ready(ready, process):
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            return f"{cmd[0]} did not come up:\n    " + "\n    ".join(tail)
        with httpx.Client(base_url=url, timeout=30) as client:
            try:
                scenario(client, steps, "compat_user")
            except AssertionError as exc:
                return f"over HTTP: {exc}"
    finally:
        _stop(process)
    return None


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + _START_WAIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            httpx.get(url, timeout=2)
            return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
