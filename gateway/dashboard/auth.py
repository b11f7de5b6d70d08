"""Who may see the dashboard: the admin tokens, offered once in a form, then a signed cookie.

Browsers cannot send a bearer header from a link, so a login form takes the token and the
gateway answers with a session cookie: the holder's name and an expiry, signed with
HMAC-SHA256 under a key derived from that holder's token. The token itself never goes in
the cookie. Keys are derived, not random, so every worker and replica accepts the same
cookie; changing a holder's token ends that holder's sessions, and only theirs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

from pydantic import SecretStr

COOKIE = "gateway_session"
COOKIE_PATH = "/_gateway"
LIFETIME_S = 12 * 3600
_VERSION = "v1"
_CONTEXT = b"migration-gateway dashboard session v1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(token: bytes) -> bytes:
    # the signing key, not the token: a cookie that leaks never carries what opens the admin API
    return hmac.new(token, _CONTEXT, hashlib.sha256).digest()


class Sessions:
    def __init__(self, tokens: Mapping[str, SecretStr], lifetime_s: int = LIFETIME_S) -> None:
        self.lifetime_s = lifetime_s
        secrets = [(name, token.get_secret_value().encode()) for name, token in tokens.items()]
        self._secrets = [(name, secret) for name, secret in secrets if secret]
        self._keys = {name: _derive(secret) for name, secret in self._secrets}

    @property
    def enabled(self) -> bool:
        return bool(self._secrets)

    def holder_of(self, token: str) -> str | None:
        """The name whose token this is. Every token is compared, in constant time, so the
        time taken does not tell how much of which one matched."""
        offered = token.strip().encode()
        holder = None
        for name, secret in self._secrets:
            if hmac.compare_digest(offered, secret) and holder is None:
                holder = name
        return holder

    def bearer(self, authorization: str) -> str | None:
        scheme, _, given = authorization.partition(" ")
        return self.holder_of(given) if scheme.lower() == "bearer" else None

    def issue(self, holder: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.lifetime_s)
        payload = f"{_VERSION}.{_b64(holder.encode())}.{expires}"
        return f"{payload}.{_b64(self._sign(holder, payload))}"

    def verify(self, cookie: str, now: float | None = None) -> str | None:
        """The holder a cookie was issued to, or None if it is forged, malformed, expired, or
        its holder's token has changed or gone."""
        parts = cookie.split(".")
        if len(parts) != 4 or parts[0] != _VERSION:
            return None
        try:
            holder = _unb64(parts[1]).decode()
            expires = int(parts[2])
            signature = _unb64(parts[3])
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if holder not in self._keys:
            return None
        expected = self._sign(holder, ".".join(parts[:3]))
        if not hmac.compare_digest(signature, expected):
            return None
        return holder if expires > (time.time() if now is None else now) else None

    def _sign(self, holder: str, payload: str) -> bytes:
        return hmac.new(self._keys[holder], payload.encode(), hashlib.sha256).digest()
