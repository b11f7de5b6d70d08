"""The benchmark harness's pure parts: wrk's report into numbers, ratios and marks, RESULTS.md.

The benchmarks themselves never run under pytest (`make bench` runs them); these tests keep
the numbers they print honest.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from pathlib import Path
from typing import Any

import pytest

from bench import openloop, promtext, report, wrk
from bench.configs import Settings, plan, post_body

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8001/bench/native/items/1
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.12ms  812.33us  21.40ms   91.20%
    Req/Sec     7.78k   402.11     8.20k    88.00%
  Latency Distribution
     50%    3.95ms
     75%    4.20ms
     90%  610.00us
     99%    1.02s
  77412 requests in 10.01s, 18.90MB read
Requests/sec:   7733.47
Transfer/sec:      1.89MB
"""

WRK_ERRORS = """\
Running 2s test @ http://127.0.0.1:8002/bench/legacy/echo
  1 threads and 32 connections
  Latency Distribution
     50%   12.50ms
     75%   20.00ms
     90%   30.00ms
     99%    1.50m
  5000 requests in 2.00s, 1.00MB read
  Socket errors: connect 0, read 3, write 1, timeout 7
  Non-2xx or 3xx responses: 42
Requests/sec:   2500.00
"""


def test_wrk_report_parsed_into_numbers_with_units() -> None:
    run = wrk.parse(WRK_OUTPUT)
    assert run.requests_per_s == 7733.47
    assert run.requests == 77412
    assert run.seconds == pytest.approx(10.01)
    assert run.p50_ms == pytest.approx(3.95)
    assert run.p90_ms == pytest.approx(0.61)  # microseconds
    assert run.p99_ms == pytest.approx(1020.0)  # seconds
    assert run.errors == 0 and run.non_2xx_3xx == 0


def test_wrk_errors_are_counted_never_dropped() -> None:
    run = wrk.parse(WRK_ERRORS)
    assert run.non_2xx_3xx == 42
    assert run.socket_errors == {"connect": 0, "read": 3, "write": 1, "timeout": 7}
    assert run.errors == 53
    assert run.p99_ms == pytest.approx(90_000.0)  # minutes
    assert run.to_dict()["errors"] == 53


@pytest.mark.parametrize(
    "broken",
    [
        "",
        "unable to connect to 127.0.0.1:1 Connection refused\n",
        WRK_OUTPUT.replace("     99%    1.02s\n", ""),  # run without --latency (or cut short)
        WRK_OUTPUT.replace("Requests/sec:   7733.47\n", ""),
    ],
)
def test_wrk_report_that_is_not_complete_is_an_error(broken: str) -> None:
    with pytest.raises(wrk.WrkParseError):
        wrk.parse(broken)


def test_wrk_command_pins_the_load_and_uses_the_lua_script_for_posts() -> None:
    from pathlib import Path

    cmd = wrk.command("http://127.0.0.1:1/x", seconds=10, connections=32, script=Path("bench/post.lua"), cpu="1")
    assert cmd[:4] == ["taskset", "-c", "1", "wrk"]
    assert {"-t1", "-c32", "-d10s", "--latency"} <= set(cmd)
    assert cmd[cmd.index("-s") + 1] == "bench/post.lua" and cmd[-1] == "http://127.0.0.1:1/x"


# -- ratios and marks --------------------------------------------------------------------------


def measurement(rps: float, p99: float = 10.0, errors: int = 0, repeats: int = 3) -> dict[str, Any]:
    runs = [
        {"requests_per_s": rps * f, "p50_ms": p99 / 3, "p99_ms": p99, "errors": errors if i == 0 else 0}
        for i, f in enumerate((1.0, 0.98, 1.02)[:repeats])
    ]
    return {"runs": runs, "summary": report.summarise(runs), "path": "/x", "notes": ""}


def full_results() -> dict[str, Any]:
    m = {
        "bare_fastapi/get": measurement(8000),
        "gw_native/get": measurement(7800),  # 0.975
        "gunicorn/get": measurement(3400),
        "gw_legacy/get": measurement(3000, p99=20.0),  # 0.88: MISS
        "a2wsgi_mount/get": measurement(2900),
        "gw_shadow25/get": measurement(2800, p99=21.0),  # p99 1.05: PASS
        "gw_shadow100/get": measurement(1200),  # 0.40: MISS
        "gw_remote/get": measurement(2500),
        "naive_proxy/get": measurement(450),  # 5.56: PASS
    }
    return {"measurements": m}


def rows_by(results: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["name"], r["workload"]): r for r in report.ratios(results["measurements"])}


