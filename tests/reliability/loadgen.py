"""A load generator process: N keep-alive connections sending GETs as fast as answers come.

Raw asyncio sockets and a minimal HTTP/1.1 reader, not httpx: a Python client costs about a
millisecond of CPU per request, and on a two-core machine the generator would otherwise
measure itself rather than the gateway.

Every request is recorded, answered or not, as one JSON line: time sent and received
(`time.time()`, comparable with the gateway's own clock), status (0 when there was no
answer), the X-Served-By header, the route, the sticky user id sent, and the error if any.
A connection that fails is recorded as a failed request and opened again. When the duration
is over no new request starts; those in flight get `--drain` seconds to finish. The summary
(counts and req/s) goes to stdout as one JSON object.

    python -m tests.reliability.loadgen --url http://127.0.0.1:8000 --out load.jsonl \\
        --route users.get=/api/users/{n} --route products.get=/api/products/{n}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

READY = "loadgen: running"


@dataclass(frozen=True)
class Target:
    route: str
    template: str  # "/api/users/{n}"


class Recorder:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.sent = 0
        self.answered = 0
        self.failed = 0
        self.statuses: dict[int, int] = {}

    def record(self, line: dict[str, object]) -> None:
        status = int(line["status"])  # type: ignore[call-overload]
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if line.get("error") is None:
            self.answered += 1
        else:
            self.failed += 1
        self.out.write(json.dumps(line, separators=(",", ":")) + "\n")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(parts)
    else:
        body = b""  # 1xx/204/304 carry none; anything else here is the server's bug
    return status, headers, body


async def connection(
    index: int, host: str, port: int, targets: Sequence[Target], ids: int, users: int,
    stop_at: float, timeout: float, rec: Recorder,
) -> None:
    rng = random.Random(index)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    n = 0
    while time.time() < stop_at:
        target = rng.choice(targets)
        path = target.template.format(n=rng.randint(1, ids))
        user = f"user-{rng.randrange(users)}"
        request_id = f"lg-{index}-{n}"
        n += 1
        raw = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nX-User-Id: {user}\r\n"
            f"X-Request-ID: {request_id}\r\n\r\n"
        ).encode()
        line: dict[str, object] = {"route": target.route, "path": path, "user": user, "rid": request_id}
        rec.sent += 1
        sent = time.time()
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            assert reader is not None
            writer.write(raw)
            status, headers, _ = await asyncio.wait_for(read_response(reader), timeout)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
            line |= {"sent": sent, "received": time.time(), "status": 0, "served_by": None,
                     "error": f"{type(exc).__name__}: {exc}"[:200]}
            rec.record(line)
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        line |= {"sent": sent, "received": time.time(), "status": status,
                 "served_by": headers.get("x-served-by"), "error": None}
        if headers.get("x-request-id") != request_id:
            line["error"] = f"answer to another request: {headers.get('x-request-id')!r}"
        rec.record(line)
        if headers.get("connection", "").lower() == "close" and writer is not None:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def run(args: argparse.Namespace, out: IO[str]) -> dict[str, object]:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    targets = [Target(*spec.split("=", 1)) for spec in args.route]
    # lines go to a buffered file: a write costs no more than appending to a list
    rec = Recorder(out)
    started = time.time()
    stop_at = started + args.duration
    print(READY, flush=True)
    tasks = [
        asyncio.create_task(connection(i, host, port, targets, args.ids, args.users, stop_at, args.timeout, rec))
        for i in range(args.connections)
    ]
    # the duration is over: no task starts a request after it, in-flight ones get to finish
    done, pending = await asyncio.wait(tasks, timeout=args.duration + args.drain)
    for task in pending:
        task.cancel()
    ended = time.time()
    crashed = [repr(t.exception()) for t in done if t.exception() is not None]
    return {
        "connections": args.connections,
        "started": started,
        "ended": ended,
        "duration_s": round(ended - started, 3),
        "sent": rec.sent,
        "answered": rec.answered,
        "failed": rec.failed,
        "unfinished": rec.sent - rec.answered - rec.failed,
        "statuses": {str(k): v for k, v in sorted(rec.statuses.items())},
        "req_per_s": round(rec.answered / max(ended - started, 1e-9), 1),
        "crashed_tasks": crashed + [f"{len(pending)} connections did not finish in time"] * bool(pending),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True, help="JSON lines, one per request")
    parser.add_argument("--route", action="append", required=True, help="ROUTE_ID=/path/{n}")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--ids", type=int, default=20, help="{n} is drawn from 1..ids")
    parser.add_argument("--users", type=int, default=200, help="distinct X-User-Id values")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request")
    parser.add_argument("--drain", type=float, default=35.0, help="seconds in-flight requests get at the end")
    args = parser.parse_args(argv)
    with open(args.out, "w") as out:
        summary = asyncio.run(run(args, out))
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
