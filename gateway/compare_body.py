"""A response body as the comparator sees it: content-encoding undone, media type and charset
read, text and JSON decoded. Pure functions over bytes."""

from __future__ import annotations

import hashlib
import json
import zlib

from gateway.compare_json import MAX_RENDER
from gateway.exchange import Capture

# A broken or hostile side must not be able to freeze the event loop with a gzip bomb.
MAX_DECODED_BYTES = 64 * 1024 * 1024
_TEXT_TYPES = frozenset(
    {"application/xml", "application/javascript", "application/ecmascript", "application/x-ndjson"}
)
INVALID = object()  # what parse_json returns for a body that is not JSON


class Undecodable(str):
    """Why a body could not be decoded: its rendering in a DIGEST difference."""


def encoding(capture: Capture) -> str:
    return (capture.header("content-encoding") or "").strip().lower()


def decoded(capture: Capture) -> bytes | Undecodable:
    data = capture.body
    codings = [c.strip() for c in encoding(capture).split(",") if c.strip() not in ("", "identity")]
    if not data:
        return data
    for coding in reversed(codings):  # applied in the order listed, so undone from the last
        try:
            if coding in ("gzip", "x-gzip"):
                data = _inflate(data, 16 + zlib.MAX_WBITS)
            elif coding == "deflate":
                try:
                    data = _inflate(data, zlib.MAX_WBITS)
                except zlib.error:  # some servers send raw deflate without the zlib wrapper
                    data = _inflate(data, -zlib.MAX_WBITS)
            else:
                return Undecodable(f"undecodable: content-encoding {coding!r} ({digest(data)})")
        except (zlib.error, ValueError) as exc:
            return Undecodable(f"undecodable {coding} body: {exc}"[:MAX_RENDER])
    return data


def _inflate(data: bytes, wbits: int) -> bytes:
    out = bytearray()
    while data:  # gzip allows several members one after another
        inflater = zlib.decompressobj(wbits)
        out += inflater.decompress(data, MAX_DECODED_BYTES + 1 - len(out))
        if len(out) > MAX_DECODED_BYTES:
            raise ValueError(f"decodes to more than {MAX_DECODED_BYTES} bytes")
        if not inflater.eof:
            raise zlib.error("stream ends early")
        data = inflater.unused_data if wbits > 16 else b""
    return bytes(out)


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()[:16]} ({len(data)} bytes)"


def digest_or_reason(data: bytes | Undecodable) -> str:
    return str(data) if isinstance(data, Undecodable) else digest(data)


def media(capture: Capture) -> tuple[str, str]:
    kind, _, params = (capture.header("content-type") or "").partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    return kind.strip().lower(), charset


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def is_text(media: str) -> bool:
    return (
        media.startswith("text/")
        or media in _TEXT_TYPES
        or media.endswith("+xml")
        or media == "application/x-www-form-urlencoded"
        or is_json(media)
    )


def parse_json(data: bytes) -> tuple[object, bool]:
    """The document, and whether it may hold booleans (a cheap C-speed search in the text)."""
    try:
        text = data.decode(json.detect_encoding(data), "surrogatepass")  # what json.loads does
        return json.loads(text), "true" in text or "false" in text
    except (ValueError, RecursionError):
        return INVALID, False


def text(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return data.decode("utf-8", errors="replace")


def first_difference(a: str, b: str) -> int:
    low, high = 0, min(len(a), len(b))  # bisect on prefix equality: C-speed slices, not a loop
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def excerpt(value: str, start: int) -> str:
    """Up to MAX_RENDER characters from a little before the first difference."""
    start = max(0, start - 40)
    prefix = "…" if start else ""
    clip = value[start : start + MAX_RENDER - len(prefix)]
    if start + len(clip) < len(value):
        clip = clip[:-1] + "…"
    return prefix + clip
