"""What the two apps really serve, read by duck typing so the gateway imports neither framework.

The legacy side is read from a Flask-style `url_map`, the native side from Starlette-style
`routes`. Every endpoint keeps its path parsed by `gateway.paths`, so map entries and
endpoints are compared in one representation: same `loose_shape` (FastAPI types parameters
in the signature, Flask in the path) and a method in common.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from gateway.map_loader import LoadedMap, Problem
from gateway.map_schema import HTTP_METHODS, Owner, RouteEntry
from gateway.paths import (
    ALIASES,
    CONVERTERS,
    FASTAPI_PARAM,
    FLASK_PARAM,
    Kind,
    PathError,
    PathTemplate,
    Segment,
    parse_template,
)
from gateway.table import UNMAPPED_ID, RoutingTable, build_table

ANY_METHOD = "*"  # a route that takes every method (werkzeug `methods=None`, a mounted app)
# Frameworks answer these by themselves; listing them would double every endpoint.
IMPLIED = frozenset({"HEAD", "OPTIONS"})
_SAMPLES = {
    "int": "1",
    "float": "1.5",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "string": "sample",
    "path": "sample",
}
_SHAPE_PARAM = re.compile(r"\{(\w+)\}")  # a converter in a segment's normalised shape: {int}.csv


class Side(StrEnum):
    LEGACY = "legacy"
    NATIVE = "native"


class InventoryError(Exception):
    """The object cannot be inspected as the expected kind of app; the message names it."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    side: Side
    method: str  # one HTTP method, or ANY_METHOD
    path: str  # the template as the framework declares it
    name: str
    template: PathTemplate | None  # None only when gateway.paths cannot read the path at all
    note: str = ""
    # the hosts the app serves this rule on, when not every host: "subdomain 'api'",
    # "host 'a.example.com'". The map routes by method and path only (DESIGN.md), so an entry
    # for this path covers it on every host; init-map and check-map say so.
    host: str = ""


def describe(obj: object) -> str:
    if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj):
        return f"{obj.__module__}.{obj.__qualname__}"
    return f"a {type(obj).__module__}.{type(obj).__qualname__} object"


def read_path(source: str) -> tuple[PathTemplate | None, str]:
    """Parse a framework's path; a converter the gateway does not know is read as `string`."""
    try:
        return parse_template(source), ""
    except PathError as exc:
        error = str(exc)
    unknown: list[str] = []

    def plain(match: re.Match[str]) -> str:
        conv = match.group("conv")
        if conv is None or ALIASES.get(conv, conv) in CONVERTERS:
            return match.group(0)
        unknown.append(conv)
        whole = match.group(0)
        return whole[0] + match.group("name") + whole[-1]

    rewritten = FASTAPI_PARAM.sub(plain, FLASK_PARAM.sub(plain, source))
    if unknown:
        try:
            names = ", ".join(repr(c) for c in dict.fromkeys(unknown))
            return parse_template(rewritten), f"converter {names} read as string"
        except PathError as exc:
            error = str(exc)
    return None, f"path not understood by the gateway: {error}"


def _method_order(method: str) -> tuple[int, str]:
    return (HTTP_METHODS.index(method) if method in HTTP_METHODS else len(HTTP_METHODS), method)


def http_methods(methods: Iterable[str] | None) -> list[str]:
    if methods is None:
        return [ANY_METHOD]
    found = sorted({str(m).upper() for m in methods}, key=_method_order)
    return [m for m in found if m not in IMPLIED] or found


def legacy_endpoints(app: object) -> list[Endpoint]:
    url_map = None
    # one level of WSGI middleware: ProxyFix-style `.app`, or a Flask app whose wsgi_app was wrapped
    for candidate in (app, getattr(app, "app", None), getattr(app, "wsgi_app", None)):
        found = getattr(candidate, "url_map", None)
        if found is not None and callable(getattr(found, "iter_rules", None)):
            url_map = found
            break
    if url_map is None:
        raise InventoryError(
            f"{describe(app)} has no Flask-style url_map (nor has its .app or .wsgi_app): "
            "cannot list its URL rules"
        )
    out: list[Endpoint] = []
    for rule in url_map.iter_rules():
        source = str(rule.rule)
        template, note = read_path(source)
        host = rule_host(url_map, rule)
        for method in http_methods(rule.methods):
            out.append(Endpoint(Side.LEGACY, method, source, str(rule.endpoint), template, note, host))
    return out


def rule_host(url_map: Any, rule: Any) -> str:
    """The hosts a werkzeug rule is limited to, or "" when it answers on the app's every host:
    with `host_matching` a rule's `host`; otherwise a `subdomain` other than the default one."""
    if getattr(url_map, "host_matching", False):
        host = getattr(rule, "host", None)
        return f"host {host!r}" if host else ""
    subdomain = getattr(rule, "subdomain", None)
    default = getattr(url_map, "default_subdomain", "") or ""
    return f"subdomain {subdomain!r}" if subdomain and subdomain != default else ""


