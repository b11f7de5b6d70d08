"""The soak (`make soak`, and part of `make bench` unless BENCH_QUICK): at least 200,000 shadowed
requests through one real gateway, with its RSS after warm-up and at the end.

wrk drives a legacy-owned route shadowed at 100 % in chunks; after each chunk the gateway's
own counters say how many shadows were compared, and /proc/<pid>/status says its RSS. The run
stops by itself: at the count, or at BENCH_SOAK_MAX_S.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import promtext, wrk
from bench.servers import Servers, http_get, rss_kib, signals_raise

PATH = "/bench/shadow100/items/1"
ROUTE = "bench.shadow100.item"


@dataclass(frozen=True)
class SoakSettings:
    shadowed: int = 200_000  # shadowed requests compared after warm-up, at least
    warmup_shadowed: int = 20_000
    connections: int = 16
    chunk_s: float = 15.0
    max_s: float = 1200.0
    server_cpu: str = "0"
    load_cpu: str = "1"

    @classmethod
    def from_env(cls) -> SoakSettings:
        env = os.environ
        base = cls()
        return cls(
            shadowed=int(env.get("BENCH_SOAK_SHADOWED") or base.shadowed),
            warmup_shadowed=int(env.get("BENCH_SOAK_WARMUP") or base.warmup_shadowed),
            connections=int(env.get("BENCH_SOAK_CONNECTIONS") or base.connections),
            chunk_s=float(env.get("BENCH_SOAK_CHUNK_S") or base.chunk_s),
            max_s=float(env.get("BENCH_SOAK_MAX_S") or base.max_s),
            server_cpu=env.get("BENCH_SERVER_CPU") or base.server_cpu,
            load_cpu=env.get("BENCH_LOAD_CPU") or base.load_cpu,
        )


def counters(url: str) -> dict[str, float]:
    status, _, body = http_get(url + "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    samples = promtext.parse(body.decode())
    return {
        "shadowed": promtext.total(samples, "gateway_shadow_comparisons_total", route=ROUTE),
        "skipped": promtext.total(samples, "gateway_shadow_skipped_total", route=ROUTE),
    }


SOAK_GATEWAY_ENV = "GATEWAY_SHADOW_CPU_BUDGET=1"


def run(settings: SoakSettings, workdir: Path, src: Path | None = None) -> dict[str, Any]:
    """`src`: the code snapshot of the run this soak is part of (else a fresh one)."""
    from bench.configs import prepare, start_servers  # the same set-up as the macro run

    workdir.mkdir(parents=True, exist_ok=True)
    env = prepare(workdir, src)
    log = _log
    with Servers(workdir, cpu=settings.server_cpu, cwd=Path(env["BENCH_SRC"])) as servers:
        # the soak is about memory over many *compared* shadows: the shadow CPU budget (which
        # would skip most of them under a closed loop) is off for it
        previous = os.environ.get("BENCH_GATEWAY_ENV")
        os.environ["BENCH_GATEWAY_ENV"] = f"{previous or ''} {SOAK_GATEWAY_ENV}".strip()
        try:
            gateway = start_servers(servers, env, workdir, {"gateway"})["gateway"]
        finally:
            if previous is None:
                del os.environ["BENCH_GATEWAY_ENV"]
            else:
                os.environ["BENCH_GATEWAY_ENV"] = previous
        pid = gateway.serving_pid()
        log(
            f"soak: gateway pid {pid}, {settings.shadowed:,} shadowed requests after a warm-up of "
            f"{settings.warmup_shadowed:,}, {settings.connections} connections"
        )
        started = time.monotonic()
        requests = errors = 0
        trace: list[int] = [rss_kib(pid)]
        rss_warm: int | None = None
        base = counters(gateway.url)
        warm_base: dict[str, float] | None = None
        while True:
            cmd = wrk.command(
                gateway.url + PATH,
                seconds=settings.chunk_s,
                connections=settings.connections,
                cpu=settings.load_cpu,
            )
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=settings.chunk_s + 60)
            if done.returncode != 0:
                raise RuntimeError(f"soak: wrk failed: {done.stderr or done.stdout}")
            chunk = wrk.parse(done.stdout)
            requests += chunk.requests
            errors += chunk.errors
            now = counters(gateway.url)
            trace.append(rss_kib(pid))
            if gateway.process.poll() is not None:
                raise RuntimeError(f"soak: the gateway died:\n{gateway.log_tail()}")
            if warm_base is None:
                if now["shadowed"] - base["shadowed"] >= settings.warmup_shadowed:
                    rss_warm, warm_base = trace[-1], now
                    log(f"soak: warmed up, RSS {rss_warm:,} KiB")
            else:
                count = now["shadowed"] - warm_base["shadowed"]
                log(f"soak: {count:,.0f} shadowed, RSS {trace[-1]:,} KiB, {chunk.requests_per_s:,.0f} req/s")
                if count >= settings.shadowed:
                    break
            if time.monotonic() - started > settings.max_s:
                log(f"soak: stopped after {settings.max_s:g} s (BENCH_SOAK_MAX_S) before the count")
                break
        time.sleep(2)  # the last comparisons and the store's last batch
        end = counters(gateway.url)
        rss_end = rss_kib(pid)
        trace.append(rss_end)
    warm = warm_base or base
    result = {
        "path": PATH,
        "pid": pid,
        "connections": settings.connections,
        "seconds": time.monotonic() - started,
        "requests": requests,
        "errors": errors,
        "shadowed": int(end["shadowed"] - warm["shadowed"]),
        "shadowed_total": int(end["shadowed"] - base["shadowed"]),
        "skipped": int(end["skipped"] - base["skipped"]),
        "rss_warm_kib": rss_warm,
        "rss_end_kib": rss_end,
        "rss_growth": rss_end / rss_warm if rss_warm else None,
        "rss_trace_kib": trace,
        "stopped_by": "count"
        if warm_base and end["shadowed"] - warm["shadowed"] >= settings.shadowed
        else "time",
    }
    return result


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    """`make soak`: the soak alone; its section of bench/results.json and RESULTS.md is updated."""
    from bench import report

    out_dir = Path(os.environ.get("BENCH_OUT") or Path(__file__).resolve().parent)
    with tempfile.TemporaryDirectory(prefix="gateway-soak-") as tmp:
        try:
            with signals_raise():
                result = run(SoakSettings.from_env(), Path(tmp))
        except KeyboardInterrupt:
            _log("soak: interrupted; the gateway it started is stopped")
            return 130
    _log(json.dumps({k: v for k, v in result.items() if k != "rss_trace_kib"}))
    _log(
        f"soak: RSS x{result['rss_growth']:.3f} (target <= {report.RSS_GROWTH_TARGET}): "
        f"{report.soak_mark(result)}"
    )
    results_path = out_dir / "results.json"
    if results_path.exists():
        results = json.loads(results_path.read_text())
        results["soak"] = result
        results_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        (out_dir / "RESULTS.md").write_text(report.render(results))
        _log(f"soak: updated {results_path} and RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
