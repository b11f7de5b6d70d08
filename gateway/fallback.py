"""Fallback: when the new side fails a safe request, legacy answers it instead.

The new side's answer is held back only until its status is known: a 5xx (when configured)
is swallowed, an exception before any response or no response within `timeout_ms` is
caught, and legacy then answers the same request. Once a non-5xx response has started it
goes to the client as usual. Only safe methods fall back: a write is never replayed. A
shadowed request falls back the same way; its comparison is then skipped (`owner_fell_back`).

A fallback is told (`on_fallback`) before legacy answers, so that the answer can say so
(`X-Gateway-Fallback: <reason>`): a client or a test must be able to tell "the new side failed
and legacy stood in" from "this user is on legacy".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gateway.asgi import ASGIApp, Message, Receive, Scope, Send
from gateway.rollout_schema import FallbackOn, FallbackSettings
from gateway.shadow_io import read_body, replay

log = logging.getLogger("gateway.fallback")

MAX_FALLBACK_BODY = 1024 * 1024  # safe requests rarely carry a body; a bigger one cannot be replayed
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
) -> str | None:
    """Serve from the new side, or from legacy after a failure; returns the failure, if any."""
    body = await read_body(receive, MAX_FALLBACK_BODY)
    if not body.complete:
        await native(native_scope, replay(body, receive), send_new)
        return None
    started = asyncio.Event()
    failed_5xx = False

    async def held_send(message: Message) -> None:
        nonlocal failed_5xx
        if failed_5xx:
            return  # the rest of a 5xx answer nobody will see
        if message["type"] == "http.response.start":
            started.set()
            if int(message["status"]) >= 500 and FallbackOn.SERVER_ERROR in settings.on:
                failed_5xx = True
                return
        await send_new(message)

    task = asyncio.ensure_future(native(native_scope, replay(body, receive), held_send))
    waiter = asyncio.ensure_future(started.wait())
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
    elif failed_5xx:
        reason = "5xx"
        with contextlib.suppress(Exception):  # frameworks re-raise after sending their 500
            await task
    elif task.done() and not started.is_set():
        exc = task.exception()
        if exc is None or FallbackOn.EXCEPTION not in settings.on:
            await task  # re-raises, or the app returned without answering
            return None
        reason = "exception"
        log.warning("new side raised %s: %s; legacy answers", type(exc).__name__, exc)
    else:
        await task  # a good answer is streaming to the client
        return None
    native_scope[FELL_BACK_KEY] = reason
    if on_fallback is not None:
        on_fallback(reason)
    await legacy(legacy_scope, replay(body, None), send_legacy)
    return reason
