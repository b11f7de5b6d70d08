"""What a team would run instead of the gateway, for the ratios in RESULTS.md.

- `a2wsgi_mount`: the plain bridge, a FastAPI app with the legacy Flask app mounted at "/"
  through `a2wsgi.WSGIMiddleware` (its defaults), nothing else;
- `a2wsgi_app`: the legacy Flask app alone through `a2wsgi.WSGIMiddleware`, no FastAPI: a
  keep-alive upstream for remote mode (uvicorn keeps connections open, gunicorn sync does not);
- `naive_proxy`: a FastAPI app forwarding every request to a remote legacy server
  (BENCH_UPSTREAM_URL) with one plain `httpx.AsyncClient`: the remote-mode baseline.
"""

# no `from __future__ import annotations`: FastAPI reads the handler's annotations, which name
# classes imported inside the factory
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
)


def a2wsgi_mount() -> Any:
    from a2wsgi import WSGIMiddleware
    from fastapi import FastAPI

    from bench.apps import legacy_app

    app = FastAPI()
    app.mount("/", WSGIMiddleware(legacy_app()))
    return app


def a2wsgi_app() -> Any:
    from a2wsgi import WSGIMiddleware

    from bench.apps import legacy_app

    return WSGIMiddleware(legacy_app())


def naive_proxy() -> Any:
    import httpx
    from fastapi import FastAPI, Request, Response

    upstream = os.environ["BENCH_UPSTREAM_URL"].rstrip("/")
    clients: list[httpx.AsyncClient] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=upstream) as client:
            clients.append(client)
            yield

    app = FastAPI(lifespan=lifespan)

    @app.api_route("/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def forward(path: str, request: Request) -> Response:
        headers = [(k, v) for k, v in request.headers.items() if k not in HOP_BY_HOP]
        answer = await clients[0].request(
            request.method,
            request.url.path,
            params=request.url.query or None,
            headers=headers,
            content=await request.body(),
        )
        kept = {k: v for k, v in answer.headers.items() if k not in HOP_BY_HOP and k != "content-length"}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    return app
