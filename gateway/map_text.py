"""From the bytes of migration_map.yaml to plain data with a line for every key and item.

Everything that can go wrong before validation is refused here with a line a user can go to:
a file that is not a regular file or is too large (refused before it is read), text that is
not UTF-8, control characters YAML does not allow, YAML syntax, duplicate keys, alias bombs.
Nothing here knows the map's schema; `gateway.map_loader` validates what this returns.
"""

from __future__ import annotations

import codecs
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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


class _MarkedLoader(yaml.SafeLoader):
    pass


# YAML 1.1 reads on/off/yes/no as booleans, which turns `fallback: {on: [5xx]}` into a key
# True and `unsafe: off` into False. The map follows YAML 1.2 here: only true/false are.
_MarkedLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_MarkedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass
class Composed:
    data: Any  # None for a file with nothing but comments and blank lines
    root_line: int
    lines: dict[Loc, int] = field(default_factory=dict)  # line of every key and item
    duplicates: list[tuple[int, str]] = field(default_factory=list)  # (line, key)


class _Walk:
    def __init__(self, loader: yaml.SafeLoader, out: Composed) -> None:
        self.loader, self.out = loader, out
        self.values = 0  # nodes walked, aliases expanded

    def node(self, node: yaml.Node, loc: Loc) -> Any:
        line = node.start_mark.line + 1
        self.values += 1
        if self.values > MAX_MAP_VALUES:
            message = f"the map holds more than {MAX_MAP_VALUES} values once its YAML aliases are expanded"
            raise TextError(line, message)
        if len(loc) > MAX_MAP_DEPTH:
            message = f"the map nests deeper than {MAX_MAP_DEPTH} levels (an alias that contains itself?)"
            raise TextError(line, message)
        lines = self.out.lines
        lines.setdefault(loc, line)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):  # unhashable as a dict key
                    why = "invalid YAML: a key must be a plain value, not a list or a mapping"
                    raise TextError(key_line, why)
                key = self.loader.construct_object(key_node, deep=True)
                if key in out:
                    self.out.duplicates.append((key_line, str(key)))
                lines[(*loc, key)] = key_line
                out[key] = self.node(value_node, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.node(item, (*loc, i)) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)


def _yaml_problem(exc: yaml.YAMLError, text: str) -> TextError:
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.reader.ReaderError):  # check_printable finds these first; in case
        at, _ = _position(text, exc.position)
        return TextError(at, f"invalid YAML: character U+{exc.character:04X} is not allowed")
    line = mark.line + 1 if mark is not None else None
    reason = getattr(exc, "problem", None) or str(exc)
    if "'\\t'" in reason:
        reason += " (indent with spaces: YAML does not allow tabs there)"
    return TextError(line, f"invalid YAML: {reason}")


def compose(text: str) -> Composed:
    """The YAML document as plain data with its lines; raises TextError."""
    check_printable(text)
    loader = None
    try:
        loader = _MarkedLoader(text)
        root = loader.get_single_node()
        composed = Composed(None, root.start_mark.line + 1 if root is not None else 1)
        if root is not None:
            composed.data = _Walk(loader, composed).node(root, ())
        return composed
    except yaml.YAMLError as exc:
        raise _yaml_problem(exc, text) from None
    finally:
        if loader is not None:
            loader.dispose()
