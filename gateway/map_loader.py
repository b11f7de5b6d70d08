"""Reads migration_map.yaml into a validated MigrationMap, or says what is wrong and on which line.

Nothing here touches the running gateway: the reloader calls `load_map` off the request path
and swaps tables only when it succeeds.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.compare_rules import compile_rules
from gateway.map_schema import SAFE_METHODS, MigrationMap, Owner, Unsafe, merge_shadow
from gateway.paths import PathError, PathTemplate, parse_template

MAX_MAP_BYTES = 4 * 1024 * 1024  # a map is a config file; anything larger is a mistake
# YAML aliases let a small file stand for a huge (or endless) tree; a map never needs one
MAX_MAP_VALUES = 200_000
MAX_MAP_DEPTH = 32

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class MapError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedMap:
    map: MigrationMap
    file: str
    sha256: str
    templates: tuple[PathTemplate, ...]  # parsed path of routes[i]
    lines: tuple[int | None, ...]  # line of routes[i]
    marks: dict[Loc, int] = field(repr=False, default_factory=dict)

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


class _MarkedLoader(yaml.SafeLoader):
    """SafeLoader that records the line of every key and item and rejects duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines: dict[Loc, int] = {}
        self.duplicates: list[tuple[int, str]] = []
        self.values = 0  # nodes walked, aliases expanded


