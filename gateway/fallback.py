"""Fallback: when the new side fails a safe request, legacy answers it instead.

The new side's answer is held back until it is known good: a 5xx (when configured) is
swallowed, an exception before any response or no response within `timeout_ms` is caught,
and legacy then answers the same request. Under `5xx` too, a 2xx whose Content-Type says
JSON (application/json, or any +json type) is held whole until its body parses, and one
that does not parse is a failure like a 500 (`invalid_json`): the new side's own header is
the declaration, so nothing has to be configured, and a client reading that header would
choke on the body. Holding is bounded: an answer over MAX_CHECKED_BODY (by Content-Length,
or as it arrives), or compressed, goes on as it comes, unchecked, and is counted
(`on_unchecked`). Any other answer goes to the client as soon as it starts. Only safe
methods fall back: a write is never replayed. A shadowed request falls back the same way;
its comparison is then skipped (`owner_fell_back`).

A fallback is told (`on_fallback`) before legacy answers, so that the answer can say so
(`X-Gateway-Fallback: <reason>`): a client or a test must be able to tell "the new side failed
and legacy stood in" from "this user is on legacy".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable

from gateway.asgi import ASGIApp, Message, Receive, Scope, Send
from gateway.rollout_schema import FallbackOn, FallbackSettings
from gateway.shadow_io import read_body, replay

log = logging.getLogger("gateway.fallback")

MAX_FALLBACK_BODY = 1024 * 1024  # safe requests rarely carry a body; a bigger one cannot be replayed
# the largest JSON answer held back until it parses; a larger one streams unchecked
MAX_CHECKED_BODY = 1024 * 1024
# set in the new side's scope when legacy answered instead (the shadow runner reads it)
FELL_BACK_KEY = "gateway.fell_back"
# on legacy's answer when it stood in for a failed new side; its value is the reason
FALLBACK_HEADER = b"x-gateway-fallback"


async def serve_with_fallback(
    *,
    native: ASGIApp,
    native_scope: Scope,
    legacy: ASGIApp,
    legacy_scope: Scope,
    receive: Receive,
    send_new: Send,
    send_legacy: Send,
    settings: FallbackSettings,
    on_fallback: Callable[[str], None] | None = None,
    on_unchecked: Callable[[str], None] | None = None,
) -> str | None:
    """Serve from the new side, or from legacy after a failure; returns the failure, if any."""
    body = await read_body(receive, MAX_FALLBACK_BODY)
    if not body.complete:
        await native(native_scope, replay(body, receive), send_new)
        return None
    gate = _Gate(send_new, settings, native_scope.get("method") != "HEAD", on_unchecked)
    task = asyncio.ensure_future(native(native_scope, replay(body, receive), gate.send))
    waiter = asyncio.ensure_future(gate.started.wait())
    timeout = settings.timeout_ms / 1000 if FallbackOn.TIMEOUT in settings.on else None
    try:
        done, _ = await asyncio.wait({task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    reason: str | None = None
    if not done:
        reason = "timeout"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    elif gate.failed == "5xx":
        reason = "5xx"
        with contextlib.suppress(Exception):  # frameworks re-raise after sending their 500
            await task
    elif task.done() and not gate.started.is_set():
        exc = task.exception()
        if exc is None or FallbackOn.EXCEPTION not in settings.on:
            await task  # re-raises, or the app returned without answering
            return None
        reason = "exception"
        log.warning("new side raised %s: %s; legacy answers", type(exc).__name__, exc)
    else:
        # a good answer is streaming to the client, or a JSON one is held until it is whole
        try:
            await task
        except Exception:
            if gate.failed is None:
                await gate.release(more=True)  # what was held goes out, then the break
                raise
        await gate.release(more=True)  # the app ended without finishing its body: what it sent goes out
        if gate.failed is None:
            return None
        reason = gate.failed
        log.warning("new side answered %s with a body that is not JSON; legacy answers", gate.status_line)
    native_scope[FELL_BACK_KEY] = reason
    if on_fallback is not None:
        on_fallback(reason)
    await legacy(legacy_scope, replay(body, None), send_legacy)
    return reason


class _Gate:
    """The new side's `send`: passes its answer on, or holds it while it may still fail."""

    def __init__(
        self,
        send: Send,
        settings: FallbackSettings,
        check_json: bool,
        on_unchecked: Callable[[str], None] | None,
    ) -> None:
        self._send = send
        self._on_5xx = FallbackOn.SERVER_ERROR in settings.on
        self._check_json = check_json and self._on_5xx
        self._on_unchecked = on_unchecked
        self.started = asyncio.Event()  # the status is known (the answer may still be held)
        self.failed: str | None = None  # "5xx" or "invalid_json": nothing of it reaches the client
        self.status_line = ""
        self._start: Message | None = None  # the held answer: its start, then its body
        self._held: list[bytes] = []
        self._size = 0

    async def send(self, message: Message) -> None:
        if self.failed is not None:
            return  # the rest of an answer nobody will see
        kind = message["type"]
        if kind == "http.response.start":
            self.started.set()
            status = int(message["status"])
            if status >= 500 and self._on_5xx:
                self.failed = "5xx"
                return
            if self._check_json and 200 <= status < 300 and status not in (204, 205):
                media, verdict = _json_check(message.get("headers", ()))
                if verdict == "hold":
                    self._start, self.status_line = message, f"{status} ({media})"
                    return
                if verdict != "not_json":
                    self._unchecked(verdict)
            await self._send(message)
        elif self._start is not None and kind == "http.response.body":
            chunk = bytes(message.get("body", b""))
            self._held.append(chunk)
            self._size += len(chunk)
            if not message.get("more_body"):
                if _parses(b"".join(self._held)):
                    await self.release(more=False)
                else:
                    self.failed = "invalid_json"
                    self._start, self._held = None, []
            elif self._size > MAX_CHECKED_BODY:
                self._unchecked("too_large")
                await self.release(more=True)
        else:
            await self.release(more=True)  # e.g. a file sent by path: it goes on as it is
            await self._send(message)

    def _unchecked(self, reason: str) -> None:
        if self._on_unchecked is not None:
            self._on_unchecked(reason)

    async def release(self, *, more: bool) -> None:
        """Send on what is held; `more`: the answer is not over (the rest, or a break, follows)."""
        start, self._start = self._start, None
        if start is None:
            return
        held, self._held = b"".join(self._held), []
        await self._send(start)
        if held or not more:
            await self._send({"type": "http.response.body", "body": held, "more_body": more})


def _json_check(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str]:
    """The media type, and "hold" for a JSON answer to check, "not_json", or why a JSON
    answer cannot be checked: "encoded" (compressed) or "too_large" (by its Content-Length)."""
    media = encoding = b""
    length: int | None = None
    for name, value in headers:
        name = bytes(name).lower()
        if name == b"content-type":
            media = bytes(value).split(b";", 1)[0].strip().lower()
        elif name == b"content-encoding":
            encoding = bytes(value).strip().lower()
        elif name == b"content-length" and bytes(value).strip().isdigit():
            length = int(value)
    text = media.decode("latin-1")
    if media != b"application/json" and not media.endswith(b"+json"):
        return text, "not_json"
    if encoding and encoding != b"identity":
        return text, "encoded"
    if length is not None and length > MAX_CHECKED_BODY:
        return text, "too_large"
    return text, "hold"


def _parses(body: bytes) -> bool:
    try:
        json.loads(body)  # bytes: UTF-8, -16 or -32, as RFC 8259 allows
    except ValueError:  # not JSON, or not text
        return False
    except RecursionError:  # valid, but nested deeper than this parser goes: not for us to refuse
        return True
    return True
