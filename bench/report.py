"""From a results dict to ratios, PASS/MISS marks and bench/RESULTS.md (pure, unit-tested)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

# configurations, in the order the tables list them
CONFIGS: dict[str, str] = {
    "bare_fastapi": "bare FastAPI app (features + bench routes), uvicorn",
    "gunicorn": "bare Flask app (legacy_flask + bench routes), gunicorn sync, 1 worker",
    "a2wsgi_mount": "plain a2wsgi mount: FastAPI + a2wsgi.WSGIMiddleware(flask), uvicorn",
    "gw_native": "gateway, native-owned route",
    "gw_serve": "gateway started by `gateway serve` (its defaults: uvicorn access log on), native route",
    "gw_legacy": "gateway, legacy-owned route (shadow off)",
    "gw_shadow25": "gateway, legacy-owned route, shadow 25 % (native candidate)",
    "gw_shadow100": "gateway, legacy-owned route, shadow 100 % (native candidate)",
    "gw_shadow25_proc": "gateway, legacy-owned route, shadow 25 %, candidates in a shadow process "
    "(GATEWAY_SHADOW_PROCESSES=1)",
    "gw_shadow100_proc": "gateway, legacy-owned route, shadow 100 %, candidates in a shadow process "
    "(GATEWAY_SHADOW_PROCESSES=1)",
    "gw_canary": "gateway, legacy-owned route, canary 50 % (random bucket)",
    "gw_remote": "gateway, remote mode (GATEWAY_LEGACY_URL = the gunicorn above)",
    "naive_proxy": "naive proxy: FastAPI + one httpx.AsyncClient to the gunicorn above",
    "gunicorn_ka": "keep-alive upstream: bare Flask app, gunicorn gthread (1 worker, 4 threads), "
    "on the load core beside wrk",
    "gw_remote_ka": "gateway, remote mode to the keep-alive upstream above (gateway on its own core)",
    "naive_proxy_ka": "naive proxy to the keep-alive upstream above (on its own core)",
    "gunicorn_ka_own": "the keep-alive upstream above, wrk on the other core (the upstream's core to itself)",
    "gw_remote_ka_own": "gateway, remote mode to the keep-alive upstream, wrk beside the gateway "
    "(the upstream's core to itself)",
    "gunicorn_2w": "gunicorn sync, 2 workers, both cores (wrk shares the second)",
    "gw_serve_legacy": "`gateway serve`, 1 worker, legacy-owned route",
    "gw_serve2_legacy": "`gateway serve --workers 2`, both cores, legacy-owned route",
    "bare_fastapi_2w": "bare FastAPI app, uvicorn --workers 2, both cores",
    "gw_serve2_native": "`gateway serve --workers 2`, both cores, native-owned route",
}
WORKLOADS: dict[str, str] = {
    "get": "GET small JSON (no DB)",
    "post": "POST 1 KB JSON (echo)",
    "get_db": "GET /api/users/<id> (SQLite read)",
}


@dataclass(frozen=True)
class RatioSpec:
    name: str
    metric: str  # "rps" or "p99_ms"
    numerator: str
    denominator: str
    op: str | None  # ">=", "<=", or None for a reference figure without target
    target: float | None
    workloads: tuple[str, ...]


RATIOS: tuple[RatioSpec, ...] = (
    RatioSpec(
        "native via gateway / bare FastAPI",
        "rps",
        "gw_native",
        "bare_fastapi",
        ">=",
        0.97,
        ("get", "post", "get_db"),
    ),
    RatioSpec(
        "legacy via gateway / gunicorn Flask",
        "rps",
        "gw_legacy",
        "gunicorn",
        ">=",
        0.95,
        ("get", "post", "get_db"),
    ),
    RatioSpec(
        "plain a2wsgi mount / gunicorn Flask (reference)",
        "rps",
        "a2wsgi_mount",
        "gunicorn",
        None,
        None,
        ("get", "post", "get_db"),
    ),
    RatioSpec(
        "legacy via gateway / plain a2wsgi mount",
        "rps",
        "gw_legacy",
        "a2wsgi_mount",
        ">=",
        1.0,
        ("get", "post", "get_db"),
    ),
    RatioSpec(
        "`gateway serve` defaults / gateway under the common uvicorn flags (reference)",
        "rps",
        "gw_serve",
        "gw_native",
        None,
        None,
        ("get",),
    ),
    RatioSpec(
        "shadow 25 % primary p99 / shadow off p99", "p99_ms", "gw_shadow25", "gw_legacy", "<=", 1.10, ("get",)
    ),
    RatioSpec(
        "shadow 100 % throughput / shadow off", "rps", "gw_shadow100", "gw_legacy", ">=", 0.45, ("get",)
    ),
    RatioSpec(
        "shadow 25 % primary p99 / shadow off p99, GATEWAY_SHADOW_PROCESSES=1",
        "p99_ms",
        "gw_shadow25_proc",
        "gw_legacy",
        "<=",
        1.10,
        ("get",),
    ),
    RatioSpec(
        "shadow 100 % throughput / shadow off, GATEWAY_SHADOW_PROCESSES=1",
        "rps",
        "gw_shadow100_proc",
        "gw_legacy",
        ">=",
        0.45,
        ("get",),
    ),
    RatioSpec(
        "remote mode / naive httpx proxy",
        "rps",
        "gw_remote",
        "naive_proxy",
        ">=",
        5.0,
        ("get", "post", "get_db"),
    ),
    RatioSpec(
        "remote mode / the keep-alive upstream direct",
        "rps",
        "gw_remote_ka",
        "gunicorn_ka",
        ">=",
        0.90,
        ("get", "post"),
    ),
    RatioSpec(
        "remote mode / the keep-alive upstream direct, the upstream on a core of its own",
        "rps",
        "gw_remote_ka_own",
        "gunicorn_ka_own",
        ">=",
        0.90,
        ("get", "post"),
    ),
    RatioSpec(
        "remote mode / naive httpx proxy, keep-alive upstream (reference)",
        "rps",
        "gw_remote_ka",
        "naive_proxy_ka",
        None,
        None,
        ("get", "post"),
    ),
    RatioSpec(
        "legacy, 2 workers: `gateway serve --workers 2` / gunicorn -w 2 (reference)",
        "rps",
        "gw_serve2_legacy",
        "gunicorn_2w",
        None,
        None,
        ("get",),
    ),
    RatioSpec(
        "legacy: `gateway serve` 2 workers / 1 worker (reference)",
        "rps",
        "gw_serve2_legacy",
        "gw_serve_legacy",
        None,
        None,
        ("get",),
    ),
    RatioSpec(
        "native, 2 workers: `gateway serve --workers 2` / uvicorn --workers 2 (reference)",
        "rps",
        "gw_serve2_native",
        "bare_fastapi_2w",
        None,
        None,
        ("get",),
    ),
    RatioSpec(
        "native: `gateway serve` 2 workers / 1 worker (reference)",
        "rps",
        "gw_serve2_native",
        "gw_serve",
        None,
        None,
        ("get",),
    ),
)
LOOKUP_TARGET_US = 2.0
RSS_GROWTH_TARGET = 1.10
SOAK_MIN_SHADOWED = 200_000
NOISY_CV = 0.10  # repeats whose req/s vary more than this (stdev / mean) are flagged


def key(config: str, workload: str) -> str:
    return f"{config}/{workload}"


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median req/s, p50 and p99 over the repeats; errors summed; spread of req/s."""
    if not runs:
        return {"rps": None, "p50_ms": None, "p99_ms": None, "errors": 0, "cv": None}
    rps = [r["requests_per_s"] for r in runs]
    mean = statistics.fmean(rps)
    # CPU the configuration's processes used per request: unlike req/s, barely moved by
    # other work competing for the cores, so it cross-checks ratios on a busy machine
    cpu = [
        r["server_cores"] / r["requests_per_s"] * 1e6
        for r in runs
        if r.get("server_cores") and r["requests_per_s"]
    ]
    return {
        "rps": statistics.median(rps),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "errors": sum(int(r.get("errors", 0)) for r in runs),
        "cv": statistics.pstdev(rps) / mean if len(rps) > 1 and mean > 0 else 0.0,
        "cpu_us": statistics.median(cpu) if cpu else None,
    }


