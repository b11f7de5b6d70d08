"""Each harness app gets a virtualenv of its own pins; the gateway is installed into it afterwards.

The venv is built once per requirements file and kept under .compat/venvs/<app>. The gateway
goes in as a wheel of this checkout, resolved by pip against the app's pins, and the pins are
compared before and after: the gateway must not move any of them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".compat"


class HarnessError(Exception):
    pass


def run(
    cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 900
) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise HarnessError(f"{' '.join(cmd)} exited {done.returncode}:\n{tail}")
    return done.stdout


def find_python(version: str) -> str:
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found:
        return found
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python"))
    if pyenv:
        return str(pyenv[-1])
    raise HarnessError(
        f"no Python {version} on this machine (looked for python{version} on PATH and in pyenv)"
    )


def build_wheel() -> Path:
    """A wheel of this checkout, as a user would install the gateway (no editable install)."""
    out = WORK / "wheel"
    shutil.rmtree(out, ignore_errors=True)
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)], timeout=600
    )
    wheels = sorted(out.glob("migration_gateway-*.whl"))
    if not wheels:
        raise HarnessError(f"pip wheel wrote no migration_gateway wheel into {out}")
    return wheels[0]


def _freeze(python: Path) -> dict[str, str]:
    lines = run([str(python), "-m", "pip", "freeze", "--all", "--exclude-editable"]).splitlines()
    pins = {}
    for line in lines:
        name, sep, version = line.partition("==")
        if sep:
            pins[name.lower().replace("_", "-")] = version
    return pins


@dataclass
class AppVenv:
    app: str
    path: Path
    pins_before: dict[str, str]
    pins_after: dict[str, str]

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def moved_pins(self) -> list[str]:
        """Every pin of the app's own that installing the gateway changed or removed."""
        moved = []
        for name, version in sorted(self.pins_before.items()):
            after = self.pins_after.get(name)
            if after != version:
                moved.append(f"{name} {version} -> {after or 'removed'}")
        return moved


def prepare(app: str, app_dir: Path, python_version: str, wheel: Path) -> AppVenv:
    requirements = app_dir / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes() + python_version.encode()).hexdigest()[:16]
    path = WORK / "venvs" / app
    stamp = path / ".pins-installed"
    before_file = path / "pins-before.txt"
    if not stamp.exists() or stamp.read_text() != digest:
        shutil.rmtree(path, ignore_errors=True)
        run([find_python(python_version), "-m", "venv", str(path)])
        py = str(path / "bin" / "python")
        run([py, "-m", "pip", "install", "--quiet", "-r", str(requirements)], cwd=app_dir)
        before_file.write_text(
            "\n".join(f"{k}=={v}" for k, v in sorted(_freeze(path / "bin" / "python").items()))
        )
        stamp.write_text(digest)
    before = dict(line.split("==", 1) for line in before_file.read_text().splitlines() if line)
    py = str(path / "bin" / "python")
    # first with its dependencies, resolved against the app's pins; then this checkout's code again,
    # since the wheel's version number does not change from one commit to the next
    run([py, "-m", "pip", "install", "--quiet", str(wheel)])
    run([py, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", str(wheel)])
    venv = AppVenv(app, path, before, _freeze(path / "bin" / "python"))
    venv.pins_after.pop("migration-gateway", None)
    if venv.moved_pins():
        stamp.unlink()  # the app's pins are no longer what it asked for: start over next run
    return venv
