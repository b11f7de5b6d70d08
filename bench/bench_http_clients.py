"""Remote mode's HTTP client against the maintained ones, in client CPU per request:
`.venv/bin/python -m bench.bench_http_clients [--rounds 3] [--requests 2000]` (about four
minutes; `make bench` runs it with `--json`, bench/extras.py; never run by pytest).

The rule: hand-written code a maintained library already does has to earn its place with
numbers. Each client runs in this process, pinned to one core (`--client-cpu`, 0), against a
keep-alive upstream serving `bench.apps:legacy_app()` pinned to the other (`--upstream-cpu`, 1):

- `gunicorn_gthread`: gunicorn `-w 1 -k gthread --threads 4 --keep-alive 60`;
- `uvicorn_a2wsgi`: uvicorn serving the Flask app through `a2wsgi.WSGIMiddleware`
  (`bench.baselines:a2wsgi_app`), `--timeout-keep-alive 60`.

The clients, each one long-lived object per upstream, used as a proxy uses them (the request's
headers as bytes, the answer streamed chunk by chunk, its raw headers filtered for ASGI):

- `http1`: `gateway.http1.Pool`, as gateway/remote.py builds it;
- `httpx`: one `httpx.AsyncClient` with `httpx.Limits(max_keepalive_connections=8,
  max_connections=8, keepalive_expiry=60)` (8: its cheapest pool size, see HTTPX_LIMIT),
  `send(stream=True)` and `aiter_raw()`;
- `aiohttp`: one `ClientSession` on `TCPConnector(limit=64, keepalive_timeout=60)`,
  `auto_decompress=False`, `content.iter_any()`;
- for information, with `--clients`: `httpcore` (httpx's transport without its client layer), and `remote`
  (gateway.remote.RemoteLegacy called with an ASGI scope: http1 plus the gateway's own
  remote path, without uvicorn and the dispatcher).

Each measurement is `--requests` requests, `--concurrency` in flight, for three workloads (a
small JSON GET, a 1 KiB JSON POST echoed, a chunked answer of 16 x 1 KiB). The figure that
decides is this process's CPU time per request (`time.process_time`), which other work on a
shared machine moves much less than the wall clock; req/s is given for information. Rounds
interleave the clients (the order rotates round by round); the best round of each counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.apps import STREAM_CHUNK, STREAM_CHUNKS
from bench.configs import post_body, prepare, uvicorn_flags
from bench.procstat import cpu_seconds
from bench.servers import Server, Servers, free_port, signals_raise

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade"})
LIMIT = 64  # aiohttp's connections: more than the requests in flight
# httpx is tuned down: httpcore's pool scans every connection (a poll() syscall for each idle
# one) whenever a request is assigned, so its cost grows with the pool. Swept with 32 requests
# in flight against gunicorn gthread: 8 connections 1,110 µs CPU/req, 16 1,530, 32 and 64
# 2,720; 2 and 4 are slower again (requests queue in the pool).
HTTPX_LIMIT = 8
KEEPALIVE_S = 60

WORKLOADS: dict[str, tuple[str, str]] = {
    "get": ("GET", "/bench/legacy/items/1"),
    "post": ("POST", "/bench/legacy/echo"),
    "stream": ("GET", "/bench/legacy/stream"),
}


def upstream_commands(port: int) -> dict[str, list[str]]:
    flags, _ = uvicorn_flags()
    return {
        "gunicorn_gthread": [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "1",
            "-k",
            "gthread",
            "--threads",
            "4",
            "--keep-alive",
            str(KEEPALIVE_S),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "bench.apps:legacy_app()",
        ],
        "uvicorn_a2wsgi": [
            sys.executable,
            "-m",
            "uvicorn",
            *flags,
            "--timeout-keep-alive",
            str(KEEPALIVE_S),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--factory",
            "bench.baselines:a2wsgi_app",
        ],
    }


Headers = list[tuple[bytes, bytes]]


class Client(Protocol):
    async def fetch(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, int]: ...

    async def aclose(self) -> None: ...


class Http1Client:
    def __init__(self, host: str, port: int) -> None:
        from gateway.http1 import Pool

        self.pool = Pool(host, port, timeout=30.0, max_connections=100)  # remote.py's defaults

    async def fetch(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, int]:
        response = await self.pool.request(method, target, headers, body)
        try:
            kept = [(k, v) for k, v in response.headers if k not in HOP_BY_HOP]
            size, more = 0, True
            while more:  # as remote.py reads it: each piece with whether more is to come
                chunk, more = await response.read()
                size += len(chunk)
            return response.status, kept, size
        finally:
            response.release()

    async def aclose(self) -> None:
        await self.pool.aclose()


class RemoteClient:
    """gateway.remote.RemoteLegacy called as the dispatcher calls it (ASGI scope, receive and
    send), for the gateway's own remote path: the forwarded headers, the body read, the
    answer's header filter and its ASGI messages, on top of http1."""

    def __init__(self, host: str, port: int) -> None:
        from gateway.remote import RemoteLegacy

        self.remote = RemoteLegacy(f"http://{host}:{port}")

    async def fetch(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, int]:
        path, _, query = target.partition("?")
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "scheme": "http",
            "client": ("127.0.0.1", 40000),
            "headers": [(k, v) for k, v in headers if not k.startswith(b"x-forwarded")]
            + ([(b"content-length", str(len(body)).encode())] if body else []),
        }
        answer: dict[str, Any] = {"size": 0}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"], answer["headers"] = message["status"], message["headers"]
            else:
                answer["size"] += len(message["body"])

        await self.remote(scope, receive, send)
        return answer["status"], answer["headers"], answer["size"]

    async def aclose(self) -> None:
        await self.remote.aclose()


