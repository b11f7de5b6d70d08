"""The legacy side as a remote server: requests proxied over one pooled httpx client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx

from gateway.asgi import REQUEST_ID_KEY, Receive, Scope, Send
from gateway.errors import send_error
from gateway.shadow_io import SHADOW_SCOPE_KEY

log = logging.getLogger("gateway.remote")

# RFC 9110 7.6.1: connection-specific headers are not forwarded by a proxy
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
    }
)


class RemoteLegacy:
    def __init__(self, base_url: str, *, timeout: float = 30.0, max_connections: int = 100) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        url = self.base_url + raw_path.decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        client_addr = scope.get("client")
        if client_addr:
            headers.append((b"x-forwarded-for", client_addr[0].encode()))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])
        request = self._client.build_request(
            scope["method"], url, headers=headers, content=_body(receive) if has_body else None
        )
        request_id = scope.get(REQUEST_ID_KEY)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            if scope.get(SHADOW_SCOPE_KEY):
                # a shadow copy: the candidate failed, which the shadow runner records as an
                # error; a 502 of the gateway's own would be compared as if legacy had said it
                raise
            await self._unanswered(send, exc, request_id)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except httpx.TransportError as exc:
            log.warning("legacy server %s broke off a response: %s", self.base_url, exc)
        finally:
            await response.aclose()

    async def _unanswered(self, send: Send, exc: httpx.TransportError, request_id: str | None) -> None:
        """The client's answer when the remote gave none: 504 on a timeout, 502 otherwise."""
        if isinstance(exc, httpx.TimeoutException):
            message = f"the legacy server at {self.base_url} did not answer in time"
            await send_error(send, 504, "legacy_timeout", message, request_id)
            return
        log.warning("legacy server %s unreachable: %s", self.base_url, exc)
        message = f"cannot reach the legacy server at {self.base_url}"
        await send_error(send, 502, "legacy_unreachable", message, request_id)

    async def aclose(self) -> None:
        await self._client.aclose()


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body"):
            return
