"""One run of an app's own test suite in one mode, read back from its JUnit XML report."""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from tests.compat.venvs import WORK, HarnessError

PLUGIN = "gateway.compat.pytest_plugin"
SUITE_TIMEOUT = 900.0


@dataclass
class SuiteRun:
    mode: str
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> passed/failed/error/skipped
    messages: dict[str, str] = field(default_factory=dict)  # test id -> first line of its failure
    seconds: float = 0.0

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)


def read_junit(path: Path, mode: str) -> SuiteRun:
    suite = SuiteRun(mode)
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = (child.get("message") or child.text or "").strip().splitlines()[:1]
                message = message[0][:300] if message else ""
                break
        # a test that passed but whose teardown failed shows twice: the failure wins
        if suite.outcomes.get(test_id) not in ("failed", "error"):
            suite.outcomes[test_id] = outcome
            if message:
                suite.messages[test_id] = message
    for s in root.iter("testsuite"):
        suite.seconds += float(s.get("time", 0) or 0)
    return suite


def run_suite(
    app: str,
    app_dir: Path,
    python: Path,
    mode: str,
    pytest_args: list[str],
    env: dict[str, str] | None = None,
) -> SuiteRun:
    out = WORK / "out" / app
    out.mkdir(parents=True, exist_ok=True)
    report = out / f"junit-{mode}.xml"
    report.unlink(missing_ok=True)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PYTEST_"))}
    run_env.pop("VIRTUAL_ENV", None)
    run_env.update(env or {})
    run_env["GATEWAY_COMPAT_MODE"] = mode
    cmd = [str(python), "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider", "-q", f"--junitxml={report}"]
    with (out / f"pytest-{mode}.log").open("w") as log:
        done = subprocess.run(
            [*cmd, *pytest_args],
            cwd=app_dir,
            env=run_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=SUITE_TIMEOUT,
            check=False,
        )
    if not report.exists():
        raise HarnessError(
            f"{app} ({mode}): pytest exited {done.returncode} and wrote no report; see {log.name}"
        )
    return read_junit(report, mode)
