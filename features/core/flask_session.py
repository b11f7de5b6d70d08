"""Flask's signed session cookie, read (and written) without importing Flask.

Flask signs `session` with itsdangerous: `URLSafeTimedSerializer(secret_key,
salt="cookie-session", signer_kwargs={key_derivation: hmac, digest_method: sha1})` over
"tagged JSON", where non-JSON types travel as one-key objects: `{" t": [...]}` a tuple,
`{" b": "<base64>"}` bytes, `{" m": "..."}` Markup (plain `str` here), `{" u": "<hex>"}` a
UUID, `{" d": "<HTTP date>"}` a datetime, and `{" di": {"<tag>__": v}}` a one-key dict
whose key would otherwise read as a tag. Lists and other dicts are untagged.
"""

from __future__ import annotations

import hashlib
import json
from base64 import b64decode, b64encode
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from uuid import UUID

from itsdangerous import BadData, URLSafeTimedSerializer

SALT = "cookie-session"
COOKIE_NAME = "session"


def _parse_http_date(value: str) -> datetime:
    parsed = parsedate_to_datetime(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _http_date(value: datetime) -> str:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return format_datetime(aware, usegmt=True)


_UNTAG: dict[str, Callable[[Any], Any]] = {
    " t": tuple,
    " b": b64decode,
    " m": str,
    " u": UUID,
    " d": _parse_http_date,
    " di": lambda value: {key[:-2]: item for key, item in value.items()},
}


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        value = {key: _untag(item) for key, item in value.items()}
        if len(value) == 1:
            ((key, item),) = value.items()
            if key in _UNTAG:
                return _UNTAG[key](item)
        return value
    if isinstance(value, list):
        return [_untag(item) for item in value]
    return value


def _tag(value: Any) -> Any:
    # the same precedence as Flask's TaggedJSONSerializer.order
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in _UNTAG:
            ((key, item),) = value.items()
            return {" di": {f"{key}__": _tag(item)}}
        return {key: _tag(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return {" t": [_tag(item) for item in value]}
    if isinstance(value, list):
        return [_tag(item) for item in value]
    if isinstance(value, bytes):
        return {" b": b64encode(value).decode("ascii")}
    if callable(getattr(value, "__html__", None)):
        return {" m": str(value.__html__())}
    if isinstance(value, UUID):
        return {" u": value.hex}
    if isinstance(value, datetime):
        return {" d": _http_date(value)}
    return value


class TaggedJSON:
    """The `serializer` itsdangerous calls: `dumps(obj) -> str`, `loads(str) -> obj`."""

    @staticmethod
    def dumps(value: Any) -> str:
        # Flask dumps sessions inside an app context, where its JSON provider sorts keys
        return json.dumps(_tag(value), separators=(",", ":"), sort_keys=True)

    @staticmethod
    def loads(text: str | bytes) -> Any:
        return _untag(json.loads(text))


class SessionCookie:
    """Reads and writes the cookie exactly as Flask's SecureCookieSessionInterface does."""

    def __init__(self, secret_key: str, *, max_age: timedelta) -> None:
        self._serializer = URLSafeTimedSerializer(
            secret_key,
            salt=SALT,
            serializer=TaggedJSON,
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
        )
        self._max_age = int(max_age.total_seconds())

    def loads(self, cookie: str | None) -> dict[str, Any]:
        """The session's data; empty when the cookie is missing, tampered with or expired."""
        if not cookie:
            return {}
        try:
            data = self._serializer.loads(cookie, max_age=self._max_age)
        except (BadData, ValueError, TypeError):
            # BadData covers bad signatures, expiry and undecodable payloads
            return {}
        return data if isinstance(data, dict) else {}

    def dumps(self, data: Mapping[str, Any]) -> str:
        return self._serializer.dumps(dict(data))