class _TooBig(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


# YAML 1.1 reads on/off/yes/no as booleans, which turns `fallback: {on: [5xx]}` into a key
# True and `unsafe: off` into False. The map follows YAML 1.2 here: only true/false are.
_MarkedLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_MarkedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _walk(loader: _MarkedLoader, node: yaml.Node, loc: Loc) -> Any:
    line = node.start_mark.line + 1
    loader.values += 1
    if loader.values > MAX_MAP_VALUES:
        message = f"the map holds more than {MAX_MAP_VALUES} values once its YAML aliases are expanded"
        raise _TooBig(line, message)
    if len(loc) > MAX_MAP_DEPTH:
        message = f"the map nests deeper than {MAX_MAP_DEPTH} levels (an alias that contains itself?)"
        raise _TooBig(line, message)
    loader.lines.setdefault(loc, line)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                loader.duplicates.append((key_node.start_mark.line + 1, str(key)))
            loader.lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _walk(loader, value_node, (*loc, key))
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*loc, i)) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _line_for(marks: dict[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in marks:
            return marks[loc[:end]]
    return None


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(err: Any) -> str:
    kind, loc, msg = err["type"], err["loc"], err["msg"]
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r} in {_dotted(loc[:-1])}"
    if kind == "missing":
        return f"{_dotted(loc)}: required key is missing"
    if kind == "literal_error" and loc == ("version",):
        return f"version: unsupported map version {err.get('input')!r} (this gateway reads version 1)"
    msg = msg.removeprefix("Value error, ")
    return f"{_dotted(loc)}: {msg} (got {err.get('input')!r})"


def parse_map(text: str, file: str = "<map>") -> LoadedMap:
    """Parse and validate map text; raises MapError listing every problem found."""
    if len(text.encode()) > MAX_MAP_BYTES:
        raise MapError([Problem(file, None, f"map is larger than {MAX_MAP_BYTES} bytes")])
    loader = _MarkedLoader(text)
    try:
        root = loader.get_single_node()
        data = _walk(loader, root, ()) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise MapError([Problem(file, line, f"invalid YAML: {reason}")]) from None
    except _TooBig as exc:
        raise MapError([Problem(file, exc.line, exc.message)]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise MapError([Problem(file, ln, f"duplicate key {key!r}") for ln, key in loader.duplicates])
    if not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else 1
        raise MapError([Problem(file, line, "the map must be a mapping with 'version' and 'routes'")])
    marks = loader.lines
    try:
        mmap = MigrationMap.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(file, _line_for(marks, tuple(e["loc"])), _describe(e)) for e in exc.errors()]
        raise MapError(problems) from None
    return _check_semantics(mmap, file, marks, text)


def _check_semantics(mmap: MigrationMap, file: str, marks: dict[Loc, int], text: str) -> LoadedMap:
    problems: list[Problem] = []
    templates: list[PathTemplate] = []
    lines: list[int | None] = []
    first_seen: dict[str, int | None] = {}
    by_shape: dict[str, list[int]] = {}
    defaults_ok = True
    try:
        compile_rules(merge_shadow(mmap.defaults.shadow, None))
    except ValueError as exc:
        defaults_ok = False
        problems.append(Problem(file, _line_for(marks, ("defaults", "shadow")), f"defaults.shadow: {exc}"))
    for i, entry in enumerate(mmap.routes):
        line = _line_for(marks, ("routes", i))
        lines.append(line)
        if entry.id in first_seen:
            problems.append(
                Problem(
                    file,
                    _line_for(marks, ("routes", i, "id")),
                    f"duplicate route id {entry.id!r} (first defined at line {first_seen[entry.id]})",
                )
            )
        first_seen.setdefault(entry.id, line)
        try:
            template = parse_template(entry.path)
        except PathError as exc:
            problems.append(
                Problem(file, _line_for(marks, ("routes", i, "path")), f"routes[{i}].path: {exc}")
            )
            template = PathTemplate(entry.path, ())
        templates.append(template)
        if entry.canary is not None and mmap.owner_of(entry) is not Owner.LEGACY:
            problems.append(
                Problem(
                    file,
                    _line_for(marks, ("routes", i, "canary")) or line,
                    (
                        f"route {entry.id!r} has a canary but owner: new; a canary sends a share of a "
                        "legacy-owned route to the new side (set owner: legacy, or drop the canary)"
                    ),
                )
            )
        if entry.canary is not None and entry.canary.steps:
            where = _line_for(marks, ("routes", i, "canary", "steps")) or line
            if entry.guard is None:
                problems.append(
                    Problem(
                        file,
                        where,
                        (f"route {entry.id!r}: canary steps advance only on a guard's verdict; add a guard"),
                    )
                )
            elif entry.canary.steps[0] <= entry.canary.percent:
                problems.append(
                    Problem(
                        file,
                        where,
                        (f"route {entry.id!r}: canary steps must start above percent {entry.canary.percent}"),
                    )
                )
        rules = mmap.shadow_of(entry)
        if defaults_ok and entry.shadow is not None:
            try:
                compile_rules(rules)  # a bad ignore/unordered pattern would fail every comparison
            except ValueError as exc:
                where = _line_for(marks, ("routes", i, "shadow")) or line
                problems.append(Problem(file, where, f"routes[{i}].shadow: {exc}"))
        unsafe_only = entry.methods is not None and not (set(entry.methods) & SAFE_METHODS)
        if unsafe_only and rules.sample > 0 and rules.unsafe is not Unsafe.ROLLBACK:
            problems.append(
                Problem(
                    file,
                    _line_for(marks, ("routes", i, "shadow")) or line,
                    (
                        f"route {entry.id!r} shadows {', '.join(entry.methods or ())}, which writes: "
                        "add 'unsafe: rollback' to its shadow to run the candidate in a rolled-back "
                        "transaction, or set sample: 0"
                    ),
                )
            )
        if template.segments:
            for j in by_shape.get(template.shape, []):
                other = mmap.routes[j]
                common = _common_methods(entry.methods, other.methods)
                if common:
                    problems.append(
                        Problem(
                            file,
                            line,
                            (
                                f"route {entry.id!r} overlaps route {other.id!r} (line {lines[j]}): "
                                f"both match {common} {template.shape}"
                            ),
                        )
                    )
            by_shape.setdefault(template.shape, []).append(i)
    if problems:
        raise MapError(problems)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return LoadedMap(mmap, file, digest, tuple(templates), tuple(lines), marks)


def _common_methods(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> str:
    if a is None and b is None:
        return "every method"
    if a is None or b is None:
        return ", ".join(a or b or ())
    return ", ".join(m for m in a if m in b)


def load_map(path: str | Path) -> LoadedMap:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise MapError([Problem(str(p), None, "map file not found")]) from None
    except OSError as exc:
        raise MapError([Problem(str(p), None, f"cannot read map file: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise MapError([Problem(str(p), line, "map file is not valid UTF-8")]) from None
    return parse_map(text, str(p))
