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
