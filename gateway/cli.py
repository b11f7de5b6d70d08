"""The `gateway` command: serve, seed, check a map, list routes, write a first map, explain a match.

Settings are read when a command runs (GATEWAY_* variables), the apps are reached only
through their import strings, and every failure a user can cause ends in one line that
says what is wrong and where: exit 1 when the thing checked is wrong (a map, a seed), exit 2
when the command cannot run (usage, settings, an app that does not load).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import uvicorn
import yaml
from pydantic import ValidationError

from gateway import inventory as inv
from gateway.loading import AppLoadError, load_app, load_object
from gateway.map_loader import MapError, Problem, load_map, parse_map
from gateway.settings import GatewaySettings
from gateway.table import UNMAPPED_ID, build_table

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")  # what ROUTE_ID_PATTERN does not allow
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
Handler = Callable[[argparse.Namespace], int]


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


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    path = _map_path(args, settings).resolve()
    loaded = load_map(path)  # never start on a bad map
    # workers are separate processes that build their settings from the environment
    os.environ["GATEWAY_MAP_PATH"] = str(path)
    print(f"map {path}: {len(loaded.map.routes)} routes, sha256 {loaded.short_hash}", file=sys.stderr)
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
        log_level=args.log_level,
    )
    return 0


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


def cmd_check_map(args: argparse.Namespace) -> int:
    settings = _settings()
    path = _map_path(args, settings)
    loaded = load_map(path)
    errors: list[Problem] = []
    if not args.no_apps:
        legacy, native = _endpoints(inv.Side.LEGACY, settings), _endpoints(inv.Side.NATIVE, settings)
        errors, warnings = inv.check_entries(loaded, legacy, native)
        _print_problems(warnings, "warning: ")
    if args.against_store:
        from gateway.cli_parity import store_problems  # it imports this module

        errors = [*errors, *store_problems(loaded, args.store)]
    if errors:
        _print_problems(errors)
        return 1
    print(f"ok: {path}: {len(loaded.map.routes)} routes, sha256 {loaded.short_hash}")
    return 0


def cmd_routes(args: argparse.Namespace) -> int:
    settings = _settings()
    loaded = load_map(_map_path(args, settings))
    legacy, native = _endpoints(inv.Side.LEGACY, settings), _endpoints(inv.Side.NATIVE, settings)
    rows = inv.inventory(legacy, native, loaded)
    done, total = inv.progress(rows)
    if args.json:
        report = {
            "map": loaded.file,
            "sha256": loaded.sha256,
            "endpoints": [_row_json(r) for r in rows],
            "progress": {"native": done, "total": total},
        }
        print(json.dumps(report, indent=2))
        return 0
    yes = {True: "y", False: "n"}
    table = [["METHOD", "PATH", "LEGACY", "NATIVE", "ENTRY", "OWNER", "NOTE"]]
    for r in rows:
        note = "; ".join(e.note for e in (r.legacy, r.native) if e is not None and e.note)
        table.append(
            [
                r.method,
                r.path,
                yes[r.legacy is not None],
                yes[r.native is not None],
                r.entry_id or "-",
                str(r.owner),
                note,
            ]
        )
    if not any(line[-1] for line in table[1:]):
        table = [line[:-1] for line in table]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    print(f"\n{done} of {total} endpoints served natively (map {loaded.file}, sha256 {loaded.short_hash})")
    return 0


def _row_json(r: inv.Row) -> dict[str, Any]:
    out: dict[str, Any] = {"method": r.method, "path": r.path}
    for side, e in (("legacy", r.legacy), ("native", r.native)):
        out |= {side: e is not None, f"{side}_path": e and e.path, f"{side}_name": e and e.name}
    notes = [e.note for e in (r.legacy, r.native) if e is not None and e.note]
    return out | {
        "entry": r.entry_id,
        "line": r.entry_line,
        "owner": str(r.owner),
        "served_natively": r.served_natively,
        "notes": notes,
    }


def cmd_init_map(args: argparse.Namespace) -> int:
    out = Path(args.output) if args.output else None
    if out is not None and out.is_dir():
        raise CliError(f"--output {out} is a directory; give a file path", code=1)
    if out is not None and out.exists() and not args.force:
        raise CliError(f"{out} already exists; not overwriting it (use --force to replace it)", code=1)
    settings = _settings()
    text, count = render_map(_endpoints(inv.Side.LEGACY, settings), settings.legacy_app)
    try:
        parse_map(text, "<init-map output>")
    except MapError as exc:  # a bug here, not the user's: say so rather than write a bad map
        raise CliError(f"internal error, the generated map is invalid: {exc.problems[0]}", code=1) from None
    if out is None:
        sys.stdout.write(text)
        return 0
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, out)  # a gateway watching this directory sees one complete file
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror}", code=1) from None
    print(f"wrote {out}: {count} routes, all owner: legacy", file=sys.stderr)
    return 0


def _scalar(text: str) -> str:
    try:
        if yaml.safe_load(f"k: {text}") == {"k": text}:
            return text
    except yaml.YAMLError:
        pass
    return json.dumps(text)  # a JSON string is a valid double-quoted YAML scalar


def _route_id(name: str, used: set[str]) -> str:
    base = _ID_UNSAFE.sub("_", name).lstrip("_.:-")[:120] or "route"
    candidate, n = base, 2
    while candidate in used:
        candidate, n = f"{base}-{n}", n + 1
    used.add(candidate)
    return candidate


def render_map(endpoints: Sequence[inv.Endpoint], source: str) -> tuple[str, int]:
    """A version 1 map listing every legacy rule as legacy-owned, and how many entries it has."""
    rules: dict[tuple[str, str], list[inv.Endpoint]] = {}
    for e in endpoints:
        rules.setdefault((e.name, e.path), []).append(e)
    lines = [
        f"# Written by `gateway init-map` from {source}: every legacy URL rule, served by legacy.",
        "# Set `owner: new` on an entry once a native route implements it; check with `gateway check-map`.",
        "version: 1",
        "defaults:",
        "  owner: legacy",
        "routes:",
    ]
    used: set[str] = set()
    taken: dict[tuple[str, str], str] = {}  # (shape, method) -> id: Flask serves the first rule
    count = 0
    for (name, path), group in rules.items():
        template, note = group[0].template, group[0].note
        methods = [e.method for e in group]
        if template is None:
            lines.append(f"  # skipped {name} {', '.join(methods)} {path}: {note}")
            continue
        shape = template.shape
        kept = []
        for m in methods:
            first = _first_rule(taken, shape, m)
            if first is None:
                kept.append(m)
            else:  # the map would call this an overlap; Flask never reaches the later rule anyway
                lines.append(f"  # {name}: {m} {path} is already served by the rule of {first!r}")
        if not kept:
            continue
        route_id = _route_id(name, used)
        taken.update({(shape, m): route_id for m in kept})
        if note:
            lines.append(f"  # {path}: {note}")
        lines.append(f"  - id: {_scalar(route_id)}")
        lines.append(f"    path: {_scalar(template.source)}")
        if kept != [inv.ANY_METHOD]:
            lines.append(f"    methods: [{', '.join(kept)}]")
        lines.append("    owner: legacy")
        count += 1
    if count == 0:
        lines[lines.index("routes:")] = "routes: []"
    return "\n".join(lines) + "\n", count


def _first_rule(taken: dict[tuple[str, str], str], shape: str, method: str) -> str | None:
    for (s, m), route_id in taken.items():
        if s == shape and (m == method or inv.ANY_METHOD in (m, method)):
            return route_id
    return None


def cmd_explain(args: argparse.Namespace) -> int:
    settings = _settings()
    raw: str = args.path
    # a whole URL keeps only its path; "//x" alone is a path, not a host
    path = urlsplit(raw).path if "://" in raw else raw.split("#", 1)[0].split("?", 1)[0]
    if not path.startswith("/"):
        raise CliError(f"PATH must start with '/', got {args.path!r}")
    path = unquote(path)  # the gateway matches the decoded path, as ASGI gives it
    loaded = load_map(_map_path(args, settings))
    table = build_table(loaded)
    method = args.method.upper()
    route = table.lookup(method, path)
    print(f"{method} {path}")
    if route.id == UNMAPPED_ID:
        print(f"  entry:     none matches in {loaded.file}")
        print(f"  served by: {route.owner} (defaults.owner)")
    else:
        print(f"  entry:     {route.id} ({loaded.file}:{route.line})")
        print(f"  path:      {route.path}")
        print(f"  methods:   {', '.join(route.methods) if route.methods else 'every method'}")
        print(f"  served by: {route.owner}")
    others = {}
    for other in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        found = table.lookup(other, path)
        if other != method and found.id not in (UNMAPPED_ID, route.id):
            others[other] = found
    if others:
        listed = ", ".join(f"{m} -> {r.id} ({r.owner})" for m, r in others.items())
        print(f"  other methods on this path: {listed}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Flask-to-FastAPI migration gateway.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    map_help = "the migration map (default: $GATEWAY_MAP_PATH, else ./migration_map.yaml)"

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
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

    p = command("check-map", cmd_check_map, "validate a map, and check it against both apps")
    p.add_argument("map_file", nargs="?", metavar="PATH", help=map_help)
    p.add_argument("--map", help=map_help)
    p.add_argument("--no-apps", action="store_true", help="check the file only; do not load the apps")
    p.add_argument(
        "--against-store", action="store_true", help="refuse owner: new on a route not ready for cut-over"
    )
    p.add_argument("--store", metavar="URL", help="parity store URL (default: $GATEWAY_STORE_URL)")

    p = command("routes", cmd_routes, "every legacy rule and native route, its owner, and migration progress")
    p.add_argument("--map", help=map_help)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("init-map", cmd_init_map, "write a map listing every legacy endpoint as legacy-owned")
    p.add_argument("--output", "-o", metavar="PATH", help="file to write (default: standard output)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output file")

    p = command("explain", cmd_explain, "which map entry matches a request, and which side serves it")
    p.add_argument("method", metavar="METHOD")
    p.add_argument("path", metavar="PATH", help="request path; a query string is ignored")
    p.add_argument("--map", help=map_help)

    # parity, cutover-check, rollout, audit: they import this module
    from gateway import cli_parity, cli_rollout

    cli_parity.register(command)
    cli_rollout.register(command)
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
        return args.handler(args)  # type: ignore[no-any-return]
    except MapError as exc:
        _print_problems(exc.problems)
        return 1
    except CliError as exc:
        print(f"gateway {args.command}: error: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    raise SystemExit(main())
