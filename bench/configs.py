"""What `make bench` runs: its settings (BENCH_* variables), the measurements, the servers.

Every configuration serves the same two apps (bench/apps.py): the bare ones directly, the
gateway through bench/bench_map.yaml, the baselines through bench/baselines.py. All servers
are real processes on 127.0.0.1, pinned to BENCH_SERVER_CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.servers import ROOT, Server, Servers, free_port

BENCH_DIR = Path(__file__).resolve().parent
POST_BODY_BYTES = 1024


@dataclass(frozen=True)
class Settings:
    quick: bool = False
    # more, shorter rounds than 3 x 10 s: on a shared machine the median of five pairs is
    # steadier than of three, for the same time
    duration: float = 6.0  # seconds per measurement
    repeats: int = 5
    warmup: float = 5.0  # seconds per measurement, before the first round, not recorded
    connections: int = 32
    threads: int = 1  # wrk threads: one core is all wrk gets
    settle: float = 0.5  # pause between measurements (1 s more after shadow runs)
    micro: bool = True
    soak: bool = True
    configs: tuple[str, ...] | None = None  # only these configurations (debugging)
    workloads: tuple[str, ...] | None = None
    server_cpu: str = "0"
    load_cpu: str = "1"
    out_dir: str = str(BENCH_DIR)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        quick = env.get("BENCH_QUICK", "") not in ("", "0", "false", "no")
        base = cls(quick=True, duration=2, repeats=1, warmup=1, settle=0.3, soak=False) if quick else cls()

        def pick(name: str, default: Any, kind: Any) -> Any:
            raw = env.get(name)
            return default if raw in (None, "") else kind(raw)

        def flag(raw: str) -> bool:
            return raw not in ("0", "false", "no")

        def names(raw: str) -> tuple[str, ...]:
            return tuple(x.strip() for x in raw.split(",") if x.strip())

        return cls(
            quick=quick,
            duration=pick("BENCH_DURATION", base.duration, float),
            repeats=pick("BENCH_REPEATS", base.repeats, int),
            warmup=pick("BENCH_WARMUP", base.warmup, float),
            connections=pick("BENCH_CONNECTIONS", base.connections, int),
            threads=pick("BENCH_THREADS", base.threads, int),
            settle=pick("BENCH_SETTLE", base.settle, float),
            micro=pick("BENCH_MICRO", base.micro, flag),
            soak=pick("BENCH_SOAK", base.soak, flag),
            configs=pick("BENCH_CONFIGS", None, names),
            workloads=pick("BENCH_WORKLOADS", None, names),
            server_cpu=pick("BENCH_SERVER_CPU", base.server_cpu, str),
            load_cpu=pick("BENCH_LOAD_CPU", base.load_cpu, str),
            out_dir=pick("BENCH_OUT", base.out_dir, str),
        )


@dataclass(frozen=True)
class Measurement:
    config: str
    workload: str
    server: str  # name of the server that is driven
    path: str
    expect_side: str | None = None  # X-Served-By the gateway must answer with ("new", "legacy")
    also: tuple[str, ...] = ()  # servers whose CPU is part of this configuration (a proxied gunicorn)
    wrk_on_server_core: bool = False  # wrk pinned beside the servers, not on the load core

    @property
    def key(self) -> str:
        return report.key(self.config, self.workload)

    @property
    def method(self) -> str:
        return "POST" if self.workload == "post" else "GET"


def plan() -> list[Measurement]:
    """Every measurement, in the order odd rounds run them (even rounds run it backwards)."""
    item = "/bench/{}/items/1"
    echo = "/bench/{}/echo"
    out: list[Measurement] = []
    for workload, path, user_new, user_legacy in (
        ("get", item, None, None),
        ("post", echo, None, None),
        ("get_db", None, "/api/users/1", "/api/users/2"),
    ):

        def p(
            variant: str, path: str | None = path, new: str | None = user_new, old: str | None = user_legacy
        ) -> str:
            if path is not None:
                return path.format(variant)
            return new if variant == "native" else old  # type: ignore[return-value]

        # the two sides of each ratio run back to back, so they see the same background load
        out += [
            Measurement("bare_fastapi", workload, "bare_fastapi", p("native")),
            Measurement("gw_native", workload, "gateway", p("native"), "new"),
        ]
        if workload == "get":
            out.append(Measurement("gw_serve", workload, "gateway_cli", p("native"), "new"))
        out += [
            Measurement("gunicorn", workload, "gunicorn", p("legacy")),
            Measurement("gw_legacy", workload, "gateway", p("legacy"), "legacy"),
            Measurement("a2wsgi_mount", workload, "a2wsgi_mount", p("legacy")),
        ]
        if workload == "get":
            out += [
                Measurement("gw_shadow25", workload, "gateway", p("shadow25"), "legacy"),
                Measurement("gw_shadow100", workload, "gateway", p("shadow100"), "legacy"),
                # the same two, the candidates in a shadow process at idle priority
                Measurement("gw_shadow25_proc", workload, "gateway_shproc", p("shadow25"), "legacy"),
                Measurement("gw_shadow100_proc", workload, "gateway_shproc", p("shadow100"), "legacy"),
            ]
        if workload != "get_db":
            out.append(Measurement("gw_canary", workload, "gateway", p("canary")))
        out += [
            Measurement("gw_remote", workload, "gateway_remote", p("legacy"), "legacy", also=("gunicorn",)),
            Measurement("naive_proxy", workload, "naive_proxy", p("legacy"), also=("gunicorn",)),
        ]
        if workload != "get_db":
            # a keep-alive upstream (gunicorn gthread) on the load core, beside wrk, in all three:
            # it has the same share of a core whether wrk drives it or the gateway does, and the
            # gateway (or the naive proxy) has a core of its own
            ka = ("gunicorn_ka",)
            out += [
                Measurement("gunicorn_ka", workload, "gunicorn_ka", p("legacy")),
                Measurement("gw_remote_ka", workload, "gateway_remote_ka", p("legacy"), "legacy", also=ka),
                Measurement("naive_proxy_ka", workload, "naive_proxy_ka", p("legacy"), also=ka),
                # the same upstream and gateway, wrk moved to the gateway's core: the upstream has
                # its core to itself, and its requests come from the other core in both (beside
                # wrk, the upstream's threads block twice as often per request when the gateway
                # sends them as when wrk does: bench/PROFILE.md, "Round two, sixth pass")
                Measurement("gunicorn_ka_own", workload, "gunicorn_ka", p("legacy"), wrk_on_server_core=True),
                Measurement(
                    "gw_remote_ka_own", workload, "gateway_remote_ka", p("legacy"), "legacy",
                    also=ka, wrk_on_server_core=True,
                ),
            ]
    # past one core: every process on both cores (wrk shares the second), legacy and native routes
    out += [
        Measurement("gunicorn_2w", "get", "gunicorn_2w", item.format("legacy")),
        Measurement("gw_serve2_legacy", "get", "gateway_cli_2w", item.format("legacy"), "legacy"),
        Measurement("gw_serve_legacy", "get", "gateway_cli", item.format("legacy"), "legacy"),
        Measurement("bare_fastapi_2w", "get", "bare_fastapi_2w", item.format("native")),
        Measurement("gw_serve2_native", "get", "gateway_cli_2w", item.format("native"), "new"),
    ]
    return out


# -- environment and servers -------------------------------------------------------------------


def uvicorn_flags() -> tuple[list[str], str]:
    """The same flags for every ASGI server: uvloop and httptools when installed (as uvicorn's
    `auto` would pick), no access log, warnings only."""
    flags = ["--no-access-log", "--log-level", "warning"]
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return [
        *flags,
        "--loop",
        loop,
        "--http",
        http,
    ], f"--loop {loop} --http {http} --no-access-log --log-level warning"


SNAPSHOT_PACKAGES = ("gateway", "features", "legacy_flask", "bench")


def snapshot(workdir: Path) -> Path:
    """A copy of the code the servers run, taken once: others may edit the tree during a run,
    and every server of the run (the soak's too) must run one version of it."""
    src = workdir / "src"
    for package in SNAPSHOT_PACKAGES:
        shutil.copytree(
            ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "profiles")
        )
    return src


