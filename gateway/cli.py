"""The `gateway` command: serve, seed, check a map, list routes, write a first map, explain a match.

Settings are read when a command runs (GATEWAY_* variables), the apps are reached only
through their import strings, and every failure a user can cause ends in one line that
says what is wrong and where: exit 1 when the thing checked is wrong (a map, a seed), exit 2
when the command cannot run (usage, settings, an app that does not load).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn

from gateway import cli_demo, cli_map, cli_parity, cli_rollout, worker_startup
from gateway.cli_common import (
    MAP_HELP,
    CliError,
    Handler,
    _load,
    _map_path,
    _one_line,
    _print_problems,
    _settings,
)
from gateway.db_url import StoreError, parse_url
from gateway.loading import AppLoadError, find_module, load_object, use_app_dir
from gateway.map_loader import MapError, load_map
from gateway.metrics import MULTIPROC_ENV, multiprocess_dir
from gateway.settings import GatewaySettings

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
# the commands that import an app take --app-dir; for every one the current directory comes first
APP_COMMANDS = frozenset({"serve", "seed", "check-map", "routes", "init-map"})
APP_DIR_HELP = "import the apps from DIR, put first on sys.path (default: the current directory)"


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    path = _map_path(args, settings).resolve()
    loaded = load_map(path)  # never start on a bad map
    _check_startup(settings)
    # workers are separate processes that build their settings from the environment
    os.environ["GATEWAY_MAP_PATH"] = str(path)
    print(f"map {path}: {len(loaded.map.routes)} routes, sha256 {loaded.short_hash}", file=sys.stderr)
    with metrics_dir(args.workers), contextlib.ExitStack() as stack:
        errors = None
        if args.workers > 1:  # uvicorn restarts a dead worker: one that cannot start stops them all
            errors = stack.enter_context(worker_startup.supervised(Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="gateway-serve-")))))
        uvicorn.run(
            "gateway.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
            log_level=args.log_level,
            access_log=not settings.access_log,  # the gateway's own replaces it (uvicorn's shows queries)
        )
        reported = worker_startup.reported(errors) if errors is not None else []
    if reported:
        raise CliError("a worker could not start, so the server stopped: " + "; ".join(reported), code=2)
    return 0


def _check_startup(settings: GatewaySettings) -> None:
    """What would otherwise fail in every worker, with a traceback: an app module that is not
    on sys.path, a store URL the gateway cannot use (PostgreSQL without psycopg installed)."""
    if not settings.legacy_url:
        _load("legacy app", "GATEWAY_LEGACY_APP", settings.legacy_app, find_module)
    _load("native app", "GATEWAY_NATIVE_APP", settings.native_app, find_module)
    try:
        parse_url(settings.store_url)
    except StoreError as exc:
        raise CliError(f"{exc} (set GATEWAY_STORE_URL)") from None


@contextlib.contextmanager
def metrics_dir(workers: int) -> Iterator[None]:
    """Several workers share their Prometheus values through files in PROMETHEUS_MULTIPROC_DIR
    (a temporary directory unless it is set); values of an earlier run are cleared first, or
    its counts would be added to this one's."""
    given = multiprocess_dir()
    if given is None and workers == 1:
        yield
        return
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="gateway-metrics-"))
    try:
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    except OSError as exc:
        raise CliError(f"cannot use {MULTIPROC_ENV}={path}: {exc.strerror or exc}") from None
    os.environ[MULTIPROC_ENV] = str(path)  # the workers, spawned after this, inherit it
    print(f"metrics: {workers} workers add up their values in {path} ({MULTIPROC_ENV})", file=sys.stderr)
    try:
        yield
    finally:
        if given is None:
            del os.environ[MULTIPROC_ENV]  # this process goes on as a single one
            shutil.rmtree(path, ignore_errors=True)


def cmd_seed(args: argparse.Namespace) -> int:
    settings = _settings()
    seed = _load("seed function", "GATEWAY_SEED", settings.seed, load_object)
    if not callable(seed):
        raise CliError(f"{settings.seed!r} is not a function (set GATEWAY_SEED)")
    try:
        created = seed(args.database_url, if_empty=args.if_empty)
    except Exception as exc:  # the seed's own failure (database unreachable, not empty): one line
        raise CliError(f"seed failed: {type(exc).__name__}: {_one_line(exc)}", code=1) from None
    if not created and args.if_empty:
        print("the database already has users: nothing seeded (0 users created)")
    else:
        print(f"seeded the database: {created} users created")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Flask-to-FastAPI migration gateway.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    map_help = MAP_HELP

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        if name in APP_COMMANDS:
            p.add_argument("--app-dir", metavar="DIR", help=APP_DIR_HELP)
        return p

    p = command("serve", cmd_serve, "serve the gateway with uvicorn (refuses to start on an invalid map)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=_positive, default=1)
    p.add_argument("--map", help=map_help)
    p.add_argument("--log-level", default="info", choices=LOG_LEVELS)

    p = command("seed", cmd_seed, "fill the demo database (the function named by GATEWAY_SEED)")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: the seed function's, $DATABASE_URL)")
    p.add_argument("--if-empty", action="store_true", help="do nothing when the database already has users")

    cli_map.register(command)
    cli_parity.register(command)
    cli_rollout.register(command)
    cli_demo.register(command)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error, already printed by argparse
        return exc.code if isinstance(exc.code, int) else 0
    if args.command == "check-map" and args.map_file and args.map:
        print("gateway check-map: error: give the map once, as PATH or --map", file=sys.stderr)
        return 2
    try:
        if hasattr(args, "app_dir"):
            use_app_dir(args.app_dir)
        return args.handler(args)  # type: ignore[no-any-return]
    except AppLoadError as exc:
        print(f"gateway {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MapError as exc:
        _print_problems(exc.problems)
        return 1
    except CliError as exc:
        print(f"gateway {args.command}: error: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    raise SystemExit(main())
