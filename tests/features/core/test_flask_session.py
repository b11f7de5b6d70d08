"""Reading Flask's signed session cookie without Flask: signed, tampered, expired."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from flask import Flask
from flask.json.tag import TaggedJSONSerializer
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from markupsafe import Markup

from features.core.flask_session import SessionCookie, TaggedJSON
from tests.features import helpers

SECRET = "cookie-secret"
LIFETIME = timedelta(days=31)


def flask_cookie(data: dict[str, object], secret: str = SECRET) -> str:
    return helpers.flask_cookie(data, secret)


def cookie_signed_at(data: dict[str, object], when: float, secret: str = SECRET) -> str:
    """Flask's algorithm, spelled out with itsdangerous, with the signing time set."""

    class SignerAt(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(when)

    serializer = URLSafeTimedSerializer(
        secret,
        salt="cookie-session",
        serializer=TaggedJSONSerializer(),
        signer=SignerAt,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
    )
    return serializer.dumps(data)


def reader(secret: str = SECRET) -> SessionCookie:
    return SessionCookie(secret, max_age=LIFETIME)


def test_reads_a_cookie_flask_signed() -> None:
    assert reader().loads(flask_cookie({"user_id": 7})) == {"user_id": 7}


def test_reads_a_cookie_signed_with_the_same_algorithm() -> None:
    assert reader().loads(cookie_signed_at({"user_id": 3}, time.time())) == {"user_id": 3}


def test_reads_a_cookie_flask_compressed() -> None:
    # large sessions are zlib-compressed by itsdangerous (a leading ".")
    data = {"user_id": 1, "padding": "x" * 500}
    cookie = flask_cookie(data)
    assert cookie.startswith(".")
    assert reader().loads(cookie) == data


@pytest.mark.parametrize("part", [0, 1, 2], ids=["payload", "timestamp", "signature"])
def test_a_tampered_cookie_reads_as_logged_out(part: int) -> None:
    cookie = flask_cookie({"user_id": 7})
    parts = cookie.split(".")
    # the first character of a part: all of its bits count (the last one may have padding)
    parts[part] = ("A" if parts[part][0] != "A" else "B") + parts[part][1:]
    tampered = ".".join(parts)
    assert tampered != cookie
    assert reader().loads(tampered) == {}


def test_a_forged_payload_with_the_old_signature_reads_as_logged_out() -> None:
    cookie = flask_cookie({"user_id": 7})
    other = flask_cookie({"user_id": 1})
    payload, signature = cookie.split(".", 1)[0], other.split(".", 1)[1]
    assert reader().loads(f"{payload}.{signature}") == {}


def test_another_secret_reads_as_logged_out() -> None:
    assert reader().loads(flask_cookie({"user_id": 7}, secret="someone-else")) == {}


def test_an_expired_cookie_reads_as_logged_out() -> None:
    old = time.time() - LIFETIME.total_seconds() - 60
    assert reader().loads(cookie_signed_at({"user_id": 7}, old)) == {}


def test_a_cookie_inside_its_lifetime_is_accepted() -> None:
    recent = time.time() - LIFETIME.total_seconds() + 3600
    assert reader().loads(cookie_signed_at({"user_id": 7}, recent)) == {"user_id": 7}


def test_the_lifetime_is_configurable() -> None:
    two_hours_ago = time.time() - 7200
    short = SessionCookie(SECRET, max_age=timedelta(hours=1))
    assert short.loads(cookie_signed_at({"user_id": 7}, two_hours_ago)) == {}


@pytest.mark.parametrize("cookie", [None, "", "garbage", "a.b.c", "..", "e30.e30.e30"])
def test_garbage_reads_as_logged_out(cookie: str | None) -> None:
    assert reader().loads(cookie) == {}


def test_a_signed_payload_that_is_not_an_object_reads_as_logged_out() -> None:
    assert reader().loads(cookie_signed_at([1, 2], time.time())) == {}  # type: ignore[arg-type]


TAGGED = {
    "user_id": 5,
    "tuple": (1, "two", [3, (4,)]),
    "bytes": b"\x00\xffraw",
    "markup": Markup("<b>bold</b>"),
    "uuid": UUID("12345678-1234-5678-1234-567812345678"),
    "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    "looks_like_a_tag": {" t": "not a tuple"},
    "nested": {"list": [{" u": "plain"}, {"a": 1, " b": 2}]},
    "_fresh": True,
    "_permanent": False,
}


def test_tagged_json_decodes_every_flask_tag() -> None:
    with Flask(__name__).app_context():
        text = TaggedJSONSerializer().dumps(TAGGED)
    decoded = TaggedJSON.loads(text)
    assert decoded == {**TAGGED, "markup": "<b>bold</b>"}
    assert isinstance(decoded["tuple"], tuple)
    assert isinstance(decoded["tuple"][2][1], tuple)


def test_tagged_json_encodes_like_flask() -> None:
    with Flask(__name__).app_context():
        expected = TaggedJSONSerializer().dumps(TAGGED)
    assert TaggedJSON.dumps(TAGGED) == expected


def test_flask_reads_a_cookie_written_here() -> None:
    cookie = reader().dumps({"user_id": 9, "when": datetime(2024, 5, 6, tzinfo=UTC)})
    app = Flask(__name__)
    app.secret_key = SECRET
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert serializer is not None
    assert serializer.loads(cookie) == {"user_id": 9, "when": datetime(2024, 5, 6, tzinfo=UTC)}
