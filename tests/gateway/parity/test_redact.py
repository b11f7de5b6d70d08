"""No credential and no configured field reaches the store, wherever it hides in an exchange."""

from __future__ import annotations

import gzip
import json

import pytest

from gateway.exchange import Capture, DiffKind
from gateway.parity.redact import REDACTED, Redactor, capture_json, request_json, secrets_of
from tests.gateway.parity.support import (
    JSON,
    answer,
    compare_once,
    diff,
    everything_stored,
    recorder,
    request,
)

pytestmark = pytest.mark.anyio

REDACT = ("password", "card_number", "token")
SECRETS = (
    "s3cr3t-authz", "c00kie-val", "proxy-cr3d", "k3y-header", "qtok3n", "pw-s3cret", "4111-1111-1111",
    "n3w-c00kie", "resp-t0ken", "other-t0ken", "form-pw-value", "multi-pw-value", "text-pw-value",
    "ünïcode-t0ken", "\\u00fcn",
)
MULTIPART = (
    b"--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nalice\r\n"
    b"--XyZ\r\nContent-Disposition: form-data; name=\"Password\"\r\n\r\nmulti-pw-value\r\n"
    b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n"
    b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\x02\r\n--XyZ--\r\n"
)


async def test_no_secret_reaches_any_column_of_the_store(db_url: str) -> None:
    rec = recorder(db_url)
    json_request = request(
        "/api/login",
        "POST",
        query="token=qtok3n&page=2",
        headers=(
            ("host", "testserver"),
            ("authorization", "Bearer s3cr3t-authz"),
            ("cookie", "session=c00kie-val; theme=dark"),
            ("proxy-authorization", "Basic proxy-cr3d"),
            ("x-api-key", "k3y-header"),
            ("content-type", "application/json"),
            ("x-request-id", "rid-1"),
        ),
        body=json.dumps(
            {"user": {"Password": "pw-s3cret", "profile": {"cards": [{"CARD_NUMBER": "4111-1111-1111"}]}},
             "session": {"Token": "ünïcode-t0ken"}}
        ).encode(),
    )
    owner = Capture(
        200,
        (*JSON, ("set-cookie", "session=n3w-c00kie; HttpOnly; Path=/")),
        json.dumps({"token": "resp-t0ken", "echo": {"auth": "Bearer s3cr3t-authz"}, "kept": "visible"}).encode(),
    )
    candidate = answer({"token": "other-t0ken", "echo": None, "kept": "visible"})
    diffs = (
        diff("body.token", DiffKind.VALUE, '"resp-t0ken"', '"other-t0ken"'),
        diff("body.echo", DiffKind.TYPE, '{"auth": "Bearer s3cr3t-authz"}', "null"),
        diff("headers.set-cookie", DiffKind.HEADER, "session=n3w-c00kie", None),
    )
    compare_once(rec, "auth.login", diffs, req=json_request, owner=owner, candidate=candidate, redact=REDACT)

    form = request(
        "/login", "POST", headers=(("content-type", "application/x-www-form-urlencoded"),),
        body=b"username=alice&password=form-pw-value",
    )
    text_answer = Capture(200, (("content-type", "text/plain"),), b"debug: password=text-pw-value ok")
    compare_once(rec, "auth.form", (diff("body", DiffKind.TEXT),), req=form, owner=text_answer, redact=REDACT)
    multipart = request(
        "/upload", "POST", headers=(("content-type", "multipart/form-data; boundary=XyZ"),), body=MULTIPART
    )
    compare_once(rec, "auth.upload", (diff("status", DiffKind.STATUS),), req=multipart, redact=REDACT)
    assert await rec.flush()

    stored = everything_stored(db_url)
    assert [s for s in SECRETS if s in stored] == []
    # what is not secret is still there to look at, so the test can tell redaction from loss
    for visible in ("rid-1", "visible", "alice", "profile", "page=2", "username", "a.bin", REDACTED):
        assert visible in stored


def test_json_fields_are_redacted_at_any_depth_whatever_their_case() -> None:
    r = Redactor(["password", "Card_Number"])
    value = {"a": [{"b": {"PASSWORD": "x", "card_number": {"deep": 1}, "other": "y"}}], "password": None}
    assert r.json(value) == {
        "a": [{"b": {"PASSWORD": REDACTED, "card_number": REDACTED, "other": "y"}}],
        "password": REDACTED,
    }


