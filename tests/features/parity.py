"""Send one request to the legacy Flask app and to the native app; say how the answers differ."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread
import httpx
from flask import Flask

from legacy_flask.app import create_app as create_legacy_app
from legacy_flask.db import get_engine
from tests.features.helpers import SECRET

ACCOUNTS = {
    "admin": ("admin@example.com", "admin-password"),
    "alice": ("alice@example.com", "alice-password"),
    "sam": ("sam@example.com", "staff-password"),
}
# Flask adds these to every rule on its own; the native app answers neither
AUTOMATIC_METHODS = {"HEAD", "OPTIONS"}
# "now" on each side: a write on the legacy side and the same write on the native side
# happen within this many seconds of each other
CLOCK_SLACK = 5.0


@contextmanager
def legacy_client(url: str, upload_dir: str) -> Iterator[httpx.Client]:
    app: Flask = create_legacy_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": SECRET,
            "UPLOAD_DIR": upload_dir,
            "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        }
    )
    transport = httpx.WSGITransport(app=app)
    try:
        with httpx.Client(transport=transport, base_url="http://legacy") as client:
            yield client
    finally:
        get_engine(app).dispose()


def log_in(legacy: httpx.Client, email: str, password: str) -> str:
    """The `session` cookie the legacy app sets on a JSON login."""
    response = legacy.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    cookie = response.cookies.get("session")
    legacy.cookies.clear()
    assert cookie
    return cookie


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    who: str | None = None  # a key of the cookies passed to `send`

    def kwargs(self, cookie: str | None) -> dict[str, Any]:
        headers = dict(self.headers)
        if cookie is not None:
            headers["cookie"] = f"session={cookie}"
        kwargs: dict[str, Any] = {"headers": headers}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.content is not None:
            kwargs["content"] = self.content
        return kwargs

    def __str__(self) -> str:
        who = f" as {self.who}" if self.who else ""
        body = f" {self.json!r}" if self.json is not None else ""
        body += f" {self.content!r}" if self.content is not None else ""
        return f"{self.method} {self.path}{who}{body}"


async def send_both(
    legacy: httpx.Client,
    native: httpx.AsyncClient,
    call: Call,
    legacy_cookie: str | None,
    native_cookie: str | None,
) -> tuple[httpx.Response, httpx.Response]:
    """The legacy (WSGI, blocking) call runs on a worker thread, as a2wsgi would run it."""
    a = await anyio.to_thread.run_sync(
        lambda: legacy.request(call.method, call.path, **call.kwargs(legacy_cookie))
    )
    b = await native.request(call.method, call.path, **call.kwargs(native_cookie))
    return a, b


def _timestamps_close(a: Any, b: Any) -> bool:
    try:
        delta = datetime.fromisoformat(a) - datetime.fromisoformat(b)
    except (TypeError, ValueError):
        return False
    return abs(delta.total_seconds()) <= CLOCK_SLACK


def json_differences(a: Any, b: Any, *, path: str = "body", loose_clock: bool) -> list[str]:
    """Where two JSON documents differ, key order included; clocks may differ if loose."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{path}: keys {list(a)} != {list(b)}"]
        found: list[str] = []
        for key in a:
            found += json_differences(a[key], b[key], path=f"{path}.{key}", loose_clock=loose_clock)
        return found
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        found = []
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            found += json_differences(x, y, path=f"{path}[{n}]", loose_clock=loose_clock)
        return found
    if type(a) is type(b) and a == b:
        return []
    if loose_clock and path.endswith(("created_at", "updated_at")) and _timestamps_close(a, b):
        return []
    return [f"{path}: {a!r} != {b!r}"]


def differences(legacy: httpx.Response, native: httpx.Response, *, exact: bool) -> list[str]:
    """How the native answer differs from the legacy one.

    `exact`: the bodies must be the same bytes; otherwise the same JSON up to the clock.
    """
    found: list[str] = []
    if legacy.status_code != native.status_code:
        found.append(f"status {legacy.status_code} != {native.status_code}")
    for header in ("content-type", "location"):
        # an empty 204 carries no content type on the native side (Werkzeug's says text/html)
        if header == "content-type" and not legacy.content and not native.content:
            continue
        if legacy.headers.get(header) != native.headers.get(header):
            found.append(f"{header} {legacy.headers.get(header)!r} != {native.headers.get(header)!r}")
    if legacy.status_code == 405:
        allowed = {m.strip() for m in legacy.headers.get("allow", "").split(",")}
        if allowed - AUTOMATIC_METHODS != set(native.headers.get("allow", "").split(", ")):
            found.append(f"allow {legacy.headers.get('allow')!r} != {native.headers.get('allow')!r}")
    if exact or not legacy.content or not native.content:
        if legacy.content != native.content:
            found.append(f"body {legacy.content!r} != {native.content!r}")
        return found
    try:
        a, b = json.loads(legacy.content), json.loads(native.content)
    except ValueError:
        return [*found, f"body {legacy.content!r} != {native.content!r}"]
    if native.content != flask_bytes(b):
        found.append(f"body {native.content!r} is not written as Flask writes JSON")
    return found + json_differences(a, b, loose_clock=True)


def flask_bytes(document: Any) -> bytes:
    """`document` as Flask's default JSON provider writes a response."""
    text = json.dumps(document, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return f"{text}\n".encode()