def test_summary_takes_medians_and_sums_errors() -> None:
    runs = [
        {"requests_per_s": 100.0, "p50_ms": 1.0, "p99_ms": 9.0, "errors": 0},
        {"requests_per_s": 300.0, "p50_ms": 3.0, "p99_ms": 5.0, "errors": 2},
        {"requests_per_s": 200.0, "p50_ms": 2.0, "p99_ms": 7.0, "errors": 1},
    ]
    s = report.summarise(runs)
    assert (s["rps"], s["p50_ms"], s["p99_ms"], s["errors"]) == (200.0, 2.0, 7.0, 3)
    assert s["cv"] == pytest.approx(0.408, abs=0.001)


def test_ratios_and_pass_miss_marks() -> None:
    rows = rows_by(full_results())
    native = rows[("native via gateway / bare FastAPI", "get")]
    assert native["value"] == pytest.approx(0.975) and native["mark"] == "PASS"
    legacy = rows[("legacy via gateway / gunicorn Flask", "get")]
    assert legacy["value"] == pytest.approx(3000 / 3400) and legacy["mark"] == "MISS"
    assert rows[("plain a2wsgi mount / gunicorn Flask (reference)", "get")]["mark"] == "REF"
    assert rows[("legacy via gateway / plain a2wsgi mount", "get")]["mark"] == "PASS"
    shadow25 = rows[("shadow 25 % primary p99 / shadow off p99", "get")]
    assert shadow25["metric"] == "p99_ms" and shadow25["value"] == pytest.approx(1.05)
    assert shadow25["mark"] == "PASS"
    assert rows[("shadow 100 % throughput / shadow off", "get")]["mark"] == "MISS"
    remote = rows[("remote mode / naive httpx proxy", "get")]
    assert remote["value"] == pytest.approx(2500 / 450) and remote["mark"] == "PASS"
    # a configuration that was not measured gives no number, and no PASS
    assert rows[("native via gateway / bare FastAPI", "post")]["mark"] == "N/A"


def test_throughput_ratios_are_cross_checked_by_cpu_per_request() -> None:
    results = full_results()
    for key, cores in (("bare_fastapi/get", 0.8), ("gw_native/get", 0.9)):
        m = results["measurements"][key]
        for run in m["runs"]:
            run["server_cores"] = cores
        m["summary"] = report.summarise(m["runs"])
    assert results["measurements"]["bare_fastapi/get"]["summary"]["cpu_us"] == pytest.approx(100.0)
    row = rows_by(results)[("native via gateway / bare FastAPI", "get")]
    # bare: 0.8 cores / 8000 req/s = 100 µs; gateway: 0.9 / 7800 = 115.4 µs; 100 / 115.4 = 0.867
    assert row["cpu_value"] == pytest.approx(0.8 / 8000 / (0.9 / 7800))
    assert rows_by(full_results())[("native via gateway / bare FastAPI", "get")]["cpu_value"] is None


def test_paired_ratio_is_the_median_of_round_by_round_ratios() -> None:
    def runs(values: list[float]) -> list[dict[str, Any]]:
        return [{"requests_per_s": v, "p99_ms": v, "round": i + 1} for i, v in enumerate(values)]

    # round ratios 1.0, 2.0, 0.5: median 1.0, where the ratio of the medians (200 / 150) is 1.33
    assert report.paired(runs([100, 300, 200]), runs([100, 150, 400]), "rps") == pytest.approx(1.0)
    # a round missing on one side is left out, not paired with another round's run
    assert report.paired(runs([100, 300]), runs([100])[:1], "p99_ms") == pytest.approx(1.0)
    assert report.paired([], runs([1]), "rps") is None
    row = rows_by(full_results())[("native via gateway / bare FastAPI", "get")]
    assert row["paired"] == pytest.approx(0.975)


def test_targets_are_inclusive_and_directional() -> None:
    assert report.mark(0.95, ">=", 0.95) == "PASS"
    assert report.mark(0.9499, ">=", 0.95) == "MISS"
    assert report.mark(1.10, "<=", 1.10) == "PASS"
    assert report.mark(1.11, "<=", 1.10) == "MISS"
    assert report.mark(None, ">=", 1.0) == "N/A"


def test_a_configuration_with_errors_never_passes() -> None:
    results = full_results()
    results["measurements"]["naive_proxy/get"] = measurement(450, errors=3)
    row = rows_by(results)[("remote mode / naive httpx proxy", "get")]
    assert row["mark"] == "ERRORS"


