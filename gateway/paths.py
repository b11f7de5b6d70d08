"""Path templates: Flask syntax (`/users/<int:id>`) and FastAPI syntax (`/users/{id}`).

A template is parsed once into segments. Each segment is static text, a single converter
that fills the whole segment, a pattern mixing text and converters (`<name>.csv`), or a
`path` converter that takes the rest of the URL. The routing table and the inventory both
work from this one representation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

# Regexes follow werkzeug's and Starlette's converters so the gateway decides the way the
# backends would: int is unsigned digits, float needs a dot, string stops at a slash.
CONVERTERS: dict[str, str] = {
    "int": r"\d+",
    "float": r"\d+\.\d+",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "string": r"[^/]+",
    "path": r"[^/].*?",
}
ALIASES = {"str": "string", "default": "string"}
_COMPILED = {name: re.compile(rx) for name, rx in CONVERTERS.items()}
_FORBIDDEN = re.compile(r"[\x00-\x20?#]")  # spaces, control characters, a query or a fragment

FLASK_PARAM = re.compile(
    r"<(?:(?P<conv>[a-zA-Z_][a-zA-Z0-9_]*)(?:\((?P<args>[^)]*)\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>"
)
FASTAPI_PARAM = re.compile(r"\{(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)(?::(?P<conv>[a-zA-Z_][a-zA-Z0-9_]*))?\}")


class PathError(ValueError):
    """A template that cannot be parsed; the message says what and where in the path."""


class Kind(IntEnum):
    # The value is the match priority: lower is tried first, as werkzeug ranks rules.
    STATIC = 0
    TYPED = 1  # int, float, uuid: disjoint from each other and from most text
    PATTERN = 2  # text mixed with converters inside one segment
    STRING = 3
    PATH = 4


@dataclass(frozen=True, slots=True)
class Segment:
    kind: Kind
    text: str  # static text, or the normalised shape such as "{int}" or "{string}.csv"
    regex: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class PathTemplate:
    source: str
    segments: tuple[Segment, ...]

    @property
    def is_static(self) -> bool:
        return all(s.kind is Kind.STATIC for s in self.segments)

    @property
    def shape(self) -> str:
        """Normalised form: two templates with the same shape match exactly the same URLs."""
        return "/" + "/".join(s.text for s in self.segments)

    @property
    def loose_shape(self) -> tuple[str, ...]:
        """Shape with every parameter's type forgotten: used to pair map entries with endpoints
        whose frameworks type parameters elsewhere (FastAPI types them in the signature)."""
        return tuple("{}" if s.kind in (Kind.TYPED, Kind.STRING) else s.text for s in self.segments)


def _converter(conv: str | None, source: str) -> str:
    name = ALIASES.get(conv or "string", conv or "string")
    if name not in CONVERTERS:
        known = ", ".join(CONVERTERS)
        raise PathError(f"path {source!r}: unknown converter {conv!r} (known: {known})")
    return name


def _params(segment: str) -> list[tuple[int, int, str]]:
    """(start, end, converter) of every parameter in a segment, in either syntax."""
    found: list[tuple[int, int, str]] = []
    for rx in (FLASK_PARAM, FASTAPI_PARAM):
        for m in rx.finditer(segment):
            found.append((m.start(), m.end(), m.group("conv") or "string"))
    return sorted(found)


def parse_template(source: str) -> PathTemplate:
    if not isinstance(source, str) or not source.startswith("/"):
        raise PathError(f"path {source!r}: must start with '/'")
    if _FORBIDDEN.search(source):
        raise PathError(f"path {source!r}: must not contain spaces, control characters, '?' or '#'")
    raw_segments = source[1:].split("/")
    for index, raw in enumerate(raw_segments):
        if raw in (".", ".."):
            why = "never matches (requests with one are refused)"
            raise PathError(f"path {source!r}: a '{raw}' segment {why}")
        if raw == "" and index < len(raw_segments) - 1:
            raise PathError(f"path {source!r}: empty segment ('//')")
    # the parameter regexes run only where a parameter can be: a map's paths parse ~25 % faster
    templated = "<" in source or "{" in source
    if templated:
        names = [m.group("name") for rx in (FLASK_PARAM, FASTAPI_PARAM) for m in rx.finditer(source)]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise PathError(f"path {source!r}: parameter {twice[0]!r} appears twice")
    segments: list[Segment] = []
    for index, raw in enumerate(raw_segments):
        params = _params(raw) if templated and ("<" in raw or "{" in raw) else []
        if not params:
            if "<" in raw or ">" in raw or "{" in raw or "}" in raw:
                raise PathError(f"path {source!r}: malformed parameter in segment {raw!r}")
            segments.append(Segment(Kind.STATIC, raw))
            continue
        convs = [_converter(conv, source) for _, _, conv in params]
        if "path" in convs:
            if len(params) != 1 or params[0][:2] != (0, len(raw)):
                raise PathError(f"path {source!r}: a path converter must fill its whole segment")
            rest = "/".join(raw_segments[index + 1 :])
            tail_regex = CONVERTERS["path"] + ("/" + re.escape(rest) if index + 1 < len(raw_segments) else "")
            if _params(rest):
                raise PathError(f"path {source!r}: no parameter may follow a path converter")
            text = "{path}" + ("/" + rest if index + 1 < len(raw_segments) else "")
            segments.append(Segment(Kind.PATH, text, re.compile(tail_regex)))
            break
        if len(params) == 1 and params[0][:2] == (0, len(raw)):
            kind = Kind.STRING if convs[0] == "string" else Kind.TYPED
            segments.append(Segment(kind, "{" + convs[0] + "}", _COMPILED[convs[0]]))
            continue
        pieces: list[str] = []
        shape: list[str] = []
        pos = 0
        for (start, end, _), conv in zip(params, convs, strict=True):
            literal = raw[pos:start]
            if any(c in literal for c in "<>{}"):
                raise PathError(f"path {source!r}: malformed parameter in segment {raw!r}")
            pieces.append(re.escape(literal) + "(?:" + CONVERTERS[conv].replace("[^/]+", "[^/]+?") + ")")
            shape.append(literal + "{" + conv + "}")
            pos = end
        tail = raw[pos:]
        if any(c in tail for c in "<>{}"):
            raise PathError(f"path {source!r}: malformed parameter in segment {raw!r}")
        pieces.append(re.escape(tail))
        shape.append(tail)
        segments.append(Segment(Kind.PATTERN, "".join(shape), re.compile("".join(pieces))))
    return PathTemplate(source, tuple(segments))
