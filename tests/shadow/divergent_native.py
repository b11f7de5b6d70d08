"""The demo's native app with deliberate divergences, as a migration typically has them.

- GET /api/products/<id>: the field `name` is renamed `title`;
- prices are rounded to one decimal (a rounding change);
- GET /api/products/7 answers 404 although the product exists (a wrong status on one input);
- with DIVERGENT_NATIVE_SLOW=<seconds> every answer is that late; with
  DIVERGENT_NATIVE_RAISE=1 every request raises.
Set DIVERGENT_NATIVE_FIXED=1 to turn the divergences off.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from features.main import create_app as create_native


class Diverge:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if os.environ.get("DIVERGENT_NATIVE_RAISE") == "1":
            raise RuntimeError("the new code is broken")
        delay = float(os.environ.get("DIVERGENT_NATIVE_SLOW", "0"))
        if delay:
            await asyncio.sleep(delay)
        fixed = os.environ.get("DIVERGENT_NATIVE_FIXED") == "1"
        if not fixed and scope["path"] == "/api/products/7":
            body = b'{"error":{"code":"not_found","message":"product 7 not found"}}\n'
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = _rewrite(b"".join(chunks), fixed, scope["path"])
                    headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
                    headers.append((b"content-length", str(len(body)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


def _rewrite(body: bytes, fixed: bool, path: str) -> bytes:
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict):
        return body
    if not fixed and path.startswith("/api/products/") and "name" in data:
        data["title"] = data.pop("name")
    if not fixed and "price" in data:
        data["price"] = round(data["price"], 1)
    return (json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n").encode()


def create_app() -> Any:
    return Diverge(create_native())