class HttpxClient:
    def __init__(self, host: str, port: int) -> None:
        import httpx

        limits = httpx.Limits(
            max_keepalive_connections=HTTPX_LIMIT, max_connections=HTTPX_LIMIT, keepalive_expiry=KEEPALIVE_S
        )
        self.client = httpx.AsyncClient(
            base_url=f"http://{host}:{port}", limits=limits, timeout=30.0, trust_env=False
        )

    async def fetch(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, int]:
        request = self.client.build_request(method, target, headers=headers, content=body or None)
        response = await self.client.send(request, stream=True)
        try:
            kept = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
            return response.status_code, kept, size
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()


class HttpcoreClient:
    def __init__(self, host: str, port: int) -> None:
        import httpcore

        self.base = f"http://{host}:{port}"
        self.pool = httpcore.AsyncConnectionPool(
            max_connections=HTTPX_LIMIT, max_keepalive_connections=HTTPX_LIMIT, keepalive_expiry=KEEPALIVE_S
        )

    async def fetch(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, int]:
        async with self.pool.stream(method, self.base + target, headers=headers, content=body) as response:
            kept = [(k.lower(), v) for k, v in response.headers if k.lower() not in HOP_BY_HOP]
            size = 0
            async for chunk in response.aiter_stream():
                size += len(chunk)
            return response.status, kept, size

    async def aclose(self) -> None:
        await self.pool.aclose()


class AiohttpClient:
    def __init__(self, host: str, port: int) -> None:
        import aiohttp

        self.base = f"http://{host}:{port}"
        connector = aiohttp.TCPConnector(limit=LIMIT, limit_per_host=LIMIT, keepalive_timeout=KEEPALIVE_S)
        self.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=30),
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        )

    async def fetch(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, int]:
        # aiohttp takes str headers: the decoding is part of what a proxy on it would pay
        sent = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        async with self.session.request(
            method, self.base + target, headers=sent, data=body or None, allow_redirects=False
        ) as response:
            kept = [(k.lower(), v) for k, v in response.raw_headers if k.lower() not in HOP_BY_HOP]
            size = 0
            async for chunk in response.content.iter_any():
                size += len(chunk)
            return response.status, kept, size

    async def aclose(self) -> None:
        await self.session.close()


CLIENTS: dict[str, Callable[[str, int], Client]] = {
    "http1": Http1Client,
    "remote": RemoteClient,
    "httpx": HttpxClient,
    "aiohttp": AiohttpClient,
    "httpcore": HttpcoreClient,
}


@dataclass
class Run:
    upstream: str
    workload: str
    client: str
    requests: int
    cpu_s: float
    wall_s: float
    upstream_cpu_s: float

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.requests * 1e6

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s