def test_bodies_are_stored_in_a_bounded_form() -> None:
    r = Redactor(["password"])
    assert r.body(b"", None) == {"kind": "empty"}
    assert r.body(b"whatever", "application/json", truncated=True) == {"kind": "truncated"}
    binary = r.body(b"\x89PNG\x00\x01", "image/png")
    assert binary["kind"] == "binary" and binary["length"] == 6 and len(binary["sha256"]) == 64
    big = r.body(b"x" * 200_000, "text/plain")
    assert big["kind"] == "text" and len(big["text"]) == 64 * 1024 and big["truncated"] and big["length"] == 200_000
    bad_json = r.body(b'{"password": "half-a-json', "application/json")
    assert bad_json == {"kind": "text", "text": '{"password": [redacted]'}
    latin = r.body("café".encode("latin-1"), "text/plain; charset=latin-1")
    assert latin["kind"] == "text"
    gz = r.body(gzip.compress(b'{"password": "zipped", "n": 1}'), "application/json", encoding="gzip")
    assert gz == {"kind": "json", "value": {"password": REDACTED, "n": 1}, "encoding": "gzip"}
    broken = r.body(b"not gzip at all", "application/json", encoding="gzip")
    assert broken["kind"] == "binary" and broken["encoding"] == "gzip"
    bomb = r.body(gzip.compress(b"0" * (5 * 1024 * 1024)), "text/plain", encoding="gzip")
    assert bomb["kind"] == "binary"  # decoded only up to a bound
    unknown = r.body(b"\x00br", "application/json", encoding="br")
    assert unknown["kind"] == "binary"


def test_secrets_include_the_parts_of_credential_headers() -> None:
    req = request(headers=(("Authorization", "Bearer abcd1234"), ("Cookie", "a=xyz123; b=no")))
    found = secrets_of(req, answer(headers=(("set-cookie", "sid=qwerty99; Path=/"),)))
    assert {"Bearer abcd1234", "abcd1234", "xyz123", "qwerty99"} <= found
    assert "no" not in found  # too short to scrub without damaging other text


def test_rendered_differences_under_a_secret_path_are_hidden() -> None:
    r = Redactor(["token"])
    assert r.rendering("body.items[].token", '"abc"') == REDACTED
    assert r.rendering("headers.authorization", "Bearer x") == REDACTED
    assert r.rendering("body.count", "3") == "3"
    assert r.rendering("body.count", None) is None


def test_request_and_capture_documents() -> None:
    r = Redactor(["password"], ["s3cr3t"])
    doc = request_json(request(query="password=a&x=s3cr3t", headers=(("authorization", "s3cr3t"),)), r)
    assert doc["query"] == "password=[redacted]&x=[redacted]"
    assert doc["headers"] == [["authorization", REDACTED]]
    cap = capture_json(answer({"password": "p"}, status=201), r)
    assert cap == {"status": 201, "headers": [["content-type", "application/json"]],
                   "body": {"kind": "json", "value": {"password": REDACTED}}}


def test_names_built_on_a_secret_field_and_credential_headers_are_hidden_too() -> None:
    """Exact names let new_password, passwordConfirm, an X-Auth-Token header or a
    `reset_token=` in text reach the store (found reviewing the leak test)."""
    r = Redactor(["password", "token"])
    assert r.json({"new_password": "n3w-pw-value", "passwordConfirm": "n3w-pw-value", "username": "ann"}) == {
        "new_password": REDACTED, "passwordConfirm": REDACTED, "username": "ann",
    }
    assert r.text("reset_token=abcdef123&next=/home") == f"reset_token={REDACTED}&next=/home"
    assert r.pairs([("old_password", "x1y2z3"), ("page", "2")]) == [["old_password", REDACTED], ["page", "2"]]
    req = request(headers=(("X-Auth-Token", "hdr-t0ken-9"), ("X-Session-Secret", "sess-s3cret"), ("Accept", "*/*")))
    stored = request_json(req, r)
    headers = dict(stored["headers"])
    assert headers["X-Auth-Token"] == headers["X-Session-Secret"] == REDACTED and headers["Accept"] == "*/*"
    assert {"hdr-t0ken-9", "sess-s3cret"} <= secrets_of(req)
    assert r.rendering("headers.x-auth-token", "hdr-t0ken-9") == REDACTED
