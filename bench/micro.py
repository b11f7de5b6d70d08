"""Micro-benchmarks (run by `make bench`, never by pytest): route lookup and the comparator.

`python -m bench.micro [--quick] [--json]`. Timings are the best of several repeats of a timed
loop (timeit's advice: the minimum is the figure least disturbed by other work on the machine).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import timeit
from typing import Any

from gateway.compare import compare, compile_rules
from gateway.exchange import Capture
from gateway.map_loader import LoadedMap, parse_map
from gateway.map_schema import MigrationMap, ShadowSettings, merge_shadow
from gateway.paths import parse_template
from gateway.table import UNMAPPED_ID, RoutingTable, build_table

SIZES = (100, 1_000, 10_000)
JSON_HEADERS = (("content-type", "application/json"),)


# -- route lookup ------------------------------------------------------------------------------

# path shapes: a static path; a typical REST path with one int parameter; a deeper one
SHAPES = {
    "static": ("/api/v1/resource{i}/items", "/api/v1/resource{i}/items"),
    "templated": ("/api/resource{i}/<int:item_id>", "/api/resource{i}/{n}"),
    "templated, deep": (
        "/api/v1/resource{i}/<int:item_id>/parts/<name>",
        "/api/v1/resource{i}/{n}/parts/p{n}",
    ),
}


def routes(entries: int, kind: str) -> list[dict[str, Any]]:
    template = SHAPES[kind][0]
    return [
        {
            "id": f"r{i}",
            "path": template.format(i=i),
            "methods": ["GET", "POST"],
            "owner": "new" if i % 2 else "legacy",
        }
        for i in range(entries)
    ]


def map_text(entries: int, kind: str) -> str:
    """The same map as YAML, as a file would hold it (to time what a reload costs)."""
    lines = ["version: 1", "defaults: {owner: legacy}", "routes:"]
    for r in routes(entries, kind):
        lines.append(f"  - {{id: {r['id']}, path: '{r['path']}', methods: [GET, POST], owner: {r['owner']}}}")
    return "\n".join(lines) + "\n"


def loaded_map(entries: int, kind: str) -> LoadedMap:
    """A map built in code (no YAML): what parse_map returns, without its line marks."""
    mmap = MigrationMap.model_validate(
        {"version": 1, "defaults": {"owner": "legacy"}, "routes": routes(entries, kind)}
    )
    templates = tuple(parse_template(entry.path) for entry in mmap.routes)
    return LoadedMap(mmap, "<bench>", "0" * 64, templates, (None,) * entries)


def concrete(i: int, kind: str) -> str:
    return SHAPES[kind][1].format(i=i, n=i * 7 + 1)


def bench_lookup(entries: int, kind: str, *, quick: bool) -> dict[str, Any]:
    parse_s = None
    if not (quick and entries > 1_000):
        started = time.perf_counter()
        parse_map(map_text(entries, kind))
        parse_s = time.perf_counter() - started
    loaded = loaded_map(entries, kind)
    started = time.perf_counter()
    table = build_table(loaded)
    build_s = time.perf_counter() - started
    rng = random.Random(entries)
    picks = [rng.randrange(entries) for _ in range(1000)]
    paths = [concrete(i, kind) for i in picks]
    for i, path in zip(
        picks, paths, strict=True
    ):  # the table must route exactly, or the timing means nothing
        assert table.lookup("GET", path).id == f"r{i}", path
    return {
        "entries": entries,
        "kind": kind,
        "us_per_lookup": _us_per_call(table, paths, quick=quick),
        "build_s": build_s,
        "parse_s": parse_s,
    }


def bench_miss(entries: int, *, quick: bool) -> dict[str, Any]:
    """Unmapped paths under a templated table: the walk fails and the default route answers."""
    table = build_table(loaded_map(entries, "templated"))
    paths = [f"/api/resource{i}/not-an-int" for i in range(0, entries, max(1, entries // 1000))]
    assert table.lookup("GET", paths[0]).id == UNMAPPED_ID
    return {
        "entries": entries,
        "kind": "templated, unmapped",
        "us_per_lookup": _us_per_call(table, paths, quick=quick),
        "build_s": None,
        "parse_s": None,
    }


def _us_per_call(table: RoutingTable, paths: list[str], *, quick: bool) -> float:
    # find: the walk a path costs the first time; lookup() then answers it from a cache
    lookup = table.find

    def loop() -> None:
        for path in paths:
            lookup("GET", path)

    number = 20 if quick else 100
    best = min(timeit.repeat(loop, number=number, repeat=3 if quick else 7))
    return best / (number * len(paths)) * 1e6


# -- comparator --------------------------------------------------------------------------------


def document(target_bytes: int) -> dict[str, Any]:
    """A list page shaped like the demo's, grown to about `target_bytes` of JSON."""
    items: list[dict[str, Any]] = []
    doc: dict[str, Any] = {"items": items, "page": 1, "per_page": 0, "total": 0, "pages": 1}
    size = 60
    i = 0
    while size < target_bytes:
        i += 1
        item = {
            "id": i,
            "sku": f"SKU-{i:06d}",
            "name": f"Product number {i}",
            "description": "A sturdy thing, with a longer description than most. " * 2,
            "category": ("books", "garden", "home", "toys")[i % 4],
            "price": round(3.5 + i * 0.37, 2),
            "stock": i % 17,
            "is_active": i % 5 != 0,
            "tags": ["a", "b", f"t{i % 9}"],
            "dimensions": {"w": i % 30, "h": i % 11, "d": 2.5},
            "updated_at": f"2024-01-{i % 28 + 1:02d}T10:00:00",
        }
        items.append(item)
        size += len(json.dumps(item)) + 1
    doc["per_page"] = doc["total"] = len(items)
    return doc


