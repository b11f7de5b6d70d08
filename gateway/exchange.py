"""The data that shadow traffic produces, shared by the comparator, the shadow runner and the
parity store: what one side answered, and how two answers differ."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Side(StrEnum):
    LEGACY = "legacy"
    NEW = "new"


@dataclass(frozen=True, slots=True)
class Capture:
    """One side's answer. `truncated` means the body passed max_body_bytes and is incomplete."""

    status: int
    headers: tuple[tuple[str, str], ...]  # names lower-case, in the order sent
    body: bytes
    truncated: bool = False

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class CapturedRequest:
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


class DiffKind(StrEnum):
    STATUS = "status"  # HTTP status differs
    HEADER = "header"  # a compared header differs or is absent on one side
    VALUE = "value"  # same JSON type, other value
    TYPE = "type"  # JSON types differ (number vs string, object vs list...)
    MISSING = "missing"  # the owner has the key/element, the candidate does not
    EXTRA = "extra"  # the candidate has a key/element the owner does not
    ORDERING = "ordering"  # same list elements, other order
    SIZE = "size"  # lists of different length
    TEXT = "text"  # text or form bodies differ
    DIGEST = "digest"  # other bodies (binary) differ by digest


@dataclass(frozen=True, slots=True)
class Difference:
    # "status", "headers.content-type", "body.items[].price", "body" (whole text/binary body);
    # list indices are folded to [] so the same field in every element counts as one field
    path: str
    kind: DiffKind
    owner: str | None = None  # short rendering of the owner's value (<= 200 chars)
    candidate: str | None = None