def tree_cpu_s(server: Server) -> float:
    return cpu_seconds(server.pids())


def request_headers(port: int, method: str) -> Headers:
    """What remote.py forwards for a typical client request."""
    headers = [
        (b"host", f"127.0.0.1:{port}".encode()),
        (b"user-agent", b"bench/1.0"),
        (b"accept", b"*/*"),
        (b"x-request-id", b"0f6c1f0e8d3b4b6f9b0c2e7a5d4c3b2a"),
        (b"x-forwarded-for", b"127.0.0.1"),
        (b"x-forwarded-proto", b"http"),
    ]
    if method == "POST":
        headers.append((b"content-type", b"application/json"))
    return headers


async def drive(
    client: Client,
    method: str,
    target: str,
    headers: Headers,
    body: bytes,
    total: int,
    concurrency: int,
    expect: int | None,
) -> None:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            status, _, size = await client.fetch(method, target, headers, body)
            if status != 200 or (expect is not None and size != expect):
                raise RuntimeError(f"{method} {target}: status {status}, {size} bytes (expected {expect})")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def bench(args: argparse.Namespace, servers: dict[str, Server]) -> list[Run]:
    body = post_body()
    expect = {"get": None, "post": None, "stream": STREAM_CHUNKS * len(STREAM_CHUNK)}
    clients = {
        (up, name): CLIENTS[name]("127.0.0.1", server.port)
        for up, server in servers.items()
        for name in args.clients
    }
    runs: list[Run] = []

    async def once(up: str, workload: str, name: str, total: int) -> Run:
        method, target = WORKLOADS[workload]
        headers = request_headers(servers[up].port, method)
        sent = body if method == "POST" else b""
        up0, cpu0, wall0 = tree_cpu_s(servers[up]), time.process_time(), time.perf_counter()
        await drive(
            clients[up, name], method, target, headers, sent, total, args.concurrency, expect[workload]
        )
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        return Run(up, workload, name, total, cpu, wall, tree_cpu_s(servers[up]) - up0)

    try:
        for up in servers:  # warm-up: connections opened, code paths and caches warm
            for workload in args.workloads:
                for name in args.clients:
                    await once(up, workload, name, max(200, args.requests // 10))
        for r in range(args.rounds):
            for up in servers:
                for workload in args.workloads:
                    order = list(args.clients)
                    shift = r % len(order)
                    order = order[shift:] + order[:shift]
                    if r % 2:
                        order.reverse()
                    for name in order:
                        run = await once(up, workload, name, args.requests)
                        runs.append(run)
                        upstream_us = run.upstream_cpu_s / run.requests * 1e6
                        print(
                            f"round {r + 1} {up:17} {workload:6} {name:8} {run.cpu_us:7.1f} µs CPU/req "
                            f"{run.rps:7.0f} req/s  upstream {upstream_us:6.0f} µs/req",
                            file=sys.stderr,
                            flush=True,
                        )
    finally:
        for client in clients.values():
            await client.aclose()
    return runs


def summarize(runs: list[Run], clients: list[str]) -> tuple[str, list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    keys = sorted({(r.upstream, r.workload) for r in runs}, key=lambda k: (k[0], list(WORKLOADS).index(k[1])))
    for up, workload in keys:
        best: dict[str, float] = {}
        for name in clients:
            mine = [r for r in runs if (r.upstream, r.workload, r.client) == (up, workload, name)]
            if not mine:
                continue
            best[name] = min(r.cpu_us for r in mine)
            rows.append(
                {
                    "upstream": up,
                    "workload": workload,
                    "client": name,
                    "cpu_us_best": round(best[name], 1),
                    "cpu_us_median": round(statistics.median(r.cpu_us for r in mine), 1),
                    "rps_median": round(statistics.median(r.rps for r in mine)),
                    "upstream_cpu_us_median": round(
                        statistics.median(r.upstream_cpu_s / r.requests * 1e6 for r in mine)
                    ),
                    "rounds": len(mine),
                }
            )
        for row in rows:
            if (row["upstream"], row["workload"]) == (up, workload) and "http1" in best:
                row["vs_http1"] = round(row["cpu_us_best"] / best["http1"], 2)
    lines = [
        "| upstream | workload | client | CPU µs/req (best) | median | x http1 | req/s (median) "
        "| upstream CPU µs/req |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['upstream']} | {row['workload']} | {row['client']} | {row['cpu_us_best']:.0f} | "
            f"{row['cpu_us_median']:.0f} | {row.get('vs_http1', float('nan')):.2f} | {row['rps_median']:,} | "
            f"{row['upstream_cpu_us_median']:,} |"
        )
    return "\n".join(lines), rows


def versions() -> str:
    from importlib.metadata import version

    names = ("httpx", "httpcore", "aiohttp", "httptools", "uvloop", "gunicorn", "uvicorn", "a2wsgi", "flask")
    return ", ".join(f"{n} {version(n)}" for n in names)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    # also: httpcore (httpx's transport alone), remote (gateway/remote.py's whole path)
    parser.add_argument("--clients", default="http1,httpx,aiohttp")
    parser.add_argument("--upstreams", default="gunicorn_gthread,uvicorn_a2wsgi")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--client-cpu", default="0")
    parser.add_argument("--upstream-cpu", default="1")
    parser.add_argument("--rows", type=Path, help="write the rows there too, as JSON")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout, for bench/extras.py")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1,500 requests")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests = min(args.rounds, 2), min(args.requests, 1500)
    args.clients = args.clients.split(",")
    args.workloads = args.workloads.split(",")
    os.sched_setaffinity(0, {int(args.client_cpu)})

    import uvloop  # the loop the gateway runs on under uvicorn

    with tempfile.TemporaryDirectory(prefix="bench-clients-") as tmp, signals_raise():
        workdir = Path(tmp)
        env = prepare(workdir)
        src = Path(env["BENCH_SRC"])
        with Servers(workdir, cpu=args.upstream_cpu, cwd=src) as pool:
            servers: dict[str, Server] = {}
            for up in args.upstreams.split(","):
                port = free_port()
                servers[up] = pool.start(
                    up, upstream_commands(port)[up], port=port, env=env, ready_path="/healthz"
                )
            started = time.time()
            load0 = os.getloadavg()
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runs = runner.run(bench(args, servers))
    table, rows = summarize(runs, args.clients)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    about = (
        f"{args.rounds} rounds x {args.requests} requests, {args.concurrency} in flight; client on CPU "
        f"{args.client_cpu}, upstream on CPU {args.upstream_cpu}; {time.time() - started:.0f} s; "
        f"load average before {' '.join(f'{x:.2f}' for x in load0)}, after {load}\n\n"
        f"versions: python {sys.version.split()[0]}, {versions()}"
    )
    if args.rows:
        args.rows.write_text(json.dumps(rows, indent=1) + "\n")
    if not args.json:
        print(table)
        print("\n" + about)
        return
    markdown = (
        "The client process's CPU per request (best of the rounds), our HTTP/1.1 client "
        "(`gateway/http1.py`) against maintained libraries tuned for keep-alive; a library "
        f"within {KEEP_MARGIN - 1:.0%} of ours would replace it. `python -m bench.bench_http_clients`.\n\n"
        f"{table}\n\n{about}"
    )
    print(json.dumps({"title": "Remote mode's HTTP client against httpx and aiohttp",
                      "ratios": library_ratios(rows), "markdown": markdown}))


KEEP_MARGIN = 1.10  # a library that costs less than this times our client's CPU replaces it


def library_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per upstream and workload: the cheapest library's CPU per request over http1's."""
    out = []
    for up, workload in dict.fromkeys((r["upstream"], r["workload"]) for r in rows):
        here = [r for r in rows if (r["upstream"], r["workload"]) == (up, workload)]
        mine = {r["client"]: r["cpu_us_best"] for r in here}
        libraries = {c: v for c, v in mine.items() if c in ("httpx", "aiohttp")}
        if "http1" not in mine or not libraries:
            continue
        cheapest = min(libraries, key=libraries.__getitem__)
        out.append({
            "name": f"cheapest library ({cheapest}) / our client, client CPU per request",
            "workload": f"{up}, {workload}", "value": round(libraries[cheapest] / mine["http1"], 2),
            "op": ">=", "target": KEEP_MARGIN,
        })
    return out


if __name__ == "__main__":
    main()
