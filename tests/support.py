"""Waiting helpers: tests poll for a condition with a deadline instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx


async def eventually(condition: Callable[[], bool], timeout: float = 3.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.01)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition", step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        time.sleep(step)


def asgi_client(app: Any, base_url: str = "http://gw") -> httpx.AsyncClient:
    """An in-process client for an ASGI app (no lifespan is run: start it yourself)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


# Canary credentials: tests/reliability/test_no_secret_leaks.py sends them through shadowed
# routes (headers, cookies, JSON and form fields, query strings), and at the end of every run
# tests/conftest.py fails the session if any of them, or a session cookie a backend set
# (LEARNT_SECRETS), is found in a parity store or a gateway log the run wrote. Letters,
# digits and dashes only: URL and JSON encoding leave them as they are, so a scan of the raw
# bytes finds them.
SECRET_BEARER_TOKEN = "sk-canary-bearer-7f3a9c1e5b20"
SECRET_BEARER = f"Bearer {SECRET_BEARER_TOKEN}"
SECRET_COOKIE = "ck-canary-cookie-4d8e2b6a1f93"
SECRET_PASSWORD = "pw-canary-password-9b1c7e3d5a64"
SECRET_TOKEN = "tk-canary-token-2e6f8a4c0d17"
SECRET_API_KEY = "ak-canary-apikey-5c3b9d7f1e82"
CANARY_SECRETS = (SECRET_BEARER_TOKEN, SECRET_COOKIE, SECRET_PASSWORD, SECRET_TOKEN, SECRET_API_KEY)
LEARNT_SECRETS: set[str] = set()  # e.g. the session cookie a login answered with


def secrets_to_find() -> tuple[str, ...]:
    return CANARY_SECRETS + tuple(sorted(LEARNT_SECRETS))


class ProcessCpu:
    """A fake process CPU clock for a fake wall clock (anything with `.now`): the process used
    `busy` of a core since it was last read."""

    def __init__(self, clock: Any, busy: float = 0.0) -> None:
        self.clock, self.busy, self.used, self.at = clock, busy, 0.0, clock.now

    def __call__(self) -> float:
        self.used += (self.clock.now - self.at) * self.busy
        self.at = self.clock.now
        return self.used