def base_env(workdir: Path, src: Path) -> dict[str, str]:
    # the caller's GATEWAY_* settings would change what is measured: only ours (and
    # BENCH_GATEWAY_ENV's, "NAME=value NAME=value") reach the gateways
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        # ahead of the editable install's finder: the snapshot's packages are the ones imported
        PYTHONPATH=str(src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
        BENCH_SRC=str(src),
        DATABASE_URL=f"sqlite:///{workdir}/demo.db",
        SECRET_KEY="bench-secret",
        UPLOAD_DIR=str(workdir / "uploads"),
    )
    return env


def gateway_env(env: dict[str, str], workdir: Path, name: str, **extra: str) -> dict[str, str]:
    out = dict(env)
    out.update(
        GATEWAY_MAP_PATH=str(workdir / "map" / "bench_map.yaml"),
        GATEWAY_LEGACY_APP="bench.apps:legacy_app",
        GATEWAY_NATIVE_APP="bench.apps:native_app",
        GATEWAY_STORE_URL=f"sqlite:///{workdir}/parity-{name}.db",
    )
    for pair in os.environ.get("BENCH_GATEWAY_ENV", "").split():
        k, _, v = pair.partition("=")
        out[k] = v
    out.update(extra)
    return out


def prepare(workdir: Path, src: Path | None = None) -> dict[str, str]:
    """The run's environment: a snapshot of the code (or `src`, one taken before), the map,
    a seeded demo database and the POST body, all in `workdir`."""
    src = src or snapshot(workdir)
    env = base_env(workdir, src)
    (workdir / "map").mkdir()
    shutil.copy(BENCH_DIR / "bench_map.yaml", workdir / "map" / "bench_map.yaml")
    subprocess.run(
        [sys.executable, "-m", "gateway.cli", "seed", "--database-url", env["DATABASE_URL"]],
        cwd=src,
        env=env,
        check=True,
        capture_output=True,
    )
    (workdir / "post.json").write_bytes(post_body())
    return env