def test_soak_and_lookup_marks() -> None:
    soak = {"shadowed": 200_000, "rss_warm_kib": 100_000, "rss_end_kib": 109_000, "rss_growth": 1.09}
    assert report.soak_mark(soak) == "PASS"
    assert report.soak_mark({**soak, "rss_growth": 1.2}) == "MISS"
    assert report.soak_mark({**soak, "shadowed": 150_000}).startswith("MISS")
    micro = {"lookup": [{"entries": 10_000, "kind": "static", "us_per_lookup": 0.4},
                        {"entries": 10_000, "kind": "templated", "us_per_lookup": 2.5},
                        {"entries": 100, "kind": "templated", "us_per_lookup": 9.0}]}
    marks = {row["name"]: row["mark"] for row in report.micro_marks(micro)}
    assert marks == {"lookup at 10,000 entries (static)": "PASS", "lookup at 10,000 entries (templated)": "MISS"}


# -- RESULTS.md ----------------------------------------------------------------------------------


def test_results_md_rendered_from_a_results_dict() -> None:
    results = full_results()
    results["measurements"]["naive_proxy/get"] = measurement(450, errors=3)
    results["ratios"] = report.ratios(results["measurements"])
    results["meta"] = {
        "machine": {"CPU": "Test CPU", "cores": "2", "kernel": "6.1"},
        "versions": {"python": "3.11.7", "wrk": "4.1.0"},
        "run": {"date": "2026-01-01 00:00 UTC", "load average after": "0.10 0.20 0.30"},
        "notes": ["the machine was busy"],
    }
    results["settings"] = {"mode": "full"}
    results["soak"] = {"shadowed": 200_000, "rss_warm_kib": 100, "rss_end_kib": 105, "rss_growth": 1.05,
                       "rss_trace_kib": [90, 100, 105]}
    text = report.render(results)
    assert "| native via gateway / bare FastAPI | GET small JSON (no DB) | 0.97 | >= 0.97 | PASS |" in text
    assert "| legacy via gateway / gunicorn Flask | GET small JSON (no DB) | 0.88 | >= 0.95 | MISS |" in text
    assert "| remote mode / naive httpx proxy | GET small JSON (no DB) | 5.56 | >= 5 | ERRORS |" in text
    assert "**3 ERRORS**" in text
    assert "> **Note:** the machine was busy" in text
    assert "CPU: Test CPU" in text and "python 3.11.7, wrk 4.1.0" in text
    assert "load average after: 0.10 0.20 0.30" in text
    assert "| 7,800 |" in text  # req/s, the median of the repeats
    assert "PASS" in text.split("soak: RSS at end")[1].splitlines()[0]


def test_noisy_repeats_are_flagged() -> None:
    noisy = measurement(1000)
    noisy["runs"][1]["requests_per_s"] = 500
    noisy["summary"] = report.summarise(noisy["runs"])
    text = report.render({"measurements": {"gunicorn/get": noisy}})
    assert "noisy" in text
    quiet = copy.deepcopy(full_results())
    assert "noisy" not in report.render(quiet)


# -- the rest of the harness's pure parts --------------------------------------------------------


def test_prometheus_counters_read_by_label() -> None:
    text = (
        "# HELP gateway_requests_total x\n"
        'gateway_requests_total{route="a",backend="new",role="primary",status_class="2xx"} 3.0\n'
        'gateway_requests_total{route="a",backend="legacy",role="primary",status_class="2xx"} 5.0\n'
        'gateway_requests_total{route="a",backend="legacy",role="shadow",status_class="2xx"} 7.0\n'
        'gateway_shadow_comparisons_total{route="a",result="match"} 2.0\n'
    )
    samples = promtext.parse(text)
    assert promtext.by_label(samples, "gateway_requests_total", "backend", role="primary") == {
        "new": 3.0,
        "legacy": 5.0,
    }
    assert promtext.total(samples, "gateway_requests_total", backend="legacy") == 12.0
    assert promtext.delta({"a": 5.0, "b": 1.0}, {"a": 2.0, "b": 1.0}) == {"a": 3.0}


def test_post_body_is_one_kilobyte_of_json() -> None:
    import json

    body = post_body()
    assert len(body) == 1024 and isinstance(json.loads(body), dict)


def test_settings_quick_mode_and_overrides() -> None:
    quick = Settings.from_env({"BENCH_QUICK": "1"})
    assert quick.quick and not quick.soak and quick.repeats >= 1 and quick.duration <= 3
    full = Settings.from_env({"BENCH_DURATION": "7", "BENCH_REPEATS": "4", "BENCH_SOAK": "0"})
    assert (full.quick, full.duration, full.repeats, full.soak, full.connections) == (False, 7.0, 4, False, 32)
    assert Settings.from_env({}).repeats >= 3


