"""`gateway demo-traffic`: drive a running demo gateway so its metrics and dashboard show something.

The progress bar goes to stderr, and only on a terminal outside CI (a log gets one final line
instead); the summary (requests per route and status class, errors, req/s) goes to stdout, as a
table or, with --json, as JSON. A gateway that does not answer at all is one error line, exit 2;
exit 1 when any request failed in transport or got a 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from gateway.cli_common import MAP_HELP, CliError, Handler, _map_path, _settings
from gateway.demo_traffic import STATUS_CLASSES, Mix, Summary, Unreachable, drive
from gateway.map_loader import load_map

DEFAULT_URL = "http://127.0.0.1:8000"


def _interactive() -> bool:
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in {"1", "true", "yes"}


def cmd_demo_traffic(args: argparse.Namespace) -> int:
    mix = Mix(load_map(_map_path(args, _settings())))
    for route in mix.not_exercised:
        print(f"gateway demo-traffic: no demo request for route {route}: it gets no traffic", file=sys.stderr)
    url = args.url.rstrip("/")
    options: dict[str, Any] = {
        "url": url,
        "mix": mix,
        "requests": None if args.duration is not None else args.requests,
        "duration": args.duration,
        "concurrency": args.concurrency,
        "seed": args.seed,
    }
    try:
        summary = _with_bar(options) if _interactive() else asyncio.run(drive(**options))
    except Unreachable as exc:
        raise CliError(f"{exc} (is it running? `make run`, or give --url)") from None
    for note in summary.notes:
        print(f"gateway demo-traffic: warning: {note}", file=sys.stderr)
    failed = summary.total("error") + summary.total("5xx")
    print(_final_line(summary), file=sys.stderr)
    if args.json:
        print(json.dumps(summary.as_json(), indent=2))
    else:
        Console().print(_table(summary, mix.route_ids))
    return 1 if failed else 0


def _with_bar(options: dict[str, Any]) -> Summary:
    duration: float | None = options["duration"]
    total = duration if duration is not None else options["requests"] + 2  # the two logins
    console = Console(stderr=True)
    count = () if duration is not None else (MofNCompleteColumn(),)
    columns = (TextColumn("demo traffic"), BarColumn(), *count, TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("demo traffic", total=total)
        return asyncio.run(drive(**options, on_answer=_advance(progress, task, duration)))


def _advance(progress: Progress, task: TaskID, duration: float | None) -> Callable[[Summary], None]:
    def on_answer(summary: Summary) -> None:
        done = min(summary.elapsed, duration) if duration is not None else summary.total()
        progress.update(task, completed=done)

    return on_answer


def _final_line(summary: Summary) -> str:
    data = summary.as_json()
    by_class = data["by_class"]
    return (
        f"demo-traffic: {data['requests']} requests to {summary.url} in {data['elapsed_s']:.1f} s "
        f"({data['requests_per_s']} req/s): " + ", ".join(f"{by_class[k]} {k}" for k in STATUS_CLASSES)
    )


def _table(summary: Summary, route_ids: list[str]) -> Table:
    data = summary.as_json()
    rate = data["requests_per_s"]
    table = Table(title=f"demo traffic: {summary.url}", caption=f"{data['elapsed_s']:.1f} s, {rate} req/s")
    table.add_column("route")
    for name in ("requests", "2xx", "3xx", "4xx", "5xx", "errors"):
        table.add_column(name, justify="right")
    order = {route: i for i, route in enumerate(route_ids)}
    routes: dict[str, dict[str, int]] = data["routes"]
    for route in sorted(routes, key=lambda r: (order.get(r, len(order)), r)):
        counts = routes[route]
        table.add_row(route, *(str(counts[k]) for k in ("requests", *STATUS_CLASSES)))
    totals = [str(data["requests"]), *(str(data["by_class"][k]) for k in STATUS_CLASSES)]
    table.add_section()
    table.add_row("total", *totals)
    for error in summary.errors:
        table.add_row(f"[red]error[/red] {error}", *([""] * 6))
    return table


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def register(command: Callable[[str, Handler, str], argparse.ArgumentParser]) -> None:
    """Add `demo-traffic`; `command(name, handler, help)` is gateway.cli's own helper."""
    p = command(
        "demo-traffic",
        cmd_demo_traffic,
        "send a realistic mix of requests to a running demo gateway (every mapped route, some legacy pages)",
    )
    p.add_argument("--url", default=DEFAULT_URL, help=f"the gateway (default {DEFAULT_URL})")
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("--requests", type=_positive, default=500, metavar="N",
                        help="requests to send (default 500), plus one login per demo account")
    amount.add_argument("--duration", type=_seconds, metavar="S", help="send for S seconds instead")
    p.add_argument("--concurrency", type=_positive, default=8, help="requests in flight (default 8)")
    p.add_argument("--seed", type=int, help="draw the same mix again (default: a new one each run)")
    p.add_argument("--map", help=MAP_HELP + "; which routes to cover")
    p.add_argument("--json", action="store_true", help="the summary as JSON")
