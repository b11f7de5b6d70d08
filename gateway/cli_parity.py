"""The parity commands of `gateway`: reports, the cut-over gate, regression-test export.

`gateway parity` reads the parity store; `gateway cutover-check` judges routes against their
map `cutover` thresholds and exits 1 when a named route is not ready (no data is not ready);
`gateway check-map --against-store` refuses a map whose `owner: new` routes are not ready.
The store is `--store URL` or $GATEWAY_STORE_URL; one that cannot be read exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.cli_common import CliError, Handler, _map_path, _settings
from gateway.db import Database
from gateway.map_loader import LoadedMap, Problem, load_map
from gateway.map_schema import Owner
from gateway.parity import export, report, views
from gateway.parity.cutover import CutoverVerdict, verdict
from gateway.parity.render import overview_text, route_text, verdict_line
from gateway.parity.store import StoreError

STORE_HELP = "parity store URL (default: $GATEWAY_STORE_URL, else sqlite:///gateway_parity.db)"
MAP_HELP = "the migration map (default: $GATEWAY_MAP_PATH, else ./migration_map.yaml)"


def open_store(url: str | None) -> Database:
    try:
        return report.open_store(url or _settings().store_url)
    except StoreError as exc:
        raise CliError(f"{exc} (set --store or GATEWAY_STORE_URL)") from None


def _optional_map(args: argparse.Namespace) -> LoadedMap | None:
    """The map, for owners and thresholds in a report; a report does not need one."""
    path = _map_path(args, _settings())
    return load_map(path) if args.map or path.exists() else None


def cmd_parity(args: argparse.Namespace) -> int:
    db = open_store(args.store)
    loaded = _optional_map(args)
    if args.route:
        detail = views.route_detail(db, args.route, loaded, limit=args.limit)
        if not (detail["samples"] or detail["skipped"] or detail["noise_runs"]):
            raise CliError(f"the parity store has no data for route {args.route!r}", code=1)
        print(json.dumps(detail, indent=2) if args.json else route_text(detail, width=_width()))
        return 0
    data = views.overview(db, loaded)
    print(json.dumps(data, indent=2) if args.json else overview_text(data))
    return 0


def _width() -> int:
    try:
        return max(80, os.get_terminal_size().columns)
    except OSError:
        return 120


def verdicts(loaded: LoadedMap, db: Database, route_ids: list[str]) -> list[CutoverVerdict]:
    entries = {e.id: e for e in loaded.map.routes}
    summaries = report.summaries(db, route_ids)
    return [verdict(summaries[r], loaded.map.cutover_of(entries[r])) for r in route_ids]


def cmd_cutover_check(args: argparse.Namespace) -> int:
    loaded = load_map(_map_path(args, _settings()))
    known = [e.id for e in loaded.map.routes]
    unknown = [r for r in args.routes if r not in known]
    if unknown:
        names = ", ".join(repr(r) for r in unknown)
        raise CliError(f"no route {names} in {loaded.file} (its routes: {', '.join(known) or 'none'})")
    found = verdicts(loaded, open_store(args.store), list(dict.fromkeys(args.routes)) or known)
    if args.json:
        print(json.dumps({"map": loaded.file, "routes": [v.as_json() for v in found]}, indent=2))
    else:
        for v in found:
            print(verdict_line(v))
    # with no ROUTE named this is a report; named routes are a gate
    return 1 if args.routes and not all(v.ready for v in found) else 0


def store_problems(loaded: LoadedMap, store_url: str | None) -> list[Problem]:
    """`check-map --against-store`: every `owner: new` route must be ready for cut-over."""
    entries = [
        (e, line)
        for e, line in zip(loaded.map.routes, loaded.lines, strict=True)
        if loaded.map.owner_of(e) is Owner.NEW
    ]
    if not entries:
        return []
    found = verdicts(loaded, open_store(store_url), [e.id for e, _ in entries])
    return [
        Problem(
            loaded.file,
            line,
            f"route {v.route_id!r} is owner: new but not ready for cut-over: {'; '.join(v.reasons)} "
            f"(see `gateway cutover-check {v.route_id}`)",
        )
        for (_, line), v in zip(entries, found, strict=True)
        if not v.ready
    ]


def cmd_export_test(args: argparse.Namespace) -> int:
    settings = _settings()
    loaded = load_map(_map_path(args, settings))
    entry = next((e for e in loaded.map.routes if e.id == args.route), None)
    if entry is None:
        raise CliError(f"no route {args.route!r} in {loaded.file}")
    out = Path(args.output) if args.output else None
    if out is not None and out.exists() and not args.force:
        raise CliError(f"{out} already exists; not overwriting it (use --force to replace it)", code=1)
    db = open_store(args.store)
    summary = report.summaries(db, [entry.id])[entry.id]
    real = [g.signature for g in summary.signatures if g.real]
    stored = report.samples(db, entry.id, signatures=real, limit=10_000) if real else []
    written = export.render(
        route_id=entry.id,
        rules=loaded.map.shadow_of(entry),
        noise=[(f.path, f.kind) for f in summary.fields if not f.real],
        samples=stored,
        legacy_app=settings.legacy_app,
        legacy_url=settings.legacy_url,
        native_app=settings.native_app,
    )
    for line in written.left_out:
        print(f"left out: {line}", file=sys.stderr)
    if written.cases == 0:
        message = f"route {entry.id!r} has no stored mismatch that can be replayed: nothing to export"
        raise CliError(message, code=1)
    if out is None:
        sys.stdout.write(written.text)
        return 0
    try:
        out.write_text(written.text)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror}", code=1) from None
    print(f"wrote {out}: {written.cases} cases for route {entry.id}", file=sys.stderr)
    return 0


def register(command: Callable[[str, Handler, str], argparse.ArgumentParser]) -> None:
    """Add the parity commands; `command(name, handler, help)` is gateway.cli's own helper."""
    p = command("parity", cmd_parity, "parity per route from the shadow store: match rate, fields, latency")
    p.add_argument("--route", metavar="ID", help="one route: field verdicts and sample diffs side by side")
    p.add_argument("--limit", type=int, default=10, help="samples shown with --route (default 10)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--store", metavar="URL", help=STORE_HELP)
    p.add_argument("--map", help=MAP_HELP + "; read for owners and cut-over verdicts when present")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    e = actions.add_parser(
        "export-test", help="write a pytest file replaying the route's stored mismatches against both apps"
    )
    e.set_defaults(handler=cmd_export_test)
    # the same names as on `parity`: argparse lets the sub-command's values win
    e.add_argument("--route", metavar="ID", required=True)
    e.add_argument("--output", "-o", metavar="PATH", help="file to write (default: standard output)")
    e.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    e.add_argument("--store", metavar="URL", help=STORE_HELP)
    e.add_argument("--map", help=MAP_HELP)

    p = command("cutover-check", cmd_cutover_check, "may these routes move to owner: new? exit 1 if not")
    p.add_argument("routes", nargs="*", metavar="ROUTE", help="route ids (default: every route, as a report)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--store", metavar="URL", help=STORE_HELP)
    p.add_argument("--map", help=MAP_HELP)
