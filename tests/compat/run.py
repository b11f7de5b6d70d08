"""The compatibility harness: real Flask apps' own suites, direct and through the gateway.

    python -m tests.compat.run [--app NAME ...] [--modes direct,inprocess,remote] [--no-write] [--jobs N]

For each app under tests/compat/apps/ (its own code, tests, pins and compat.toml): a virtualenv
of its pins, the gateway installed into it (the pins must not move), then its suite run
directly, through the gateway in-process, and through the gateway with the app under gunicorn.
Every test whose outcome differs from the direct run is a difference; one that compat.toml
does not explain as inherent fails the harness. Writes tests/compat/RESULTS.md and
.compat/out/results.json unless --no-write.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.compat.mapping import MapCheck, ShadowCheck, init_map, shadow_run
from tests.compat.serve import ServeCheck, serve_and_exercise
from tests.compat.suite import SuiteRun, run_suite
from tests.compat.venvs import ROOT, WORK, HarnessError, build_wheel, prepare

APPS = Path(__file__).resolve().parent / "apps"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
MODES = ("direct", "inprocess", "remote", "shadow", "serve")


@dataclass
class Difference:
    mode: str
    test: str
    direct: str
    through: str
    cause: str
    inherent: bool


@dataclass
class AppResult:
    name: str
    version: str
    runs: dict[str, SuiteRun] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    moved_pins: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    map_check: MapCheck | None = None
    shadow: ShadowCheck | None = None
    serve: ServeCheck | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and not self.moved_pins and all(d.inherent for d in self.differences)


def load_config(app_dir: Path) -> dict[str, object]:
    path = app_dir / "compat.toml"
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise HarnessError(f"{path}: {exc}") from None


def compare(result: AppResult, inherent: dict[str, dict[str, str]]) -> None:
    direct = result.runs["direct"]
    for mode, run in result.runs.items():
        if mode == "direct":
            continue
        explained = inherent.get(mode, {})
        for test in sorted(set(direct.outcomes) | set(run.outcomes)):
            a, b = direct.outcomes.get(test, "absent"), run.outcomes.get(test, "absent")
            if a == b:
                continue
            why = explained.get(test)
            cause = why or run.messages.get(test) or direct.messages.get(test) or "(no message)"
            result.differences.append(Difference(mode, test, a, b, cause, why is not None))
        for test in explained:
            if direct.outcomes.get(test) == run.outcomes.get(test):
                result.problems.append(
                    f"{mode}: {test} is listed as inherent in compat.toml but no longer differs"
                )


def run_app(name: str, modes: tuple[str, ...], wheel: Path) -> AppResult:
    app_dir = APPS / name
    config = load_config(app_dir)
    result = AppResult(name, str(config.get("version", "")))
    venv = prepare(name, app_dir, str(config.get("python", "3.11")), wheel)
    result.moved_pins = venv.moved_pins()
    if result.moved_pins:
        result.problems.append(
            "installing the gateway changed the app's pins: " + "; ".join(result.moved_pins)
        )
        return result
    args = [str(a) for a in config.get("pytest_args", [])]  # type: ignore[attr-defined]
    env = {str(k): str(v) for k, v in config.get("env", {}).items()}  # type: ignore[attr-defined]
    for mode in modes:
        print(f"  {name}: {mode} ...", file=sys.stderr, flush=True)
        if mode == "serve":
            serve_config = config.get("serve", {})
            assert isinstance(serve_config, dict)
            result.serve = serve_and_exercise(venv, app_dir, str(config["app"]), serve_config)
            result.problems += [f"serve: {p}" for p in result.serve.problems]
            continue
        if mode != "shadow":
            result.runs[mode] = run_suite(
                name, app_dir, venv.python, mode, args, {**env, **_mode_env(config, mode)}
            )
            continue
        # the shadow run needs the app's map: init-map writes it, and is checked on the way
        map_path, result.map_check = init_map(venv, app_dir, str(config["app"]), env)
        result.problems += [f"init-map: {p}" for p in result.map_check.problems]
        if result.map_check.unlisted:
            result.problems.append("init-map: no entry for " + ", ".join(result.map_check.unlisted))
        if result.map_check.problems:
            continue
        result.shadow = shadow_run(venv, app_dir, map_path, args, env)
        result.problems += [f"shadow: {p}" for p in result.shadow.problems]
        if result.shadow.run is not None:
            result.runs["shadow"] = result.shadow.run
    if "direct" in result.runs:
        compare(result, config.get("inherent", {}))  # type: ignore[arg-type]
    return result


def _mode_env(config: dict[str, object], mode: str) -> dict[str, str]:
    """What one mode adds to the app's environment ({workdir}: a directory of that run's own)."""
    extra = config.get("mode_env", {})
    assert isinstance(extra, dict)
    workdir = WORK / "out" / str(config["name"]) / f"{mode}-data"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    return {str(k): str(v).replace("{workdir}", str(workdir)) for k, v in extra.get(mode, {}).items()}


def _cell(result: AppResult, mode: str) -> str:
    run = result.runs.get(mode)
    if run is None:
        return "-"
    return f"{run.count('passed')} / {len(run.outcomes)}"


def _shadow_cell(check: ShadowCheck | None) -> str:
    if check is None or check.false_rate is None:
        return "-"
    total = check.compared + check.candidate_errors
    noise = f"; learned noise: {', '.join(check.noise_fields)}" if check.noise_fields else ""
    return f"{check.mismatched + check.candidate_errors} of {total} ({check.false_rate:.2%}){noise}"


def _serve_cell(check: ServeCheck | None) -> str:
    if check is None:
        return "-"
    return "FAILED" if check.problems else f"ok, {len(check.steps)} requests"


def _map_cell(check: MapCheck | None) -> str:
    if check is None:
        return "-"
    if check.problems:
        return "FAILED"
    listed = check.endpoints - len(check.unlisted)
    return f"{check.routes} entries, {listed} of {check.endpoints} endpoints, check-map ok"


def render(results: list[AppResult]) -> str:
    lines = [
        "# Compatibility harness results",
        "",
        "Written by `make compat` (`python -m tests.compat.run`). Each app's own suite, in its own",
        "virtualenv with its own pins: tests passed / tests run, directly with the app's own test",
        "client, through the gateway in-process, and through the gateway with the app under gunicorn",
        "(remote mode).",
        "",
        "| app | version | direct | gateway in-process | gateway remote | shadowed against itself: false mismatches "
        "| init-map | `gateway serve` over HTTP | pins moved by the gateway | differences |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        diffs = (
            "none"
            if not r.differences
            else (
                f"{len(r.differences)}, all inherent"
                if all(d.inherent for d in r.differences)
                else f"{sum(not d.inherent for d in r.differences)} unexplained"
            )
        )
        moved = "none" if not r.moved_pins else "; ".join(r.moved_pins)
        lines.append(
            f"| {r.name} | {r.version} | {_cell(r, 'direct')} | {_cell(r, 'inprocess')} | {_cell(r, 'remote')} "
            f"| {_shadow_cell(r.shadow)} | {_map_cell(r.map_check)} | {_serve_cell(r.serve)} | {moved} | {diffs} |"
        )
    for r in results:
        if not r.differences and not r.problems:
            continue
        lines += ["", f"## {r.name}", ""]
        lines += [f"- problem: {p}" for p in r.problems]
        for d in r.differences:
            tag = "inherent" if d.inherent else "UNEXPLAINED"
            lines.append(
                f"- {d.mode}: `{d.test}` {d.direct} directly, {d.through} through the gateway ({tag}): {d.cause}"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.compat.run", description=__doc__.split("\n")[0])
    parser.add_argument("--app", action="append", help="only this app (repeatable); default: every app")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, from: " + ", ".join(MODES))
    parser.add_argument("--no-write", action="store_true", help="print the table, write no files")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="apps run side by side (default: one per core)"
    )
    args = parser.parse_args(argv)
    modes = tuple(m for m in args.modes.split(",") if m)
    unknown = [m for m in modes if m not in MODES]
    if unknown or "direct" not in modes:  # every other mode is compared with the direct run
        parser.error(f"--modes {args.modes!r}: give direct and any of {', '.join(MODES[1:])}")
    names = args.app or sorted(p.name for p in APPS.iterdir() if (p / "compat.toml").exists())
    missing = [n for n in names if not (APPS / n / "compat.toml").exists()]
    if missing:
        parser.error(f"no app {', '.join(missing)} under {APPS.relative_to(ROOT)}")
    try:
        wheel = build_wheel()
        # each app has a venv, a work dir and free ports of its own, and its run mostly waits on
        # subprocesses (pip, pytest, servers): side by side, they take the time of the slowest
        with ThreadPoolExecutor(max_workers=max(1, min(len(names), args.jobs))) as pool:
            results = list(pool.map(lambda name: run_app(name, modes, wheel), names))
    except HarnessError as exc:
        print(f"compat: error: {exc}", file=sys.stderr)
        return 1
    table = render(results)
    print(table)
    if not args.no_write:
        RESULTS.write_text(table)
        (WORK / "out").mkdir(parents=True, exist_ok=True)
        (WORK / "out" / "results.json").write_text(json.dumps([_as_json(r) for r in results], indent=2))
    return 0 if all(r.ok for r in results) else 1


def _as_json(r: AppResult) -> dict[str, object]:
    return {
        "app": r.name,
        "version": r.version,
        "runs": {
            m: {"passed": s.count("passed"), "total": len(s.outcomes), "outcomes": s.outcomes}
            for m, s in r.runs.items()
        },
        "differences": [d.__dict__ for d in r.differences],
        "moved_pins": r.moved_pins,
        "problems": r.problems,
        "ok": r.ok,
    }


if __name__ == "__main__":
    sys.exit(main())