def post_body(size: int = POST_BODY_BYTES) -> bytes:
    """A JSON object of exactly `size` bytes, shaped like a form a client would send."""
    doc: dict[str, Any] = {"order": 1, "customer": "alice@example.com", "lines": [], "note": ""}
    while len(json.dumps(doc).encode()) < size - 80:
        n = len(doc["lines"]) + 1
        doc["lines"].append({"sku": f"BK-{n:04d}", "quantity": n % 3 + 1, "price": 9.99 + n})
    pad = size - len(json.dumps(doc).encode())
    doc["note"] = "x" * pad
    data = json.dumps(doc).encode()
    assert len(data) == size, len(data)
    return data


GUNICORN_KA_THREADS = 4


def gunicorn_argv(port: int, *, workers: int = 1, worker_class: str = "sync") -> list[str]:
    # gthread keeps connections: idle ones for 60 s, as bench_http_clients.py's upstream does
    gthread = ["--threads", str(GUNICORN_KA_THREADS), "--keep-alive", "60"]
    threads = gthread if worker_class == "gthread" else []
    return [
        sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", worker_class, *threads,
        "-b", f"127.0.0.1:{port}", "--log-level", "warning", "bench.apps:legacy_app()",
    ]


def start_servers(
    servers: Servers, env: dict[str, str], workdir: Path, wanted: set[str], load_cpu: str = "1"
) -> dict[str, Server]:
    flags, _ = uvicorn_flags()
    uvicorn = [sys.executable, "-m", "uvicorn", *flags, "--host", "127.0.0.1"]
    started: dict[str, Server] = {}
    both = f"{servers.cpu},{load_cpu}" if servers.cpu is not None else None  # the multi-core servers

    def port() -> int:
        return free_port()

    if wanted & {"gunicorn", "gateway_remote", "naive_proxy"}:
        p = port()
        started["gunicorn"] = servers.start(
            "gunicorn", gunicorn_argv(p), port=p, env=env, ready_path="/healthz"
        )
    if wanted & {"gunicorn_ka", "gateway_remote_ka", "naive_proxy_ka"}:
        p = port()
        started["gunicorn_ka"] = servers.start(
            "gunicorn_ka", gunicorn_argv(p, worker_class="gthread"), port=p, env=env,
            ready_path="/healthz", cpu=load_cpu,
        )
    if "gunicorn_2w" in wanted:
        p = port()
        started["gunicorn_2w"] = servers.start(
            "gunicorn_2w", gunicorn_argv(p, workers=2), port=p, env=env, ready_path="/healthz", cpu=both
        )
    asgi = {
        "bare_fastapi": ("bench.apps:native_app", env, "/bench/native/items/1"),
        "a2wsgi_mount": ("bench.baselines:a2wsgi_mount", env, "/healthz"),
        "gateway": ("gateway.app:create_app", gateway_env(env, workdir, "gateway"), "/_gateway/health"),
        "gateway_shproc": (
            "gateway.app:create_app",
            gateway_env(env, workdir, "shproc", GATEWAY_SHADOW_PROCESSES="1"),
            "/_gateway/health",
        ),
    }
    for upstream_name, suffix in (("gunicorn", ""), ("gunicorn_ka", "_ka")):
        if upstream_name not in started:
            continue
        upstream = started[upstream_name].url
        asgi["gateway_remote" + suffix] = (
            "gateway.app:create_app",
            gateway_env(env, workdir, "remote" + suffix, GATEWAY_LEGACY_URL=upstream),
            "/_gateway/health",
        )
        asgi["naive_proxy" + suffix] = (
            "bench.baselines:naive_proxy",
            {**env, "BENCH_UPSTREAM_URL": upstream},
            "/healthz",
        )
    for name, (factory, server_env, ready) in asgi.items():
        if name in wanted:
            p = port()
            started[name] = servers.start(
                name,
                [*uvicorn, "--port", str(p), "--factory", factory],
                port=p,
                env=server_env,
                ready_path=ready,
            )
    if "bare_fastapi_2w" in wanted:
        p = port()
        started["bare_fastapi_2w"] = servers.start(
            "bare_fastapi_2w",
            [*uvicorn, "--port", str(p), "--workers", "2", "--factory", "bench.apps:native_app"],
            port=p, env=env, ready_path="/bench/native/items/1", cpu=both,
        )
    for name, workers, cpu in (("gateway_cli", 1, servers.cpu), ("gateway_cli_2w", 2, both)):
        if name in wanted:
            # what a user runs: `gateway serve` with its defaults (uvicorn's own logging included)
            p = port()
            started[name] = servers.start(
                name,
                [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", str(p),
                 "--workers", str(workers)],
                port=p,
                env=gateway_env(env, workdir, name),
                ready_path="/_gateway/health",
                cpu=cpu,
            )
    return started
