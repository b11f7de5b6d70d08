"""The rollout commands of `gateway`: promote, abort, retry and status per route, and the audit log.

They write the same store every gateway worker polls (`--store URL` or $GATEWAY_STORE_URL),
so a decision made here is followed by every worker and instance within a few seconds. An
action is recorded as `cli:<login name>` unless `--actor` names someone else. Exit 2: the
command cannot run (unknown route, store unreachable); exit 1: a retry of a route with no
run-time state, since there is nothing to retry.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gateway.cli_common import CliError, Handler, _map_path, _one_line, _settings
from gateway.db import DatabaseError
from gateway.map_loader import LoadedMap, load_map
from gateway.map_schema import RouteEntry
from gateway.parity.store import StoreError
from gateway.rollout.state import RolloutStore, RuntimeState
from gateway.rollout.store_status import find_entry, rollout_status, route_status, stale_status

STORE_HELP = "rollout state store URL (default: $GATEWAY_STORE_URL, else sqlite:///gateway_parity.db)"
MAP_HELP = "the migration map (default: $GATEWAY_MAP_PATH, else ./migration_map.yaml)"


@contextmanager
def open_store(url: str | None) -> Iterator[RolloutStore]:
    """The store, with its failures as one-line exit-2 errors."""
    try:
        store = RolloutStore(url or _settings().store_url)
    except StoreError as exc:
        raise CliError(f"{exc} (set --store or GATEWAY_STORE_URL)") from None
    try:
        yield store
    except DatabaseError as exc:
        reason = _one_line(exc)
        raise CliError(f"cannot use the rollout store at {store.where}: {reason}") from None
    finally:
        store.dispose()


def actor(args: argparse.Namespace) -> str:
    if args.actor:
        return str(args.actor)
    try:
        login = getpass.getuser()
    except Exception:  # no login name (a container's bare uid): still say who, as far as we can
        login = f"uid-{os.getuid()}"
    return f"cli:{login}"


def _entry(loaded: LoadedMap, route_id: str) -> RouteEntry:
    entry = find_entry(loaded, route_id)
    if entry is None:
        known = ", ".join(e.id for e in loaded.map.routes) or "none"
        raise CliError(f"no route {route_id!r} in {loaded.file} (its routes: {known})")
    return entry


def _decide(to: RuntimeState, says: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        loaded = load_map(_map_path(args, _settings()))
        entry = _entry(loaded, args.route)
        with open_store(args.store) as store:
            why, who, sha = args.reason or "", actor(args), loaded.sha256
            new = store.set_state(entry.id, to, reason=why, figures={}, actor=who, map_sha256=sha)
            where = store.where
        serving = route_status(loaded, entry, new)["serving"]
        print(f"{entry.id}: {says}; serving: {serving} (recorded as {new.actor} in {where})")
        print("every gateway worker follows within seconds (GATEWAY_STATE_POLL_INTERVAL)")
        return 0

    return handler


def cmd_retry(args: argparse.Namespace) -> int:
    loaded = load_map(_map_path(args, _settings()))
    entry = find_entry(loaded, args.route)
    with open_store(args.store) as store:
        if entry is None and store.state(args.route) is None:
            _entry(loaded, args.route)  # says the route is unknown
        cleared = store.clear(args.route, actor=actor(args), reason=args.reason or "")
    serving = route_status(loaded, entry, None)["serving"] if entry is not None else "nothing: not in the map"
    if not cleared:
        message = f"route {args.route!r} has no run-time state to retry: it follows the map"
        raise CliError(f"{message} (serving: {serving})", code=1)
    print(f"{args.route}: retried, it follows the map again; serving: {serving}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    loaded = load_map(_map_path(args, _settings()))
    with open_store(args.store) as store:
        if args.route:
            entry = find_entry(loaded, args.route)
            state = store.state(args.route)
            if entry is None and state is None:
                _entry(loaded, args.route)
            if entry is not None:
                status = route_status(loaded, entry, state)
            else:
                status = stale_status(args.route, state)
            audit = [e.as_json() for e in store.audit_entries(route_id=args.route, limit=args.limit)]
            data: dict[str, Any] = {**status, "audit": audit}
        else:
            data = rollout_status(loaded, store.states())
        _note_missing(store)
    if args.json:
        print(json.dumps(data, indent=2))
    elif args.route:
        print(_route_text(data))
    else:
        print(_table(data))
    return 0


def _note_missing(store: RolloutStore) -> None:
    if not store.exists():
        print(f"note: {store.where} does not exist yet: nothing was recorded there", file=sys.stderr)


def _route_text(status: dict[str, Any]) -> str:
    lines = [
        f"route:    {status['route_id']}" + ("" if status["in_map"] else " (not in the map)"),
        f"owner:    {status['owner'] or '-'} (map)"
        + (f", canary {status['canary_percent']:g} %" if status["canary_percent"] is not None else ""),
        f"state:    {status['state'] or 'none: it follows the map'}",
    ]
    if status["state"]:
        lines.append(f"          by {status['actor']} at {status['time']}" + _reason(status["reason"]))
        if status["figures"]:
            figures = ", ".join(f"{k}={v}" for k, v in status["figures"].items())
            lines.append(f"          figures: {figures}")
    lines.append(f"serving:  {status['serving'] or 'nothing (not in the map)'}")
    if status["audit"]:
        lines.append("audit:")
        lines += [f"  {e['time']}  {e['kind']:<10}  {e['summary']}" for e in status["audit"]]
    return "\n".join(lines)


def _reason(reason: str | None) -> str:
    return f": {reason}" if reason else ""


def _table(data: dict[str, Any]) -> str:
    rows = [["ROUTE", "OWNER", "CANARY", "STATE", "SERVING", "SINCE", "ACTOR", "REASON"]]
    for r in data["routes"]:
        canary = f"{r['canary_percent']:g} %" if r["canary_percent"] is not None else "-"
        rows.append(
            [
                r["route_id"],
                r["owner"] or "(not in map)",
                canary,
                r["state"] or "-",
                r["serving"] or "-",
                r["time"] or "-",
                r["actor"] or "-",
                r["reason"] or "",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append(f"\nmap {data['map']['file']} (sha256 {data['map']['sha256'][:12]})")
    return "\n".join(lines)


def cmd_audit(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        _note_missing(store)
        entries = store.audit_entries(route_id=args.route, limit=args.limit)
    if args.json:
        print(json.dumps({"entries": [e.as_json() for e in entries]}, indent=2))
        return 0
    if not entries:
        print("no audit entries" + (f" for route {args.route!r}" if args.route else ""))
    for e in entries:
        print(f"{e.as_json()['time']}  {e.kind.value:<10}  {e.actor:<16}  {e.summary}")
    return 0


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 10000, got {value}")
    return value


def register(command: Callable[[str, Handler, str], argparse.ArgumentParser]) -> None:
    """Add `rollout` and `audit`; `command(name, handler, help)` is gateway.cli's own helper."""
    p = command("rollout", cmd_status, "run-time rollout state per route: promote, abort, retry, status")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help, description=help)
        a.set_defaults(handler=handler)
        a.add_argument("--store", metavar="URL", help=STORE_HELP)
        a.add_argument("--map", help=MAP_HELP)
        return a

    changes = (
        ("promote", RuntimeState.PROMOTED, "promoted", "the new side serves all of ROUTE, canary or not"),
        ("abort", RuntimeState.ABORTED, "aborted", "legacy serves all of ROUTE until a retry"),
    )
    for name, to, says, help in changes:
        a = action(name, _decide(to, says), help)
        a.add_argument("route", metavar="ROUTE", help="route id in the map")
        a.add_argument("--reason", metavar="TEXT", help="why, for the audit log")
        a.add_argument("--actor", metavar="NAME", help="who, for the audit log (default: cli:<login name>)")

    a = action("retry", cmd_retry, "drop ROUTE's run-time state (rollback, abort): it follows the map again")
    a.add_argument("route", metavar="ROUTE", help="route id")
    a.add_argument("--reason", metavar="TEXT", help="why, for the audit log")
    a.add_argument("--actor", metavar="NAME", help="who, for the audit log (default: cli:<login name>)")

    a = action("status", cmd_status, "each route's map owner, canary, run-time state and who serves it")
    a.add_argument("route", nargs="?", metavar="ROUTE", help="one route, with its audit entries")
    a.add_argument("--limit", type=_limit, default=20, help="audit entries shown with ROUTE (default 20)")
    a.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("audit", cmd_audit, "who changed who serves what: map reloads, rollbacks, manual actions")
    p.add_argument("--route", metavar="ID", help="only this route's entries")
    p.add_argument("--limit", type=_limit, default=100, help="newest entries shown (default 100)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--store", metavar="URL", help=STORE_HELP)