def test_the_upstream_of_its_own_core_is_driven_from_the_servers_core() -> None:
    from bench.measure import wrk_command

    settings = Settings(server_cpu="0", load_cpu="1")
    by_config = {(m.config, m.workload): m for m in plan()}
    # the same servers in both keep-alive topologies; only where wrk runs differs
    for config in ("gunicorn_ka", "gw_remote_ka"):
        usual, own = by_config[(config, "post")], by_config[(f"{config}_own", "post")]
        assert (usual.server, usual.also) == (own.server, own.also)
        assert wrk_command(usual, "http://h", settings, 5)[:3] == ["taskset", "-c", "1"]
        cmd = wrk_command(own, "http://h", settings, 5)
        assert cmd[:3] == ["taskset", "-c", "0"] and cmd[-1] == "http://h" + own.path
        assert cmd[cmd.index("-s") + 1].endswith("post.lua")


def test_plan_covers_every_ratio() -> None:
    planned = {(m.config, m.workload) for m in plan()}
    for spec in report.RATIOS:
        for workload in spec.workloads:
            assert (spec.numerator, workload) in planned
            assert (spec.denominator, workload) in planned


def test_extra_benchmarks_join_the_ratio_table_and_a_failed_one_is_said() -> None:
    results = {
        "extras": {
            "reload_cost": {
                "title": "Map reloads under load",
                "markdown": "| window | p99 |\n|---|---|\n| quiet | 1.0 |",
                "ratios": [{"name": "p99 during reloads / quiet", "workload": "open loop", "value": 1.05,
                            "op": "<=", "target": 1.2}],
            },
            "request_path": {"title": "Request path", "markdown": "", "ratios": [
                {"name": "gateway overhead per request", "workload": "micro", "value": 12.5, "op": "<=",
                 "target": 10, "unit": " µs"}]},
            "http_clients": {"error": "bench.bench_http_clients exited with 1: boom"},
        }
    }
    text = report.render(results)
    assert "| p99 during reloads / quiet | open loop | 1.05 | <= 1.2 | PASS | | |" in text
    assert "| gateway overhead per request | micro | 12.50 µs | <= 10 µs | MISS | | |" in text
    assert "| http_clients: bench.bench_http_clients exited with 1: boom | — | — | — | N/A | | |" in text
    assert "## Map reloads under load\n\n| window | p99 |" in text
    assert "## http_clients\n\n**Not measured**: bench.bench_http_clients exited with 1: boom" in text


def test_extras_are_selected_by_name() -> None:
    from bench import extras

    assert [e[0] for e in extras.selected(None)] == [e[0] for e in extras.EXTRAS]
    assert extras.selected("0") == []
    assert [e[0] for e in extras.selected("reload_cost")] == ["reload_cost"]
    with pytest.raises(ValueError, match="BENCH_EXTRAS: unknown nope"):
        extras.selected("nope")


def test_an_extra_that_fails_or_prints_no_json_is_an_error_not_a_result(tmp_path: Path) -> None:
    from bench import extras

    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    (tmp_path / "noisy_extra.py").write_text("print('not json')\n")
    (tmp_path / "failing_extra.py").write_text("raise SystemExit('no wrk here')\n")
    silent = extras.run_one("noisy_extra", quick=True, cwd=str(tmp_path), env=env)
    failed = extras.run_one("failing_extra", quick=True, cwd=str(tmp_path), env=env)
    assert silent["error"].startswith("noisy_extra printed no JSON result")
    assert failed == {"error": "failing_extra exited with 1: no wrk here"}


def test_the_open_loop_is_calibrated_to_a_share_of_a_core_not_of_wrks_capacity() -> None:
    # a server that costs more per request the fewer arrive at once (as the gateway does):
    # 0.89 cores at half of wrk's 4,000 req/s; the rate that uses half a core is found
    asked: list[float] = []

    async def cores_at(rate: float) -> float:
        asked.append(rate)
        return rate * (400e-6 + 0.2 / max(rate, 1.0) ** 0.5 * 1e-3 * 10)

    rate, cores = asyncio.run(openloop.calibrate(cores_at, 2000.0, 0.5))
    assert asked[0] == 2000.0 and len(asked) == 2
    assert cores == pytest.approx(asyncio.run(cores_at(asked[1])))
    assert abs(asyncio.run(cores_at(rate)) - 0.5) < 0.05


