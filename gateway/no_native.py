"""The new side of a gateway that has migrated nothing yet: `GATEWAY_NATIVE_APP=gateway.no_native:app`.

It has no routes (so `check-map` and `routes` list none, and any `owner: new` entry is reported
as served by nothing) and answers whatever reaches it, which only a mistaken map sends, with 404.
"""

from __future__ import annotations

from gateway.asgi import Receive, Scope, Send


class NoNativeApp:
    routes: tuple[object, ...] = ()  # Starlette-style, for the gateway's inventory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        body = b'{"error": "no native app is configured (GATEWAY_NATIVE_APP=gateway.no_native:app)"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": body})


app = NoNativeApp()
