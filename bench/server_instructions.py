"""Instructions per request of real servers, under callgrind: `python -m bench.server_instructions`.

CPU time per request on a shared machine moves by ±20 % between identical runs; an
instruction count barely moves. Each variant (as in bench/cpu_per_request.py: `bare`,
`gateway`, `gateway@module:factory`, `...:NAME=value`) is started as a uvicorn process
under `valgrind --tool=callgrind` with instrumentation off until it is up, then warmed up
with 100 requests, its counters zeroed, driven with N requests over 32 keep-alive
connections (a small asyncio client: wrk is too fast for a server 50x slower), and dumped.
The dump's total over N is the figure; `callgrind_annotate <file>` shows where it went (the
files are kept in --out).

    python -m bench.server_instructions --path /api/users/1 -n 400 bare gateway
    python -m bench.server_instructions --post --path /bench/native/echo bare gateway

Valgrind runs one thread at a time, so thread hops and collections fall somewhat
differently than at full speed: repeat a variant to see the spread (±3 % on the DB route).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.configs import gateway_env, post_body, prepare, uvicorn_flags
from bench.cpu_per_request import READY, parse_variant
from bench.servers import Servers, free_port, signals_raise


async def load(port: int, path: str, n: int, connections: int = 32, body: bytes | None = None) -> None:
    sent = 0
    if body is None:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    else:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    async def client() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while sent < n:
            sent += 1
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{request[:4].decode().strip()} {path}: {head[:80]!r}")
            length = re.search(rb"content-length: (\d+)", head, re.I)
            await reader.readexactly(int(length.group(1)) if length else 0)
        writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))


def control(*args: str) -> None:
    done = subprocess.run(["callgrind_control", *args], capture_output=True, text=True, check=True)
    if "OK." not in done.stdout:  # it exits 0 whatever happened
        raise RuntimeError(f"callgrind_control {' '.join(args)}: {done.stdout}{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--path", default="/bench/native/items/1")
    parser.add_argument("--post", action="store_true", help="POST the 1 KB JSON body of bench/configs.py")
    parser.add_argument("-n", type=int, default=400, help="requests counted per variant")
    parser.add_argument("--pythonpath", default="", help="prepended for the servers (experiment factories)")
    parser.add_argument("--out", default=None, help="where the callgrind files are kept")
    args = parser.parse_args()
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="server-instructions-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    flags, _ = uvicorn_flags()
    with signals_raise(), tempfile.TemporaryDirectory(prefix="server-instructions-") as tmp:
        workdir = Path(tmp)
        env = prepare(workdir)
        if args.pythonpath:
            env["PYTHONPATH"] = args.pythonpath + os.pathsep + env["PYTHONPATH"]
        cpu = os.environ.get("BENCH_SERVER_CPU", "0")
        with Servers(workdir, cpu=cpu, cwd=Path(env["BENCH_SRC"])) as servers:
            body = post_body() if args.post else None
            method = "POST" if args.post else "GET"
            print(f"{method} {args.path}: instructions per request ({args.n} requests, 32 connections)")
            for i, spec in enumerate(args.variants):
                kind, factory, extra = parse_variant(spec)
                server_env = gateway_env(env, workdir, f"v{i}") if kind == "gateway" else dict(env)
                server_env.update(extra)
                port = free_port()
                out = out_dir / f"v{i}.out"
                argv = [
                    "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                    sys.executable, "-m", "uvicorn", *flags, "--host", "127.0.0.1", "--port", str(port),
                    "--factory", factory,
                ]  # fmt: skip
                server = servers.start(
                    f"v{i}", argv, port=port, env=server_env, ready_path=READY[kind], timeout=600
                )
                pid = str(server.process.pid)  # taskset execs valgrind: the same pid
                control("-i", "on", pid)
                asyncio.run(load(port, args.path, 100, body=body))
                control("-z", pid)
                started = time.monotonic()
                asyncio.run(load(port, args.path, args.n, body=body))
                control("--dump=counted", pid)
                servers.stop(server)
                counted = [
                    int(m.group(1))
                    for dump in out_dir.glob(f"v{i}.out.*")
                    if "Trigger: dump counted" in (text := dump.read_text(errors="replace"))
                    and (m := re.search(r"^summary: (\d+)", text, re.M))
                ]
                print(
                    f"  {spec:50} {sum(counted) / args.n:12,.0f}   "
                    f"({time.monotonic() - started:.0f} s; {out}.*)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