def native_endpoints(app: object) -> list[Endpoint]:
    routes = getattr(app, "routes", None)
    if routes is None:
        raise InventoryError(f"{describe(app)} has no Starlette-style .routes: cannot list its routes")
    return list(_walk_native(routes, ""))


def _walk_native(routes: Iterable[Any], prefix: str) -> Iterator[Endpoint]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            # Recent FastAPI keeps an included router as one node; its contexts carry the
            # prefixed paths, and a Starlette route (mount, websocket) when there is one.
            for ctx in contexts():
                yield from _walk_native([getattr(ctx, "starlette_route", None) or ctx], prefix)
            continue
        path = getattr(route, "path", None)
        children = getattr(route, "routes", None)
        if children is not None and not hasattr(route, "methods"):
            mount = prefix + (path or "")  # a Host has no path
            if children:
                yield from _walk_native(children, mount)
            elif path is not None:  # an app with no routes of its own (static files, a WSGI app)
                full = mount + "/{path:path}"
                template, note = read_path(full)
                name = str(getattr(route, "name", None) or "")
                yield Endpoint(Side.NATIVE, ANY_METHOD, full, name, template, note or "mounted app")
            continue
        if not isinstance(path, str) or not hasattr(route, "methods"):
            continue  # websocket and other non-HTTP routes have no `methods` at all
        full = prefix + path
        template, note = read_path(full)
        name = str(getattr(route, "name", None) or "")
        # `methods` None is a Starlette Route around an ASGI class: it takes every method
        for method in http_methods(route.methods):
            yield Endpoint(Side.NATIVE, method, full, name, template, note)


def _takes(methods: tuple[str, ...] | None, method: str) -> bool:
    if methods is None or method == ANY_METHOD or method in methods:
        return True
    return method == "GET" and "HEAD" in methods  # GET answers HEAD


def covers(rule: PathTemplate, entry: PathTemplate) -> bool:
    """Whether the app's rule serves every URL the map entry matches: the same loose shape, or
    static text where the rule has a parameter that takes it (`/api/users/1` under
    `/api/users/<int:user_id>`, not `/api/users/me`)."""
    if rule.loose_shape == entry.loose_shape:
        return True
    mine = entry.segments
    for i, seg in enumerate(rule.segments):
        if seg.kind is Kind.PATH:
            rest = mine[i:]
            if not rest:
                return False
            if seg.text == "{path}":  # the rest of any URL, whatever the entry has there
                return True
            text = "/".join(s.text for s in rest)
            return all(s.kind is Kind.STATIC for s in rest) and _full(seg, text)
        if i >= len(mine) or not _segment_covers(seg, mine[i]):
            return False
    return len(mine) == len(rule.segments)


def _full(seg: Segment, text: str) -> bool:
    return seg.regex is not None and seg.regex.fullmatch(text) is not None


def _segment_covers(rule: Segment, entry: Segment) -> bool:
    if entry.kind is Kind.STATIC:
        return entry.text == rule.text if rule.kind is Kind.STATIC else _full(rule, entry.text)
    if rule.kind is Kind.STRING:
        return entry.kind in (Kind.TYPED, Kind.STRING, Kind.PATTERN)
    if rule.kind is Kind.TYPED:  # typed only one side is loose_shape's rule (FastAPI signatures)
        return entry.kind in (Kind.TYPED, Kind.STRING)
    return rule.text == entry.text