def compare_cases(target_bytes: int) -> list[tuple[str, Capture, Capture, Any, int]]:
    """(case, owner, candidate, rules, differences a correct comparator finds)."""
    doc = document(target_bytes)
    owner_bytes = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    owner = Capture(200, JSON_HEADERS, owner_bytes)
    plain = compile_rules(merge_shadow(ShadowSettings(), None))
    ignoring = compile_rules(
        merge_shadow(ShadowSettings(), ShadowSettings(ignore=("body.items[].updated_at",)))
    )
    reordered = Capture(200, JSON_HEADERS, json.dumps(doc, indent=1).encode())  # other key order and spacing
    changed = json.loads(owner_bytes)
    for item in changed["items"]:
        item["updated_at"] = "2025-06-01T00:00:00"  # differs everywhere, ignored by the rule
    changed["items"][0]["price"] = -1.0
    changed["items"][-1]["tags"].append("extra")
    changed["total"] = "many"
    differing = Capture(200, JSON_HEADERS, json.dumps(changed).encode())
    return [
        ("identical bytes", owner, Capture(200, JSON_HEADERS, owner_bytes), plain, 0),
        ("same JSON, other key order and spacing", owner, reordered, plain, 0),
        ("3 differences + 1 ignored field differing in every item", owner, differing, ignoring, 3),
    ]


def bench_compare(target_bytes: int, label: str, *, quick: bool) -> list[dict[str, Any]]:
    rows = []
    for case, owner, candidate, rules, expected in compare_cases(target_bytes):
        diffs = compare(owner, candidate, rules)
        small = target_bytes < 100_000
        number = (50 if quick else 200) if small else (3 if quick else 10)
        best = min(
            timeit.repeat(
                lambda o=owner, c=candidate, r=rules: compare(o, c, r),
                number=number,
                repeat=3 if quick else 5,
            )
        )
        rows.append(
            {
                "size": f"{label} ({len(owner.body):,} B)",
                "case": case,
                "ms_per_compare": best / number * 1000,
                "differences": len(diffs),
                "expected": expected,
                "found": [f"{d.path} {d.kind.value}" for d in diffs],
            }
        )
    return rows


def run(quick: bool) -> dict[str, Any]:
    lookup = []
    for kind in SHAPES:
        for entries in SIZES:
            lookup.append(bench_lookup(entries, kind, quick=quick))
            _progress(lookup[-1])
    lookup.append(bench_miss(10_000, quick=quick))
    _progress(lookup[-1])
    comparisons = bench_compare(10_000, "10 KB", quick=quick) + bench_compare(1_000_000, "1 MB", quick=quick)
    for row in comparisons:
        print(
            f"  compare {row['size']:<20} {row['case']:<56} {row['ms_per_compare']:8.3f} ms", file=sys.stderr
        )
    return {"lookup": lookup, "compare": comparisons}


def _progress(row: dict[str, Any]) -> None:
    parse = "" if row["parse_s"] is None else f", YAML map parsed in {row['parse_s']:.2f} s"
    build = "" if row["build_s"] is None else f" (table built in {row['build_s']:.2f} s{parse})"
    print(
        f"  lookup {row['entries']:>6,} {row['kind']:<20} {row['us_per_lookup']:6.2f} µs{build}",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args(argv)
    results = run(args.quick)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
