"""The map commands of `gateway`: check a map, list routes and progress, write a first map,
explain which entry a request matches."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from gateway import inventory as inv
from gateway.cli_common import MAP_HELP, CliError, Handler, _endpoints, _map_path, _print_problems, _settings
from gateway.map_loader import MapError, Problem, load_map, parse_map
from gateway.table import UNMAPPED_ID, build_table

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")  # what ROUTE_ID_PATTERN does not allow
_CONVERTER_NOTE = re.compile(r"'([A-Za-z_]\w*)'")  # the names in inventory.read_path's note


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
        note = "; ".join(_notes(r))
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


def _notes(r: inv.Row) -> list[str]:
    notes = [e.note for e in (r.legacy, r.native) if e is not None and e.note]
    if r.legacy is not None and r.legacy.host:
        notes.append(f"legacy serves it by host: {r.legacy.host}")
    return notes


def _row_json(r: inv.Row) -> dict[str, Any]:
    out: dict[str, Any] = {"method": r.method, "path": r.path}
    for side, e in (("legacy", r.legacy), ("native", r.native)):
        out |= {side: e is not None, f"{side}_path": e and e.path, f"{side}_name": e and e.name}
    notes = _notes(r)
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
    made = render_map(_endpoints(inv.Side.LEGACY, settings), settings.legacy_app)
    text = made.text
    for notice in made.notices:
        print(f"gateway init-map: note: {notice}", file=sys.stderr)
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
    print(f"wrote {out}: {made.count} routes, all owner: legacy", file=sys.stderr)
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


_Taken = dict[tuple[str, str], tuple[str, str]]  # (shape, method) -> (route id, hosts)


@dataclass
class InitMap:
    text: str
    count: int
    notices: list[str]  # what the map cannot hold as the app has it, for stderr


def render_map(endpoints: Sequence[inv.Endpoint], source: str) -> InitMap:
    """A version 1 map listing every legacy rule as legacy-owned, in the app's own rule order."""
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
    taken: _Taken = {}  # Flask serves the first rule of a path and method
    count = 0
    converters: dict[str, None] = {}
    by_host: list[str] = []
    for (name, path), group in rules.items():
        template, note, host = group[0].template, group[0].note, group[0].host
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
            elif first[1] != host:  # the app tells them apart by host, which a map cannot
                where = host or "the app's default host"
                lines.append(f"  # {name}: {m} {path} on {where} shares the entry {first[0]!r}: "
                             "the map routes by path only, not by host")
                by_host.append(name)
            else:  # the map would call this an overlap; Flask never reaches the later rule anyway
                lines.append(f"  # {name}: {m} {path} is already served by the rule of {first[0]!r}")
        if not kept:
            continue
        route_id = _route_id(name, used)
        taken.update({(shape, m): (route_id, host) for m in kept})
        if note:
            lines.append(f"  # {path}: {note}")
            if note.startswith("converter "):
                converters.update(dict.fromkeys(_CONVERTER_NOTE.findall(note)))
        if host:
            lines.append(f"  # {name}: the app serves {path} on {host} only; "
                         "this entry covers it on every host")
            by_host.append(name)
        lines.append(f"  - id: {_scalar(route_id)}")
        lines.append(f"    path: {_scalar(template.source)}")
        if kept != [inv.ANY_METHOD]:
            lines.append(f"    methods: [{', '.join(kept)}]")
        lines.append("    owner: legacy")
        count += 1
    if count == 0:
        lines[lines.index("routes:")] = "routes: []"
    notices = []
    if converters:
        names = ", ".join(repr(c) for c in converters)
        notices.append(
            f"converter {names} is not one the map knows (int, float, uuid, string, path): "
            "its parameters are written as plain string parameters, which match any one path "
            "segment; the legacy app still applies its own converter"
        )
    if by_host:
        notices.append(
            f"{len(dict.fromkeys(by_host))} rule(s) are limited to a subdomain or host "
            f"({', '.join(dict.fromkeys(by_host))}): the map routes by method and path only, so "
            "each entry covers its path on every host; keep those owner: legacy, or serve every "
            "host from the native route (see the comments in the map)"
        )
    return InitMap("\n".join(lines) + "\n", count, notices)


def _first_rule(taken: _Taken, shape: str, method: str) -> tuple[str, str] | None:
    for (s, m), first in taken.items():
        if s == shape and (m == method or inv.ANY_METHOD in (m, method)):
            return first
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


def register(command: Callable[[str, Handler, str], argparse.ArgumentParser]) -> None:
    map_help = MAP_HELP
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