def paired(num: list[dict[str, Any]], den: list[dict[str, Any]], metric: str) -> float | None:
    """The median of the ratios taken round by round (the two runs of a round ran back to back)."""
    field = "requests_per_s" if metric == "rps" else metric
    by_round = {r.get("round", i): r for i, r in enumerate(den)}
    values = [
        r[field] / by_round[k][field]
        for i, r in enumerate(num)
        if (k := r.get("round", i)) in by_round and by_round[k][field]
    ]
    return statistics.median(values) if values else None


def mark(value: float | None, op: str | None, target: float | None) -> str:
    if value is None:
        return "N/A"
    if op is None or target is None:
        return "REF"
    ok = value >= target if op == ">=" else value <= target
    return "PASS" if ok else "MISS"


def ratios(measurements: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every defined ratio whose two measurements exist; a side with errors marks it ERRORS."""
    out: list[dict[str, Any]] = []
    for spec in RATIOS:
        for workload in spec.workloads:
            num = measurements.get(key(spec.numerator, workload))
            den = measurements.get(key(spec.denominator, workload))
            row: dict[str, Any] = {
                "name": spec.name,
                "workload": workload,
                "metric": spec.metric,
                "numerator": spec.numerator,
                "denominator": spec.denominator,
                "op": spec.op,
                "target": spec.target,
                "value": None,
                "cpu_value": None,
                "paired": None,
            }
            if num is None or den is None:
                row["mark"] = "N/A"
                out.append(row)
                continue
            a, b = num["summary"].get(spec.metric), den["summary"].get(spec.metric)
            row["value"] = a / b if a is not None and b else None
            row["paired"] = paired(num["runs"], den["runs"], spec.metric)
            if spec.metric == "rps":  # the same ratio from CPU per request (inverted: less CPU, more req/s)
                ca, cb = num["summary"].get("cpu_us"), den["summary"].get("cpu_us")
                row["cpu_value"] = cb / ca if ca and cb else None
            row["mark"] = mark(row["value"], spec.op, spec.target)
            if num["summary"]["errors"] or den["summary"]["errors"]:
                row["mark"] = "ERRORS"
            out.append(row)
    return out


def micro_marks(micro: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for row in micro.get("lookup", []):
        if row["entries"] == 10_000:
            rows.append(
                {
                    "name": f"lookup at 10,000 entries ({row['kind']})",
                    "value": row["us_per_lookup"],
                    "target": f"<= {LOOKUP_TARGET_US:g} µs",
                    "mark": mark(row["us_per_lookup"], "<=", LOOKUP_TARGET_US),
                }
            )
    return rows


def extra_ratios(extras: dict[str, Any]) -> list[dict[str, Any]]:
    """The ratios of bench/extras.py's benchmarks, marked; one N/A row for a benchmark that failed."""
    rows: list[dict[str, Any]] = []
    for name, result in extras.items():
        if "error" in result:
            rows.append({"name": f"{name}: {result['error']}", "workload": "—", "value": None, "op": None,
                         "target": None, "unit": "", "mark": "N/A"})
            continue
        for r in result.get("ratios", []):
            value, op, target = r.get("value"), r.get("op"), r.get("target")
            rows.append({"name": r["name"], "workload": r.get("workload", "—"), "value": value, "op": op,
                         "target": target, "unit": r.get("unit", ""), "mark": mark(value, op, target)})
    return rows


def soak_mark(soak: dict[str, Any]) -> str:
    if not soak or soak.get("rss_growth") is None:
        return "N/A"
    if soak.get("shadowed", 0) < SOAK_MIN_SHADOWED:
        return "MISS (too few shadowed)"
    return mark(soak["rss_growth"], "<=", RSS_GROWTH_TARGET)


def _f(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "—" if value is None else fmt.format(value)


def _target(op: str | None, target: float | None) -> str:
    return "—" if op is None or target is None else f"{op} {target:g}"


def render(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    settings = results.get("settings", {})
    measurements: dict[str, dict[str, Any]] = results.get("measurements", {})
    lines: list[str] = ["# Benchmark results", ""]
    lines += [
        "Written by `make bench` (bench/run.py); the same data is in `bench/results.json`. "
        "Ratios are computed within this one run; absolute figures depend on the machine.",
        "",
    ]
    for note in meta.get("notes", []):
        lines.append(f"> **Note:** {note}")
        lines.append("")

    lines += [
        "## Ratios",
        "",
        "`value` is the ratio of the req/s (or p99) medians, what the target is about. Two cross-checks: "
        "`paired` is the median of the ratios taken round by round (the two sides of a ratio run back to "
        "back, so they share the background load); `by CPU` is the throughput ratio from the CPU time "
        "the servers used per request (bare / other), which other work on the machine moves much less. "
        "Where the three disagree, the machine was in the way.",
        "",
        "| ratio | workload | value | target | | paired | by CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results.get("ratios") or ratios(measurements):
        workload = WORKLOADS.get(row["workload"], row["workload"])
        lines.append(
            f"| {row['name']} | {workload} | {_f(row['value'], '{:.2f}')} "
            f"| {_target(row['op'], row['target'])} | {row['mark']} | {_f(row.get('paired'), '{:.2f}')} "
            f"| {_f(row.get('cpu_value'), '{:.2f}')} |"
        )
    micro = results.get("micro") or {}
    soak = results.get("soak") or {}
    for row in micro_marks(micro):
        lines.append(
            f"| {row['name']} | micro | {_f(row['value'], '{:.2f}')} µs | {row['target']} "
            f"| {row['mark']} | | |"
        )
    for row in extra_ratios(results.get("extras") or {}):
        lines.append(
            f"| {row['name']} | {row['workload']} | {_f(row['value'], '{:.2f}')}{row['unit']} "
            f"| {_target(row['op'], row['target'])}{row['unit'] if row['target'] is not None else ''} "
            f"| {row['mark']} | | |"
        )
    if soak:
        growth = soak.get("rss_growth")
        lines.append(
            f"| soak: RSS at end / after warm-up ({soak.get('shadowed', 0):,} shadowed requests) | soak "
            f"| {_f(growth, '{:.3f}')} | <= {RSS_GROWTH_TARGET:g} | {soak_mark(soak)} | | |"
        )
    lines.append("")

    lines += [
        "## Configurations",
        "",
        "req/s is the median of the repeats; p50/p99 are wrk's latency percentiles (median of the "
        "repeats); CPU µs/req is the CPU time (user + system) of the configuration's processes "
        "(the gateway, or a proxy and the gunicorn behind it) per request; errors are non-2xx/3xx "
        "responses plus socket errors over all repeats; "
        f"spread is the stdev/mean of req/s over the repeats (flagged when above {NOISY_CV:.0%}).",
        "",
    ]
    for workload, title in WORKLOADS.items():
        rows = [(c, measurements.get(key(c, workload))) for c in CONFIGS]
        rows = [(c, m) for c, m in rows if m is not None]
        if not rows:
            continue
        lines += [
            f"### {title}",
            "",
            "| configuration | path | req/s | p50 ms | p99 ms | CPU µs/req | errors | spread | notes |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for config, m in rows:
            s = m["summary"]
            errors = f"**{s['errors']:,} ERRORS**" if s["errors"] else "0"
            cv = s.get("cv")
            spread = "—" if cv is None else (f"**{cv:.0%} noisy**" if cv > NOISY_CV else f"{cv:.0%}")
            lines.append(
                f"| {CONFIGS[config]} | `{m.get('path', '')}` | {_f(s['rps'])} | {_f(s['p50_ms'], '{:.2f}')} "
                f"| {_f(s['p99_ms'], '{:.2f}')} | {_f(s.get('cpu_us'))} | {errors} | {spread} "
                f"| {m.get('notes', '')} |"
            )
        lines.append("")

    if micro:
        lines += [
            "## Micro-benchmarks",
            "",
            "Route lookup (`RoutingTable.lookup`, best of the repeats over 1,000 different mapped paths; "
            "`build_table` time; `parse_map` time of the same map as YAML, i.e. what a reload costs):",
            "",
            "| entries | paths | µs per lookup | build_table s | parse_map s |",
            "|---|---|---|---|---|",
        ]
        for row in micro.get("lookup", []):
            lines.append(
                f"| {row['entries']:,} | {row['kind']} | {row['us_per_lookup']:.2f} "
                f"| {_f(row.get('build_s'), '{:.2f}')} | {_f(row.get('parse_s'), '{:.2f}')} |"
            )
        lines += [
            "",
            "Comparator (`compare` with `compile_rules`, both bodies parsed each call):",
            "",
            "| pair | case | ms per compare | differences |",
            "|---|---|---|---|",
        ]
        for row in micro.get("compare", []):
            found, expected = row["differences"], row.get("expected")
            differences = str(found)
            if expected is not None and found != expected:  # the comparator is wrong here: say so
                differences = f"**{found} (expected {expected})**"
            lines.append(f"| {row['size']} | {row['case']} | {row['ms_per_compare']:.3f} | {differences} |")
        lines.append("")

    if soak:
        lines += [
            "## Soak",
            "",
            f"{soak.get('shadowed', 0):,} shadowed requests compared ({soak.get('requests', 0):,} requests, "
            f"{soak.get('skipped', 0):,} shadows skipped, {soak.get('errors', 0):,} errors) "
            f"through one gateway process (pid {soak.get('pid', '?')}) "
            f"on `{soak.get('path', '')}` at 100 % shadow, "
            f"{soak.get('connections', '?')} connections, {_f(soak.get('seconds'), '{:.0f}')} s.",
            "",
            f"- RSS after warm-up: {_f(soak.get('rss_warm_kib'))} KiB",
            f"- RSS at the end: {_f(soak.get('rss_end_kib'))} KiB "
            f"(x{_f(soak.get('rss_growth'), '{:.3f}')}, target <= {RSS_GROWTH_TARGET:g}: {soak_mark(soak)})",
            f"- RSS along the way (KiB): {', '.join(f'{v:,}' for v in soak.get('rss_trace_kib', []))}",
            "",
        ]

    for name, result in (results.get("extras") or {}).items():
        if "error" in result:
            lines += [f"## {name}", "", f"**Not measured**: {result['error']}", ""]
        elif result.get("markdown"):
            lines += [f"## {result.get('title', name)}", "", result["markdown"].rstrip(), ""]

    lines += ["## Machine and versions", ""]
    for name, value in meta.get("machine", {}).items():
        lines.append(f"- {name}: {value}")
    lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()))
    for name, value in meta.get("run", {}).items():
        lines.append(f"- {name}: {value}")
    lines += ["", "## Settings", ""]
    for name, value in settings.items():
        lines.append(f"- {name}: {value}")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    """`python -m bench.report [results.json]`: RESULTS.md again from a results file (ratios
    recomputed from its measurements), e.g. after a change to this rendering."""
    import json
    import sys
    from pathlib import Path

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results.json"
    results = json.loads(path.read_text())
    results["ratios"] = ratios(results.get("measurements", {}))
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    (path.parent / "RESULTS.md").write_text(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
