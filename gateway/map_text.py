"""From the bytes of migration_map.yaml to plain data with a line for every key and item.

Everything that can go wrong before validation is refused here with a line a user can go to:
a file that is not a regular file or is too large (refused before it is read), text that is
not UTF-8, control characters YAML does not allow, YAML syntax, duplicate keys, alias bombs.
Nothing here knows the map's schema; `gateway.map_loader` validates what this returns.

The data is built straight from the parser's events, with libyaml's parser when PyYAML has it:
composing PyYAML's node tree first (pure Python, or libyaml's composer calling back into Python
for every node) was most of the ~5 s a 10,000-entry map took (bench/bench_parse_map.py).
"""

from __future__ import annotations

import codecs
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml import AliasEvent, MappingEndEvent, ScalarEvent, SequenceEndEvent, SequenceStartEvent

MAX_MAP_BYTES = 4 * 1024 * 1024  # a map is a config file; anything larger is a mistake
# YAML aliases let a small file stand for a huge (or endless) tree; a map never needs one
MAX_MAP_VALUES = 200_000
MAX_MAP_DEPTH = 32

Loc = tuple[str | int, ...]

# what YAML counts as a line break, so a line here is the line YAML's own errors name
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
# YAML 1.1 allows tab, LF, CR, NEL and the printable rest of Unicode (PyYAML's own test)
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_OTHER_ENCODINGS = (  # longest first: a UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class TextError(Exception):
    """The map cannot be read as YAML: what is wrong, and on which line (None: the whole file)."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


def _position(text: str, index: int) -> tuple[int, int]:
    """(line, column), both from 1, of a character index, counting lines as YAML does."""
    line, start = 1, 0
    for m in _BREAK.finditer(text, 0, index):
        line, start = line + 1, m.end()
    return line, index - start + 1


def read_bytes(path: Path) -> bytes:
    """The file's bytes; what is not a regular file, or is too large, is refused unread."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise TextError(None, "is a directory, not a map file")
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the reader forever
            raise TextError(None, "is not a regular file (a map is a YAML file)")
        if info.st_size > MAX_MAP_BYTES:
            raise TextError(None, f"map is larger than {MAX_MAP_BYTES} bytes")
        with path.open("rb") as f:
            raw = f.read(MAX_MAP_BYTES + 1)  # it may have grown since the stat
    except FileNotFoundError:  # also when it vanishes between the stat and the open
        raise TextError(None, "map file not found") from None
    except IsADirectoryError:
        raise TextError(None, "is a directory, not a map file") from None
    except OSError as exc:
        raise TextError(None, f"cannot read map file: {exc.strerror}") from None
    if len(raw) > MAX_MAP_BYTES:
        raise TextError(None, f"map is larger than {MAX_MAP_BYTES} bytes")
    return raw


def decode(raw: bytes) -> str:
    """UTF-8 text; a UTF-8 byte order mark is allowed (YAML skips it), other encodings are not."""
    for mark, encoding in _OTHER_ENCODINGS:
        if raw.startswith(mark):
            why = f"map file is {encoding} (it starts with a {encoding} byte order mark); save it as UTF-8"
            raise TextError(1, why)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8")
        line, column = _position(before, len(before))
        byte = raw[exc.start]
        why = f"map file is not valid UTF-8 (byte 0x{byte:02X} at column {column}); save it as UTF-8"
        raise TextError(line, why) from None


def check_printable(text: str) -> None:
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        line, column = _position(text, bad.start())
        code = ord(bad.group())
        message = (
            f"invalid YAML: character U+{code:04X} at column {column} is not allowed "
            "(YAML text has no control characters but tab, line feed and carriage return)"
        )
        raise TextError(line, message)


# YAML 1.1 reads on/off/yes/no as booleans, which turns `fallback: {on: [5xx]}` into a key
# True and `unsafe: off` into False. The map follows YAML 1.2 here: only true/false are.
_BOOL = "tag:yaml.org,2002:bool"
_IMPLICIT: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _IMPLICIT.setdefault(_first, []).append((_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")))
_IMPLICIT = {first: resolvers for first, resolvers in _IMPLICIT.items() if resolvers}
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_TOO_MANY = f"the map holds more than {MAX_MAP_VALUES} values once its YAML aliases are expanded"
_TOO_DEEP = f"the map nests deeper than {MAX_MAP_DEPTH} levels (an alias that contains itself?)"

# libyaml's parser gives the events of a 10,000-entry map in ~0.2 s, PyYAML's own in ~5 s; both
# give the same events with the same marks, so either feeds the builder below
LIBYAML: bool = yaml.__with_libyaml__


@dataclass
class Composed:
    data: Any  # None for a file with nothing but comments and blank lines
    root_line: int
    lines: dict[Loc, int] = field(default_factory=dict)  # line of every key and item
    duplicates: list[tuple[int, str]] = field(default_factory=list)  # (line, key)


class _Builder:
    """Plain data straight from the parser's events, with no node tree in between.

    An alias is expanded by replaying the events of its anchor, so it counts (and nests) as
    many values as the tree it stands for: the walk that MAX_MAP_VALUES and MAX_MAP_DEPTH
    bound is the one a composer's node tree would give, and so are the lines.
    """

    def __init__(self, parser: Any, out: Composed) -> None:
        self.get_event = parser.get_event
        self.lines, self.duplicates = out.lines, out.duplicates
        self.constructor = yaml.constructor.SafeConstructor()
        self.values = 0
        self.replays: list[Iterator[Any]] = []
        self.open: dict[str, list[Any]] = {}  # events of anchors still being read
        self.anchors: dict[str, list[Any]] = {}

    def event(self) -> Any:
        """The next event of a replay, else of the parser, recorded for every open anchor."""
        while self.replays:
            replayed = next(self.replays[-1], None)
            if replayed is not None:
                return replayed
            self.replays.pop()
        got = self.get_event()
        for recording in self.open.values():
            recording.append(got)
        return got

    def _next(self) -> Callable[[], Any]:
        # With no alias being replayed and no anchor being recorded, which is a map's usual
        # state, a collection reads straight from the parser. A replay pushed inside it is
        # used up before the child returns; an anchor is closed when its node ends.
        return self.event if self.replays or self.open else self.get_event

    def _alias(self, event: Any) -> list[Any]:
        name = event.anchor
        if name in self.open:  # expanding it would never end
            raise TextError(self.open[name][0].start_mark.line + 1, _TOO_DEEP)
        if name not in self.anchors:
            raise TextError(event.start_mark.line + 1, f"invalid YAML: found undefined alias {name!r}")
        return self.anchors[name]

    def _anchor(self, event: Any, name: str) -> bool:
        """Start recording the anchor; False when the event is a replay of its own definition."""
        known = self.anchors.get(name) or self.open.get(name)
        if known is not None and known[0] is event:
            return False
        if known is not None:
            first = known[0].start_mark.line + 1
            why = f"invalid YAML: anchor {name!r} is defined twice (first at line {first})"
            raise TextError(event.start_mark.line + 1, why)
        if type(event) is ScalarEvent:
            self.anchors[name] = [event]
            return False
        self.open[name] = [event]
        return True

    def node(self, event: Any, loc: Loc) -> Any:
        kind = type(event)
        if kind is AliasEvent:
            self.replays.append(iter(self._alias(event)))
            return self.node(self.event(), loc)
        line = event.start_mark.line + 1
        self.values += 1
        if self.values > MAX_MAP_VALUES:
            raise TextError(line, _TOO_MANY)
        if len(loc) > MAX_MAP_DEPTH:
            raise TextError(line, _TOO_DEEP)
        self.lines.setdefault(loc, line)
        name = event.anchor
        recording = name is not None and self._anchor(event, name)
        if kind is ScalarEvent:
            return self.scalar(event)
        get = self._next()
        value: Any
        if kind is SequenceStartEvent:
            value = []
            lines = self.lines
            while type(item := get()) is not SequenceEndEvent:
                at, item_line = (*loc, len(value)), item.start_mark.line + 1
                if (
                    type(item) is ScalarEvent
                    and item.anchor is None
                    and self.values < MAX_MAP_VALUES
                    and len(at) <= MAX_MAP_DEPTH
                ):
                    self.values += 1
                    lines.setdefault(at, item_line)
                    value.append(self.scalar(item))
                else:
                    value.append(self.node(item, at))
        else:
            value = {}
            lines, implicit = self.lines, _IMPLICIT
            while type(key_event := get()) is not MappingEndEvent:
                # the usual key and value, a plain string, are read inline: half the time
                if type(key_event) is ScalarEvent and key_event.anchor is None and key_event.tag is None:
                    key = key_event.value
                    if key_event.implicit[0] and (not key or key[0] in implicit):
                        key = self.scalar(key_event)
                else:
                    key = self.key(key_event)
                key_line = key_event.start_mark.line + 1
                if key in value:
                    self.duplicates.append((key_line, str(key)))
                at = (*loc, key)
                lines[at] = key_line
                item = get()
                if (
                    type(item) is ScalarEvent
                    and item.anchor is None
                    and self.values < MAX_MAP_VALUES
                    and len(at) <= MAX_MAP_DEPTH
                ):
                    self.values += 1  # as node() counts it; its line is its key's
                    text = item.value
                    if item.tag is not None or (item.implicit[0] and (not text or text[0] in implicit)):
                        text = self.scalar(item)
                    value[key] = text
                else:
                    value[key] = self.node(item, at)
        if recording:
            self.anchors[name] = self.open.pop(name)
        return value

    def key(self, event: Any) -> Any:
        kind = type(event)
        if kind is ScalarEvent:
            if event.anchor is not None:
                self._anchor(event, event.anchor)
            return self.scalar(event)
        if kind is AliasEvent:
            events = self._alias(event)
            if len(events) == 1:
                return self.scalar(events[0])
        line = event.start_mark.line + 1
        raise TextError(line, "invalid YAML: a key must be a plain value, not a list or a mapping")

    def scalar(self, event: Any) -> Any:
        tag, value = event.tag, event.value
        if tag is None or tag == "!":
            if not event.implicit[0] or (value and value[0] not in _IMPLICIT):
                return value  # quoted, or plain but no other type starts with its character
            tag = _resolve(value)
        if tag == _STR:
            return value
        if tag == _MERGE:
            line = event.start_mark.line + 1
            raise TextError(line, "invalid YAML: merge keys (<<) are not supported; write the keys out")
        node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
        return self.constructor.construct_object(node, deep=True)


def _resolve(plain: str) -> str:
    """The tag of an untagged plain scalar, as PyYAML's resolver gives it (YAML 1.2 booleans)."""
    for tag, rx in _IMPLICIT.get(plain[0] if plain else "", ()):
        if rx.match(plain):
            return tag
    return _STR


def _yaml_problem(exc: yaml.YAMLError, text: str) -> TextError:
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.reader.ReaderError):  # check_printable finds these first; in case
        at, _ = _position(text, exc.position)
        return TextError(at, f"invalid YAML: character U+{exc.character:04X} is not allowed")
    line = mark.line + 1 if mark is not None else None
    reason = getattr(exc, "problem", None) or str(exc)
    if reason == "found character that cannot start any token" and mark is not None:
        # libyaml leaves out the character that PyYAML names
        rows = _BREAK.split(text)
        row = rows[mark.line] if mark.line < len(rows) else ""
        if mark.column < len(row):
            reason = f"found character {row[mark.column]!r} that cannot start any token"
    if "'\\t'" in reason:
        reason += " (indent with spaces: YAML does not allow tabs there)"
    return TextError(line, f"invalid YAML: {reason}")


def compose(text: str) -> Composed:
    """The YAML document as plain data with its lines; raises TextError."""
    check_printable(text)
    parser: Any = yaml.CSafeLoader(text) if LIBYAML else yaml.SafeLoader(text)
    try:
        parser.get_event()  # StreamStart
        if type(parser.get_event()) is yaml.StreamEndEvent:  # else DocumentStart
            return Composed(None, 1)
        root = parser.get_event()
        composed = Composed(None, root.start_mark.line + 1)
        composed.data = _Builder(parser, composed).node(root, ())
        parser.get_event()  # DocumentEnd
        if type(event := parser.get_event()) is not yaml.StreamEndEvent:
            line = event.start_mark.line + 1
            raise TextError(line, "invalid YAML: a map is one YAML document, but a second one starts here")
        return composed
    except yaml.YAMLError as exc:
        raise _yaml_problem(exc, text) from None
    finally:
        parser.dispose()