def endpoints_for(entry: RouteEntry, template: PathTemplate, endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """The endpoints a map entry routes to: a path that covers the entry's, and a method in common."""
    return [
        e
        for e in endpoints
        if e.template is not None and covers(e.template, template) and _takes(entry.methods, e.method)
    ]


def unserved_methods(entry: RouteEntry, template: PathTemplate, endpoints: Iterable[Endpoint]) -> list[str]:
    """Methods of the entry no endpoint implements; [ANY_METHOD] when it takes all and none is there."""
    matched = endpoints_for(entry, template, endpoints)
    if entry.methods is None:
        return [] if matched else [ANY_METHOD]
    wanted = [m for m in entry.methods if m not in IMPLIED] or list(entry.methods)
    return [m for m in wanted if not any(_takes((e.method,), m) or e.method == ANY_METHOD for e in matched)]


def check_entries(
    loaded: LoadedMap, legacy: list[Endpoint], native: list[Endpoint]
) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) for the entries of a valid map, against what the two apps serve."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for entry, template, line in zip(loaded.map.routes, loaded.templates, loaded.lines, strict=True):
        label = f"route {entry.id!r}"
        if not endpoints_for(entry, template, [*legacy, *native]):
            methods = ", ".join(entry.methods) if entry.methods else "every method"
            message = (
                f"{label} ({methods} {entry.path}) matches no endpoint: "
                "no legacy URL rule and no native route has this path and method"
            )
            errors.append(Problem(loaded.file, line, message))
            continue
        owner = loaded.map.owner_of(entry)
        hosts = sorted({e.host for e in endpoints_for(entry, template, legacy) if e.host})
        if hosts and (owner is Owner.NEW or entry.canary is not None):
            message = (
                f"{label} sends {entry.path} to the native side on every host, but the legacy app "
                f"serves it by host ({', '.join(hosts)}): the map routes by method and path only, "
                "so the native route must answer for every host (or keep the entry owner: legacy)"
            )
            warnings.append(Problem(loaded.file, line, message))
        missing = unserved_methods(entry, template, native if owner is Owner.NEW else legacy)
        what = "any method" if missing == [ANY_METHOD] else ", ".join(missing)
        if missing and owner is Owner.NEW:
            message = f"{label} is owner: new but no native route implements {what} {entry.path}"
            errors.append(Problem(loaded.file, line, message))
        elif missing:  # legacy answers 404/405 there: worth knowing, not a broken map
            message = f"{label} is owner: legacy but no legacy rule implements {what} {entry.path}"
            warnings.append(Problem(loaded.file, line, message))
    return errors, warnings


def sample_path(template: PathTemplate) -> str:
    """A URL the template matches, to ask the routing table who serves it."""
    parts = [
        seg.text if seg.kind is Kind.STATIC else _SHAPE_PARAM.sub(lambda m: _SAMPLES[m.group(1)], seg.text)
        for seg in template.segments
    ]
    return "/" + "/".join(parts)


@dataclass(frozen=True, slots=True)
class Row:
    method: str
    path: str
    legacy: Endpoint | None
    native: Endpoint | None
    entry_id: str | None  # None: no entry matches, the default owner serves it
    entry_line: int | None
    owner: Owner

    @property
    def served_natively(self) -> bool:
        return self.legacy is not None and self.native is not None and self.owner is Owner.NEW


def inventory(legacy: list[Endpoint], native: list[Endpoint], loaded: LoadedMap) -> list[Row]:
    """One row per method and loose path on either side, with its owner under the map."""
    slots: dict[tuple[str, tuple[str, ...]], list[Endpoint | None]] = {}
    for index, endpoints in ((0, legacy), (1, native)):
        for e in endpoints:
            shape = e.template.loose_shape if e.template is not None else ("?", e.path)
            slot = slots.setdefault((e.method, shape), [None, None])
            first = slot[index]
            if first is None:
                slot[index] = e
            elif e.host != first.host and e.host not in first.host.split(" + "):
                # rules the legacy app tells apart by host: one row, and it names every host
                hosts = f"{first.host or 'default host'} + {e.host or 'default host'}"
                slot[index] = replace(first, host=hosts)
    table = build_table(loaded)
    rows: list[Row] = []
    for (method, _), (old, new) in slots.items():
        first = old or new
        assert first is not None
        entry_id, line, owner = _owner(loaded, table, method, first.template)
        rows.append(Row(method, first.path, old, new, entry_id, line, owner))
    rows.sort(key=lambda r: (r.path, _method_order(r.method)))
    return rows


def _owner(
    loaded: LoadedMap, table: RoutingTable, method: str, template: PathTemplate | None
) -> tuple[str | None, int | None, Owner]:
    mmap = loaded.map
    if template is None:
        return None, None, mmap.defaults.owner
    paired = [
        i
        for i, entry in enumerate(mmap.routes)
        if loaded.templates[i].loose_shape == template.loose_shape and _takes(entry.methods, method)
    ]
    # an entry of exactly this shape wins over one that only agrees once types are ignored
    paired.sort(key=lambda i: loaded.templates[i].shape != template.shape)
    if paired:
        entry = mmap.routes[paired[0]]
        return entry.id, loaded.lines[paired[0]], mmap.owner_of(entry)
    # wider entries (a `path` converter, a string where the app has a static segment) decide
    # the way the gateway does: by looking up a URL the endpoint serves
    route = table.lookup("GET" if method == ANY_METHOD else method, sample_path(template))
    return (None if route.id == UNMAPPED_ID else route.id), route.line, route.owner


def progress(rows: Iterable[Row]) -> tuple[int, int]:
    """(served natively, distinct legacy endpoints)."""
    legacy_rows = [r for r in rows if r.legacy is not None]
    return sum(r.served_natively for r in legacy_rows), len(legacy_rows)
