"""Sticky canary bucketing: which requests of a legacy-owned route the new side serves.

A user lands in one of 100 buckets per route, the way Unleash buckets a gradual rollout:
MurmurHash3 x86_32 (seed 0) of "route_id:key", unsigned, `% 100 + 1`. A bucket b is in the
canary when b <= percent, so raising the percentage only ever adds users and a route's
cohort is its own (the route id salts the hash). Percent has whole-bucket granularity: 10.5
serves exactly the users of 10, and anything under 1 serves nobody with a key.

Runs on every request of a canary route: the sticky list is parsed once per distinct tuple,
a header or client_ip lookup allocates only the key string it returns, and a Cookie header
is split only when the cookie's name occurs in it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import mmh3

from gateway.asgi import Scope
from gateway.rollout_schema import CanarySettings, OnMissing

_HEADER = 0
_COOKIE = 1
_CLIENT_IP = 2


def bucket(route_id: str, key: str) -> int:
    """1..100, equal to Unleash's normalizedHash(key, route_id) so shares line up with its tools."""
    return mmh3.hash(f"{route_id}:{key}", 0, signed=False) % 100 + 1


@lru_cache(maxsize=256)
def _parse(sticky: tuple[str, ...]) -> tuple[tuple[int, bytes], ...]:
    parsed: list[tuple[int, bytes]] = []
    for entry in sticky:
        kind, _, name = entry.partition(":")
        if kind == "header":
            parsed.append((_HEADER, name.lower().encode("latin-1")))
        elif kind == "cookie":
            parsed.append((_COOKIE, name.encode("latin-1")))
        elif entry == "client_ip":
            parsed.append((_CLIENT_IP, b""))
        else:  # the map schema rejects these; a hand-built CanarySettings must not pass silently
            raise ValueError(f"unknown sticky key {entry!r} (use header:NAME, cookie:NAME or client_ip)")
    return tuple(parsed)


def sticky_key(scope: Scope, sticky: tuple[str, ...]) -> str | None:
    """The first present sticky key, prefixed by its kind only: "header:…", "cookie:…" or
    "client_ip:…".

    The kind keeps an IP from ever colliding with a user id; the header or cookie *name* is
    left out so that renaming it in the map (X-User-Id → X-User-ID, or to another carrier of
    the same id) keeps every user in the bucket they were in. Empty values count as missing.
    """
    headers = scope.get("headers", ())
    for kind, name in _parse(sticky):
        if kind == _HEADER:
            for key, raw in headers:
                if key == name:
                    value: bytes = raw.strip()
                    if value:  # the first non-empty one, as for cookies
                        return "header:" + value.decode("latin-1")
        elif kind == _COOKIE:
            found = _cookie(headers, name)
            if found:
                return "cookie:" + found.decode("latin-1")
        else:
            client = scope.get("client")
            if client and client[0]:
                return "client_ip:" + str(client[0])
    return None


def _cookie(headers: Iterable[Any], name: bytes) -> bytes | None:
    """The first non-empty value of cookie `name` over every Cookie header (HTTP/2 splits them).

    Tolerant on purpose: SimpleCookie drops a whole header at its first malformed pair, and a
    stray `;` or a bare word in someone else's cookie must not move a user to another bucket.
    """
    for key, raw in headers:
        if key != b"cookie" or name not in raw:  # the substring test spares the split
            continue
        pairs: list[bytes] = raw.split(b";")
        for pair in pairs:
            cookie_name, eq, value = pair.partition(b"=")
            if eq and cookie_name.strip() == name:
                value = value.strip()
                if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
                    value = value[1:-1]
                if value:
                    return value
    return None


def serves_new(
    route_id: str, canary: CanarySettings, scope: Scope, rand: Callable[[], float] = random.random
) -> bool:
    percent = canary.percent
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    key = sticky_key(scope, canary.sticky)
    if key is not None:
        return bucket(route_id, key) <= percent
    if canary.on_missing is OnMissing.RANDOM:
        # a fresh bucket per request, with the same whole-bucket granularity as a keyed one
        return int(rand() * 100) + 1 <= percent
    return False  # OnMissing.LEGACY: an anonymous request is never flipped back and forth
