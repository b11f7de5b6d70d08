"""The dashboard's session cookie: signed per holder, expiring, never carrying the token."""

from __future__ import annotations

import base64
import hashlib
import hmac

from pydantic import SecretStr

from gateway.dashboard import auth
from gateway.dashboard.auth import Sessions

TOKENS = {"alice": SecretStr("alice-token-123"), "bob": SecretStr("bob-token-456")}
NOW = 1_700_000_000.0


def sessions(**tokens: str) -> Sessions:
    return Sessions({k: SecretStr(v) for k, v in tokens.items()} if tokens else TOKENS, lifetime_s=3600)


def test_a_cookie_names_its_holder_until_it_expires() -> None:
    s = sessions()
    cookie = s.issue("alice", now=NOW)
    assert s.verify(cookie, now=NOW + 1) == "alice"
    assert s.verify(cookie, now=NOW + 3599) == "alice"
    assert s.verify(cookie, now=NOW + 3600) is None
    assert s.verify(cookie, now=NOW + 86_400) is None


def test_the_token_is_not_in_the_cookie() -> None:
    cookie = sessions().issue("alice", now=NOW)
    token = b"alice-token-123"
    assert token.decode() not in cookie
    assert base64.urlsafe_b64encode(token).decode().rstrip("=") not in cookie


def test_a_forged_or_mangled_cookie_names_nobody() -> None:
    s = sessions()
    version, name, expires, signature = s.issue("alice", now=NOW).split(".")
    later = str(int(expires) + 10 * 86_400)  # a longer life, same signature
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for forged in (
        f"{version}.{name}.{later}.{signature}",
        f"{version}.{name}.{expires}.{flipped}",
        f"{version}.{name}.{expires}.",
        f"v0.{name}.{expires}.{signature}",
        f"{version}.{name}.{expires}",
        "garbage",
        "v1.!!!.x.y",
        "",
    ):
        assert s.verify(forged, now=NOW) is None, forged


def test_a_cookie_signed_with_another_holders_key_is_refused() -> None:
    s = sessions()
    alice_key = hmac.new(b"alice-token-123", auth._CONTEXT, hashlib.sha256).digest()
    bob = base64.urlsafe_b64encode(b"bob").decode().rstrip("=")
    payload = f"v1.{bob}.{int(NOW) + 3600}"
    signature = base64.urlsafe_b64encode(hmac.new(alice_key, payload.encode(), hashlib.sha256).digest())
    assert s.verify(f"{payload}.{signature.decode().rstrip('=')}", now=NOW) is None
    # the same recipe with bob's own key is what issue() makes: the test above is not vacuous
    bob_key = hmac.new(b"bob-token-456", auth._CONTEXT, hashlib.sha256).digest()
    good = base64.urlsafe_b64encode(hmac.new(bob_key, payload.encode(), hashlib.sha256).digest())
    assert s.verify(f"{payload}.{good.decode().rstrip('=')}", now=NOW) == "bob"


def test_a_changed_or_removed_token_ends_that_holders_sessions_only() -> None:
    cookie_a, cookie_b = sessions().issue("alice", now=NOW), sessions().issue("bob", now=NOW)
    rotated = sessions(alice="a-new-token", bob="bob-token-456")
    assert rotated.verify(cookie_a, now=NOW) is None
    assert rotated.verify(cookie_b, now=NOW) == "bob"
    assert sessions(bob="bob-token-456").verify(cookie_a, now=NOW) is None


def test_tokens_and_bearer_headers_name_their_holder() -> None:
    s = sessions()
    assert (s.holder_of("alice-token-123"), s.holder_of("bob-token-456")) == ("alice", "bob")
    assert s.holder_of(" bob-token-456 ") == "bob"
    assert s.holder_of("alice-token-12") is None and s.holder_of("") is None
    assert s.bearer("Bearer alice-token-123") == "alice"
    assert s.bearer("bearer bob-token-456") == "bob"
    assert s.bearer("Basic alice-token-123") is None and s.bearer("alice-token-123") is None


def test_no_tokens_means_off() -> None:
    off = Sessions({"admin": SecretStr("")})
    assert not off.enabled and off.holder_of("") is None
    assert sessions().enabled
