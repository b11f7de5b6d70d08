"""The legacy side as a remote server: requests proxied over a pool of kept-alive
connections (gateway.http1)."""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import AsyncIterator

from gateway.asgi import REQUEST_ID_KEY, Receive, Scope, Send
from gateway.errors import send_error
from gateway.http1 import Pool, UpstreamError, parse_base_url
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
# not forwarded either: the gateway has read the whole body before it sends the request (the
# ASGI server sent the client its 100 Continue), so the upstream has nothing to wait for
NOT_FORWARDED = HOP_BY_HOP | {b"expect"}


_UNSAFE_IN_TARGET = re.compile(rb"[^\x21-\x7e]")


def _escape(match: re.Match[bytes]) -> bytes:
    return b"%%%02X" % match.group()[0]


def _request_line_safe(raw: bytes) -> str:
    """A path or query as the request line may carry it: a byte a server let through but HTTP
    does not allow there (a space, a control, non-ASCII) goes out percent-encoded, not raw."""
    if _UNSAFE_IN_TARGET.search(raw) is not None:
        raw = _UNSAFE_IN_TARGET.sub(_escape, raw)
    return raw.decode("ascii")


def _forwarded_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The request's headers for the legacy server, as one more proxy hop would send them.

    X-Forwarded-For gets the gateway's client appended to what came before (one header, so the
    server reads one chain); X-Forwarded-Proto is added only when no proxy in front said it:
    a second one with another value is what gunicorn refuses as contradictory (400)."""
    headers: list[tuple[bytes, bytes]] = []
    chain: list[bytes] = []
    has_proto = False
    for k, v in scope["headers"]:
        if k in NOT_FORWARDED:
            continue
        if k == b"x-forwarded-for":
            chain.append(v)
            continue
        if k == b"x-forwarded-proto":
            has_proto = True
        headers.append((k, v))
    client_addr = scope.get("client")
    if client_addr:
        chain.append(client_addr[0].encode())
    if chain:
        headers.append((b"x-forwarded-for", b", ".join(chain)))
    if not has_proto:
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    return headers


class RemoteLegacy:
    def __init__(self, base_url: str, *, timeout: float = 30.0, max_connections: int = 100) -> None:
        self.base_url = base_url.rstrip("/")
        host, port, self._prefix, tls = parse_base_url(self.base_url)
        context = ssl.create_default_context() if tls else None
        self._pool = Pool(host, port, timeout=timeout, max_connections=max_connections, tls=context)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        target = self._prefix + _request_line_safe(raw_path)
        if scope.get("query_string"):
            target += "?" + _request_line_safe(scope["query_string"])
        headers = _forwarded_headers(scope)
        has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])
        # the body is read whole (the dispatcher bounds it by GATEWAY_MAX_BODY_BYTES): sent
        # with its length, and sent again if a kept-alive connection turns out to be closed
        body = b"".join([chunk async for chunk in _body(receive)]) if has_body else b""
        request_id = scope.get(REQUEST_ID_KEY)
        try:
            response = await self._pool.request(scope["method"], target, headers, body)
        except UpstreamError as exc:
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
                    "status": response.status,
                    "headers": [(k, v) for k, v in response.headers if k not in HOP_BY_HOP],
                }
            )
            more = True
            while more:
                chunk, more = await response.read()
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
        except UpstreamError as exc:
            log.warning("legacy server %s broke off a response: %s", self.base_url, exc)
        finally:
            response.release()

    async def _unanswered(self, send: Send, exc: UpstreamError, request_id: str | None) -> None:
        """The client's answer when the remote gave none: 504 on a timeout, 502 otherwise."""
        if exc.timeout:
            message = f"the legacy server at {self.base_url} did not answer in time"
            await send_error(send, 504, "legacy_timeout", message, request_id)
            return
        log.warning("legacy server %s unreachable: %s", self.base_url, exc)
        message = f"cannot reach the legacy server at {self.base_url}"
        await send_error(send, 502, "legacy_unreachable", message, request_id)

    async def aclose(self) -> None:
        await self._pool.aclose()


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body"):
            return