def test_the_reload_bench_stages_the_next_map_and_swaps_it_in_as_just_saved(tmp_path: Path) -> None:
    from bench.reload_cost import stage, swap_in

    served = tmp_path / "bench_map.yaml"
    served.write_text("old\n")
    old = time.time() - 60
    os.utime(served, (old, old))
    tmp = stage(served, "new\n")
    os.utime(tmp, (old, old))  # written a while before the swap, as in the warm-up
    assert served.read_text() == "old\n" and tmp.parent == served.parent and tmp.name.startswith(".")
    before = time.time()
    swap_in(tmp, served)
    assert served.read_text() == "new\n" and not tmp.exists()
    assert served.stat().st_mtime >= before - 1  # fresh: the gateway's settle wait applies


def test_shadow_isolation_reports_the_p99_pooled_over_the_rounds_beside_the_median_of_ratios() -> None:
    from bench.shadow_isolation import Sample, pooled_p99, ratios_of, render

    def sample(mode: str, latencies: list[float]) -> Sample:
        s = Sample("after", mode, "open", 1.0, sorted(latencies)[int(0.99 * len(latencies))], len(latencies),
                   0, 0.5, {"compared": 1.0})
        s.latencies_ms = latencies
        return s

    calm = [1.0] * 990 + [2.0] * 10  # p99 2.0
    stalled = [1.0] * 960 + [9.0] * 40  # one round with a stall: p99 9.0
    samples = [sample("off", calm), sample("25", calm), sample("off", calm), sample("25", stalled),
               sample("off", calm), sample("25", calm)]
    # the median of the round ratios (1, 4.5, 1) says 1.0; pooled, the stall's 40 requests are the top 1 %
    shadowed = [s for s in samples if s.mode == "25"]
    assert pooled_p99(shadowed) == 9.0 and pooled_p99([s for s in samples if s.mode == "off"]) == 2.0
    rows = {r["name"]: r for r in ratios_of(samples, "after") if r["workload"] == "open loop, fixed rate"}
    assert rows["shadow 25 %: primary p99 / shadow off p99, median of the round ratios"]["value"] == 1.0
    pooled = rows["shadow 25 %: primary p99 / shadow off p99, pooled over the rounds"]
    assert pooled["value"] == 4.5 and pooled["target"] is None  # reported, not the target's
    # three rounds are too few to leave one out: the target's statistic is the pooled one here
    target = rows["shadow 25 %: primary p99 / shadow off p99, pooled, each mode's worst round left out"]
    assert target["value"] == 4.5 and target["target"] == 1.1
    line = next(x for x in render(samples, ["after"], 800.0, 3000.0, "", 0.5).splitlines() if "| open | 25 |" in x)
    assert line.split(" | ")[6:9] == ["1.00", "4.50", "4.50"]


def test_the_shadow_target_leaves_out_each_modes_worst_round_but_keeps_a_cost_in_every_round() -> None:
    from bench.shadow_isolation import Sample, ratios_of, trimmed_p99

    def sample(mode: str, latencies: list[float]) -> Sample:
        return Sample("after", mode, "open", 1.0, sorted(latencies)[int(0.99 * len(latencies))], len(latencies),
                      0, 0.5, {"compared": 1.0}, latencies_ms=latencies)

    calm = [1.0] * 990 + [2.0] * 10
    stalled = [1.0] * 960 + [9.0] * 40
    costly = [1.0] * 980 + [3.0] * 20  # the shadows' own cost: p99 3.0 in every round
    # a stall in one shadow-off round and one shadowed round: left out, the ratio is the calm 1.0
    samples = [sample("off", stalled if r == 1 else calm) for r in range(5)]
    samples += [sample("25", stalled if r == 3 else calm) for r in range(5)]
    key = "shadow 25 %: primary p99 / shadow off p99, pooled, each mode's worst round left out"

    def row(rows: list[dict[str, object]]) -> dict[str, object]:
        return next(r for r in rows if r["name"] == key)

    assert trimmed_p99(samples[:5]) == 2.0 and row(ratios_of(samples, "after"))["value"] == 1.0
    # a real cost shows in every round, and leaving one out does not hide it
    samples = samples[:5] + [sample("25", costly) for _ in range(5)]
    assert row(ratios_of(samples, "after"))["value"] == 1.5


def test_one_percentile_for_the_open_loop_benches_ranks_in_whole_numbers() -> None:
    from bench.openloop import percentile

    # 0.99 * 1300 is 1286.99... in floats: the rank is 1287, as reload_cost's percent-based one had it
    assert percentile([float(i) for i in range(1300)], 0.99) == 1287.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0 and percentile([1.0], 0.99) == 1.0
    assert percentile([], 0.99) != percentile([], 0.99)  # nan for no values
