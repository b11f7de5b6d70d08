"""A route's comparison rules, compiled once: ignore and unordered patterns become one regular
expression each, header lists become the tuple of headers actually compared.

Patterns are dotted paths on the folded path form the comparator reports (`body.items[].price`,
`headers.etag`, `status`). `*` stands for exactly one key segment together with the list markers
after it (`body.*.id` matches `body.user.id` and `body.items[].id`; inside a key, `user_*` globs
the name); `**` stands for any number of segments, none included (`body.**.id`, `body.meta.**`).
An ignore pattern also covers everything below it (`body.meta` ignores `body.meta.x` and
`body.meta[].x`); an unordered pattern names exactly the lists it applies to.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from gateway.map_schema import ShadowRules

# These change on every response (Date, Server on some stacks) or carry per-session secrets
# (Set-Cookie): comparing their values would only ever report noise. Listing set-cookie in
# compare_headers compares the set of cookie NAMES, which catches a forgotten session cookie.
NEVER_COMPARED = frozenset({"date", "server", "set-cookie"})
ROOTS = ("body", "headers", "status")

_SEGMENT = re.compile(r"(?P<key>[^\[\]]+)(?P<lists>(?:\[\])*)")
_KEY_CHARS = r"[^.\[]"
_BELOW = r"(?:[.\[].*)?"  # nothing more, or a deeper key / list element


@dataclass(frozen=True, slots=True)
class CompiledRules:
    ignore: re.Pattern[str] | None
    unordered: re.Pattern[str] | None
    headers: tuple[str, ...]  # compared by value, sorted; never date, server, set-cookie
    cookie_names: bool  # set-cookie listed: compare the set of cookie names, never values
    float_tolerance: float

    def ignored(self, path: str) -> bool:
        return self.ignore is not None and self.ignore.fullmatch(path) is not None

    def is_unordered(self, path: str) -> bool:
        return self.unordered is not None and self.unordered.fullmatch(path) is not None


@functools.lru_cache(maxsize=512)
def compile_rules(rules: ShadowRules) -> CompiledRules:
    """Raises ValueError naming the pattern when an ignore or unordered path is malformed, so
    a map loader can call this to validate a route."""
    ignore = _combine(rules.ignore, below=True)
    skipped = set(rules.ignore_headers) | NEVER_COMPARED
    listed = {name.lower() for name in rules.compare_headers}
    headers = tuple(
        sorted(name for name in listed - skipped if ignore is None or not ignore.fullmatch(f"headers.{name}"))
    )
    cookie_names = (
        "set-cookie" in listed
        and "set-cookie" not in rules.ignore_headers
        and (ignore is None or not ignore.fullmatch("headers.set-cookie"))
    )
    return CompiledRules(
        ignore=ignore,
        unordered=_combine(rules.unordered, below=False),
        headers=headers,
        cookie_names=cookie_names,
        float_tolerance=rules.float_tolerance,
    )


def _combine(patterns: tuple[str, ...], *, below: bool) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{pattern_regex(p, below=below)})" for p in patterns))


def pattern_regex(pattern: str, *, below: bool) -> str:
    parts = pattern.split(".")
    if not pattern or "" in parts:
        raise ValueError(f"path pattern {pattern!r}: empty segment (write e.g. body.items[].price)")
    root = parts[0].removesuffix("[]")
    if root not in ROOTS and parts[0] != "**":
        raise ValueError(f"path pattern {pattern!r} must start with one of {', '.join(ROOTS)} or **")
    if pattern == "**":
        return ".*"
    out: list[str] = []
    for i, part in enumerate(parts):
        if part == "**":
            # at the start: any leading segments up to a dot; later: any continuation of the
            # path so far, after which the next segment still needs its own dot
            out.append(r"(?:.*\.)?" if i == 0 else _BELOW)
            continue
        if i > 1 or (i == 1 and parts[0] != "**"):
            out.append(r"\.")
        out.append(_segment_regex(pattern, part))
    if below:
        out.append(_BELOW)
    return "".join(out)


def _segment_regex(pattern: str, part: str) -> str:
    match = _SEGMENT.fullmatch(part)
    if match is None:
        raise ValueError(f"path pattern {pattern!r}: bad segment {part!r} ([] only after a key)")
    key, lists = match["key"], match["lists"]
    if key == "*":
        return f"{_KEY_CHARS}+" + (re.escape(lists) if lists else r"(?:\[\])*")
    return f"{_KEY_CHARS}*".join(re.escape(piece) for piece in key.split("*")) + re.escape(lists)
