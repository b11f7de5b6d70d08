"""What every `gateway` command shares: its error type, settings, the map path, app loading."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway import inventory as inv
from gateway.loading import AppLoadError, load_app
from gateway.map_loader import Problem
from gateway.settings import GatewaySettings

Handler = Callable[[argparse.Namespace], int]
MAP_HELP = "the migration map (default: $GATEWAY_MAP_PATH, else ./migration_map.yaml)"


class CliError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _one_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def _settings() -> GatewaySettings:
    try:
        return GatewaySettings()
    except ValidationError as exc:
        wrong = "; ".join(f"GATEWAY_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise CliError(f"invalid settings: {wrong}") from None


def _map_path(args: argparse.Namespace, settings: GatewaySettings) -> Path:
    given: str | None = getattr(args, "map_file", None) or args.map
    return Path(given) if given else settings.map_path


def _print_problems(problems: Sequence[Problem], severity: str = "error: ") -> None:
    for p in problems:
        where = f"{p.file}:{p.line}" if p.line else p.file
        print(f"{where}: {severity}{p.message}", file=sys.stderr)


def _load(what: str, variable: str, spec: str, loader: Callable[[str], Any]) -> Any:
    try:
        return loader(spec)
    except AppLoadError as exc:
        raise CliError(f"cannot load the {what} (set {variable}): {_one_line(exc)}") from None
    except Exception as exc:  # a module or factory that fails while running: one line, no traceback
        problem = f"{type(exc).__name__}: {_one_line(exc)}"
        raise CliError(f"cannot load the {what} {spec!r} (set {variable}): {problem}") from None


def _endpoints(side: inv.Side, settings: GatewaySettings) -> list[inv.Endpoint]:
    if side is inv.Side.LEGACY:
        spec, variable, read = settings.legacy_app, "GATEWAY_LEGACY_APP", inv.legacy_endpoints
    else:
        spec, variable, read = settings.native_app, "GATEWAY_NATIVE_APP", inv.native_endpoints
    app = _load(f"{side} app", variable, spec, load_app)
    try:
        return read(app)
    except inv.InventoryError as exc:
        raise CliError(f"{side} app {spec!r}: {exc}") from None
