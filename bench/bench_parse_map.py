"""How long `parse_map` takes on generated maps of 1,000 and 10,000 entries (never run by pytest).

`python -m bench.bench_parse_map [--repeats N] [--sizes 1000,10000]`. Times are CPU seconds of
this process (`time.process_time`), the best of N runs: on a shared machine the figure least
disturbed by other work. Two styles of map (see `generated_map`), and these columns:

- `pure-Python YAML`: parse_map with PyYAML's own scanner and parser, the fallback when PyYAML
  has no libyaml (run from a tree before issue 11: the parse_map of that tree, which composed
  PyYAML's node tree in pure Python whatever PyYAML had);
- `libyaml`: parse_map as it runs, every path parsed anew (a first load); `of which YAML` is
  the part spent reading YAML (`gateway.map_text.compose`), `validate` the rest (pydantic,
  paths, overlaps, shadow rules);
- `reload`: parse_map of the same map with one entry edited, right after the first parse,
  as the reloader does it: the paths parsed before are reused;
- `build_table`: the routing table a reload then builds, for comparison.

To time an older tree, copy this file into its bench/ and run it there the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench import micro
from gateway import map_loader
from gateway.map_loader import parse_map
from gateway.table import build_table

# None in a tree from before issue 11, whose loader composed PyYAML's node tree itself
map_text = getattr(map_loader, "map_text", None)

SIZES = (1_000, 10_000)


def generated_map(entries: int, style: str = "block") -> str:
    """A map as engineers write them (`block`): a mix of templated and static paths, a quarter
    of the routes shadowed with their own rules, a quarter on a canary. `flow`: the one-line
    entries of bench/micro.py, every path templated, nothing but id, path, methods, owner."""
    if style == "flow":
        return micro.map_text(entries, "templated")
    lines = [
        "version: 1",
        "defaults:",
        "  owner: legacy",
        "  shadow: {sample: 0.0, ignore: [headers.date]}",
        "routes:",
    ]
    for i in range(entries):
        kind = i % 4
        lines.append(f"  - id: resource{i}.{'create' if kind == 3 else 'get'}")
        if kind == 0:
            lines.append(f"    path: /api/v1/resource{i}/items")
        else:
            lines.append(f"    path: /api/v1/resource{i}/<int:item_id>")
        lines.append("    methods: [POST]" if kind == 3 else "    methods: [GET, HEAD]")
        lines.append(f"    owner: {'new' if i % 2 else 'legacy'}")
        if kind == 1:
            lines.append("    shadow: {sample: 0.25, ignore: [body.updated_at], redact: [card_number]}")
        elif kind == 2:
            lines.append("    canary: {percent: 10, sticky: ['header:X-User-Id']}")
    return "\n".join(lines) + "\n"


def cold() -> None:
    """Forget the parsed paths a reload reuses, so a run parses every path as a first load does."""
    cache = getattr(map_loader, "_template", None)
    if cache is not None:
        cache.cache_clear()


def best(run: Callable[[], Any], repeats: int, before: Callable[[], object] = cold) -> float:
    times = []
    for _ in range(repeats):
        before()
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
    return min(times)


def without_gc(run: Callable[[str], Any], text: str) -> Any:
    # as parse_map runs its parts: with the cyclic collector paused
    gc.disable()
    try:
        return run(text)
    finally:
        gc.enable()


@contextlib.contextmanager
def pure_python_yaml() -> Iterator[None]:
    assert map_text is not None
    saved = map_text.LIBYAML
    map_text.LIBYAML = False
    try:
        yield
    finally:
        map_text.LIBYAML = saved


def measure(entries: int, style: str, repeats: int) -> dict[str, Any]:
    text = generated_map(entries, style)
    row: dict[str, Any] = {"entries": entries, "style": style, "kb": len(text.encode()) / 1024}
    parse = lambda: parse_map(text, "bench.yaml")  # noqa: E731
    if map_text is None:
        row["pure"] = best(parse, max(1, repeats // 3) if entries >= 10_000 else repeats)
        row["libyaml"] = row["yaml"] = row["reload"] = None
    else:
        with pure_python_yaml():
            row["pure"] = best(parse, max(1, repeats // 3) if entries >= 10_000 else repeats)
        if map_text.LIBYAML:
            row["libyaml"] = best(parse, repeats)
            row["yaml"] = best(lambda: without_gc(map_text.compose, text), repeats)
            # a reload after an edit: the paths of the map before it were parsed already
            edited = text.replace("owner: new", "owner: legacy", 1)
            row["reload"] = best(lambda: parse_map(edited, "bench.yaml"), repeats, before=parse)
        else:
            row["libyaml"] = row["yaml"] = row["reload"] = None
    loaded = parse_map(text, "bench.yaml")
    row["table"] = best(lambda: build_table(loaded), repeats)
    return row


def render(rows: list[dict[str, Any]]) -> str:
    def s(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} s"

    head = ["entries", "style", "map", "pure-Python YAML", "libyaml", "of which YAML", "validate", "reload"]
    head.append("build_table")
    lines = [head]
    for r in rows:
        fast, yaml_part = r["libyaml"], r["yaml"]
        rest = None if fast is None or yaml_part is None else max(0.0, fast - yaml_part)
        size = [f"{r['entries']:,.0f}", r["style"], f"{r['kb']:,.0f} KB"]
        lines.append([*size, s(r["pure"]), s(fast), s(yaml_part), s(rest), s(r["reload"]), s(r["table"])])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines)


TARGET_S = 0.5  # issue 11: a 10,000-entry map parses in under half a second


def main(argv: list[str] | None = None) -> int:
    about = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.bench_parse_map", description=about)
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure, the best is kept")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="entries per map, comma-separated")
    parser.add_argument("--json", action="store_true", help="one JSON object, for bench/extras.py")
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else max(1, args.repeats)
    sizes = [int(n) for n in args.sizes.split(",")]
    rows = [measure(n, style, repeats) for n in sizes for style in ("block", "flow")]
    head = (f"parse_map, CPU seconds, best of {repeats} (pure-Python YAML at 10,000: best of "
            f"{max(1, repeats // 3)}); Python {sys.version.split()[0]}")
    if not args.json:
        print(head)
        print(render(rows))
        return 0
    ratios = [
        {"name": f"parse_map, {r['entries']:,} entries ({r['style']} style), first load", "workload": "micro",
         "value": r["libyaml"], "op": "<=", "target": TARGET_S, "unit": " s"}
        for r in rows if r["entries"] == 10_000 and r["libyaml"] is not None
    ]
    markdown = f"{head}; `python -m bench.bench_parse_map`.\n\n```\n{render(rows)}\n```"
    print(json.dumps({"title": "Map parsing (parse_map)", "ratios": ratios, "markdown": markdown}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
