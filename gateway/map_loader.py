"""Reads migration_map.yaml into a validated MigrationMap, or says what is wrong and on which line.

Nothing here touches the running gateway: the reloader calls `load_map` off the request path
and swaps tables only when it succeeds.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway import map_text
from gateway.compare_rules import compile_rules
from gateway.map_schema import SAFE_METHODS, MigrationMap, Owner, Unsafe, merge_shadow
from gateway.map_text import MAX_MAP_BYTES as MAX_MAP_BYTES
from gateway.map_text import Loc, TextError
from gateway.paths import PathError, PathTemplate, parse_template


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


@dataclass(frozen=True, slots=True)
class Delta:
    """What changed from the map `base_sha256` to this one, as the map parser process found it
    (gateway.map_worker), so that the serving process need not look at every route again.

    `positions`: the only routes whose entry object is not the base's (its other routes are
    the base's own objects, on the same lines), None when routes were added, removed or
    moved; `changes` and `snapshot_json` are the audit
    entry's (gateway.rollout.store_changes: diff_snapshots, and the snapshot encoded)."""

    base_sha256: str
    positions: tuple[int, ...] | None
    changes: list[dict[str, Any]]
    snapshot_json: str


@dataclass(frozen=True)
class LoadedMap:
    map: MigrationMap
    file: str
    sha256: str
    templates: tuple[PathTemplate, ...]  # parsed path of routes[i]
    lines: tuple[int | None, ...]  # line of routes[i]
    marks: dict[Loc, int] = field(repr=False, default_factory=dict)
    delta: Delta | None = field(repr=False, default=None)  # against the map serving before it

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


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


# Set by freeze_heap(): this process moved its start-up heap to the permanent generation.
_HEAP_FROZEN = False
# young objects a block must have built before its end promotes them (see no_gc_pauses): a
# 10,000-entry map builds ~250,000; a patch of a serving table a few hundred
PROMOTE_FROM = 20_000


def freeze_heap() -> None:
    """Collect, then move every object to the permanent generation (a gateway server, once it
    is up: gateway.app); remembered, so no_gc_pauses never asks the collector."""
    global _HEAP_FROZEN
    gc.collect()
    gc.freeze()
    _HEAP_FROZEN = True


def unfreeze_heap() -> None:
    global _HEAP_FROZEN
    gc.unfreeze()
    _HEAP_FROZEN = False


@contextmanager
def no_gc_pauses() -> Iterator[None]:
    # Parsing allocates a container per value and frees none until the end, so the cyclic
    # collector ran full passes over a growing heap that held no cycle: a fifth of the time
    # of a 10,000-entry map. It runs once, when parsing is over (or sooner elsewhere, if
    # another thread turns it back on: no harm either way).
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        # What a large block built is alive (garbage went by reference counting) and would be
        # scanned by the first young collection after this, then by the middle one: ~90 ms of
        # a 10,000-entry parse. freeze() + unfreeze() moves every tracked object to the oldest
        # generation without a scan; a cycle among them is still found by the next full
        # collection. Never where a heap was frozen, which unfreeze() would thaw: ours is
        # known from freeze_heap(); another's costs gc.get_freeze_count(), a walk of every
        # frozen object (~20 ms for a gateway's 330,000, with the GIL held), so it is asked
        # only after a block large enough to be worth more than that walk.
        # In a gateway server (freeze_heap) what the block built joins the frozen start-up
        # heap instead: gc.freeze() alone, no thaw. Left young, a reload's new table was
        # scanned by the next young collection (1.2-1.4 ms) and then the middle one (~2.2 ms),
        # each with the GIL held just after the swap, and the requests due then were slow
        # (bench/PROFILE.md, ninth pass). What is frozen is never collected as a cycle: the
        # table holds none, and a reload happens when an engineer edits the map.
        if _HEAP_FROZEN:
            if gc.get_count()[0] >= gc.get_threshold()[0]:  # freeze() is a list splice: no size to wait for
                gc.freeze()
        elif gc.get_count()[0] >= PROMOTE_FROM and gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def parse_map(text: str, file: str = "<map>") -> LoadedMap:
    """Parse and validate map text; raises MapError listing every problem found."""
    return parse_parts(text, file)[0]


def parse_parts(text: str, file: str = "<map>") -> tuple[LoadedMap, dict[str, Any]]:
    """parse_map, and the plain data it validated (gateway.map_worker reuses entries by it)."""
    if len(text.encode()) > MAX_MAP_BYTES:
        raise MapError([Problem(file, None, f"map is larger than {MAX_MAP_BYTES} bytes")])
    with no_gc_pauses():
        return _parse(text, file)


def _parse(text: str, file: str) -> tuple[LoadedMap, dict[str, Any]]:
    try:
        composed = map_text.compose(text)
    except TextError as exc:
        raise MapError([Problem(file, exc.line, exc.message)]) from None
    if composed.duplicates:
        raise MapError([Problem(file, ln, f"duplicate key {key!r}") for ln, key in composed.duplicates])
    data = composed.data
    if not isinstance(data, dict):
        message = "the map must be a mapping with 'version' and 'routes'"
        if data is None and composed.lines == {}:
            blank = not text.strip("\ufeff \t\r\n")
            message += "; the file is empty" if blank else "; the file holds only comments"
        raise MapError([Problem(file, composed.root_line, message)])
    marks = composed.lines
    try:
        mmap = MigrationMap.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(file, _line_for(marks, tuple(e["loc"])), _describe(e)) for e in exc.errors()]
        raise MapError(problems) from None
    return _check_semantics(mmap, file, marks, text), data


# A reload parses every path of the map again, though an edit changes a few: parsed templates
# are immutable, so the ones seen before are reused (a 10,000-path map parses ~0.1 s faster).
_template = lru_cache(maxsize=1 << 16)(parse_template)
template_of = _template


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
            template = _template(entry.path)
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
            shape = template.shape
            for j in by_shape.get(shape, []):
                other = mmap.routes[j]
                common = _common_methods(entry.methods, other.methods)
                if common:
                    problems.append(
                        Problem(
                            file,
                            line,
                            (
                                f"route {entry.id!r} overlaps route {other.id!r} (line {lines[j]}): "
                                f"both match {common} {shape}"
                            ),
                        )
                    )
            by_shape.setdefault(shape, []).append(i)
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


def load_bytes(raw: bytes, file: str) -> LoadedMap:
    """A map from the bytes of its file, so the bytes hashed are the bytes parsed."""
    return parse_parts(decode(raw, file), file)[0]


def decode(raw: bytes, file: str) -> str:
    try:
        return map_text.decode(raw)
    except TextError as exc:
        raise MapError([Problem(file, exc.line, exc.message)]) from None


def read_map(path: str | Path) -> bytes:
    p = Path(path)
    try:
        return map_text.read_bytes(p)
    except TextError as exc:
        raise MapError([Problem(str(p), exc.line, exc.message)]) from None


def load_map(path: str | Path) -> LoadedMap:
    return load_bytes(read_map(path), str(Path(path)))
