"""What a stored sample may contain: requests and answers with their secrets taken out.

Credentials (Authorization, Cookie, Set-Cookie, Proxy-Authorization, X-API-Key, any header
named for one, and the headers a map lists in `shadow.redact_headers`) never reach the store:
their header values are replaced, and the values themselves are scrubbed wherever else they
appear (an app that echoes its request headers, a diff rendering). Secret field names (the
built-in SECRET_FIELDS, and those a map adds in `shadow.redact`) are replaced at any depth of
a JSON body, in forms, in the query string, and in text that looks like `name: value` or
`name=value`. A map only ever adds names: the built-in ones are hidden whatever it says.
Bodies are stored in a bounded form: JSON up to MAX_JSON characters, other text up to
MAX_TEXT, binary as a digest; gzip and deflate bodies are decoded first (up to MAX_INFLATED
bytes).
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Sequence
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl, urlencode

from gateway.exchange import Capture, CapturedRequest, Difference

REDACTED = "[redacted]"
SECRET_FIELDS = frozenset({"password", "token", "access_token", "refresh_token", "secret", "api_key"})
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
# and any header whose name says it carries a credential: X-Auth-Token, X-Session-Secret, ...
_CREDENTIAL_NAME = re.compile(r"(?i)auth|token|secret|passw|api[-_]?key|session")


def sensitive_header(name: str) -> bool:
    name = name.lower()
    return name in SENSITIVE_HEADERS or _CREDENTIAL_NAME.search(name) is not None
MAX_TEXT = 64 * 1024
MAX_JSON = 256 * 1024
MAX_INFLATED = 4 * 1024 * 1024  # a compressed body is read up to this size, never further
_MIN_SECRET = 4  # shorter values would scrub innocent text ("1", "yes")
_TEXTUAL = ("text/", "application/xml", "application/javascript")

Headers = Sequence[tuple[str, str]]


def secrets_of(request: CapturedRequest, *answers: Capture, headers: Iterable[str] = ()) -> set[str]:
    """Credential values carried by the exchange: whole header values and their parts, of the
    built-in credential headers and of the configured `headers`."""
    found: set[str] = set()
    extra = frozenset(h.lower() for h in headers)
    for name, value in [*request.headers, *(h for a in answers for h in a.headers)]:
        name = name.lower()
        if not sensitive_header(name) and name not in extra:
            continue
        found.add(value.strip())
        if name.endswith("authorization"):
            found.add(value.strip().rpartition(" ")[2])
        elif name == "cookie":
            found.update(part.partition("=")[2].strip() for part in value.split(";"))
        elif name == "set-cookie":
            found.add(value.split(";", 1)[0].partition("=")[2].strip())
    return {s for s in found if len(s) >= _MIN_SECRET}


class Redactor:
    def __init__(
        self, fields: Iterable[str], secrets: Iterable[str] = (), headers: Iterable[str] = ()
    ) -> None:
        self.fields = SECRET_FIELDS | frozenset(f.lower() for f in fields if f)
        self.extra_headers = frozenset(h.lower() for h in headers)
        # a configured name also hides the names built on it: `password` hides new_password
        # and passwordConfirm, `token` hides refresh_token
        self._within = (
            re.compile("|".join(re.escape(f) for f in sorted(self.fields, key=len, reverse=True)))
            if self.fields
            else None
        )
        self.secrets = sorted(set(secrets), key=len, reverse=True)
        names = "|".join(re.escape(f) for f in sorted(self.fields, key=len, reverse=True))
        # `name: value`, `"name": "value"`, `name=value` in text that is not parsed as a whole
        self._pairs = (
            re.compile(
                rf"""(?i)(["']?\b[\w-]*(?:{names})[\w-]*\b["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^\s&,;}}\]<]+)"""
            )
            if names
            else None
        )

    def text(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        if self._pairs is not None:
            text = self._pairs.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    def hidden_header(self, name: str) -> bool:
        return sensitive_header(name) or name.lower() in self.extra_headers

    def hidden(self, name: str) -> bool:
        name = name.lower()
        return name in self.fields or (self._within is not None and self._within.search(name) is not None)

    def json(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if self.hidden(k) else self.json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def headers(self, headers: Headers) -> list[list[str]]:
        return [
            [name, REDACTED if self.hidden_header(name) else self.text(value)]
            for name, value in headers
        ]

    def pairs(self, pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
        return [[self.text(k), REDACTED if self.hidden(k) else self.text(v)] for k, v in pairs]

    def query(self, query: str) -> str:
        if not query:
            return ""
        pairs = self.pairs(parse_qsl(query, keep_blank_values=True))
        return urlencode([(k, v) for k, v in pairs], safe="[]")

    def body(
        self, body: bytes, content_type: str | None, truncated: bool = False, encoding: str | None = None
    ) -> dict[str, Any]:
        if truncated:
            return {"kind": "truncated"}
        if not body:
            return {"kind": "empty"}
        coding = (encoding or "").strip().lower()
        if coding not in ("", "identity"):
            decoded = _inflate(body, coding)
            if decoded is None:
                return _digest(body) | {"encoding": coding}
            return self.body(decoded, content_type) | {"encoding": coding}
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media == "application/json" or media.endswith("+json") or body[:1] in (b"{", b"["):
            try:
                parsed = json.loads(body)
            except ValueError:
                pass
            else:
                value = self.json(parsed)
                if len(json.dumps(value)) <= MAX_JSON:
                    return {"kind": "json", "value": value}
                return self._text(json.dumps(value), len(body))
        if media == "application/x-www-form-urlencoded":
            text = body.decode("utf-8", "replace")
            return {"kind": "form", "fields": self.pairs(parse_qsl(text, keep_blank_values=True))}
        if media == "multipart/form-data" and content_type:
            parts = self._multipart(body, content_type)
            if parts is not None:
                return {"kind": "multipart", "parts": parts}
            return _digest(body)
        if media.startswith(_TEXTUAL):
            return self._text(body.decode("utf-8", "replace"), len(body))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return _digest(body)
        return _digest(body) if "\x00" in text else self._text(text, len(body))

    def _text(self, text: str, length: int) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "text", "text": self.text(text[:MAX_TEXT])}
        if len(text) > MAX_TEXT:
            out |= {"truncated": True, "length": length}
        return out

    def _multipart(self, body: bytes, content_type: str) -> list[dict[str, Any]] | None:
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        if not message.is_multipart():
            return None
        parts: list[dict[str, Any]] = []
        for part in message.iter_parts():
            name = str(part.get_param("name", "", header="content-disposition"))
            data = part.get_payload(decode=True)
            payload = data if isinstance(data, bytes) else b""
            filename = part.get_filename()
            if filename is not None:
                parts.append({"name": name, "filename": self.text(filename)} | _digest(payload))
            elif self.hidden(name):
                parts.append({"name": name, "value": REDACTED})
            else:
                text = payload.decode("utf-8", "replace")[:MAX_TEXT]
                parts.append({"name": name, "value": self.text(text)})
        return parts

    def rendering(self, path: str, rendered: str | None) -> str | None:
        """A difference's rendered value: hidden when its path names a secret."""
        if rendered is None:
            return None
        names = [seg.removesuffix("[]") for seg in path.split(".")]
        if names[0] == "headers" and len(names) > 1 and self.hidden_header(".".join(names[1:])):
            return REDACTED
        if any(self.hidden(n) for n in names[1:]):
            return REDACTED
        return self.text(rendered)


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _inflate(body: bytes, coding: str) -> bytes | None:
    """A gzip or deflate body decoded, up to MAX_INFLATED bytes; None when it cannot be."""
    wbits = _WBITS.get(coding)
    if wbits is None:
        return None
    try:
        inflater = zlib.decompressobj(wbits)
        data = inflater.decompress(body, MAX_INFLATED)
    except zlib.error:
        return None
    return data if inflater.eof else None  # cut short, or larger than we read: keep the digest


def _digest(body: bytes) -> dict[str, Any]:
    return {"kind": "binary", "sha256": hashlib.sha256(body).hexdigest(), "length": len(body)}


def request_json(request: CapturedRequest, redactor: Redactor) -> dict[str, Any]:
    content_type = next((v for k, v in request.headers if k.lower() == "content-type"), None)
    return {
        "method": request.method,
        "path": request.path,
        "query": redactor.query(request.query),
        "headers": redactor.headers(request.headers),
        "body": redactor.body(request.body, content_type),
    }


def capture_json(capture: Capture, redactor: Redactor) -> dict[str, Any]:
    return {
        "status": capture.status,
        "headers": redactor.headers(capture.headers),
        "body": redactor.body(
            capture.body,
            capture.header("content-type"),
            capture.truncated,
            encoding=capture.header("content-encoding"),
        ),
    }


def differences_json(diffs: Iterable[Difference], redactor: Redactor) -> list[dict[str, Any]]:
    return [
        {
            "path": d.path,
            "kind": str(d.kind),
            "owner": redactor.rendering(d.path, d.owner),
            "candidate": redactor.rendering(d.path, d.candidate),
        }
        for d in diffs
    ]
