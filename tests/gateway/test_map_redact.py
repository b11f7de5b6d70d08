"""Redaction names from the map: `shadow.redact` (field names) and `shadow.redact_headers`
(header names), in `defaults` or on a route, add to the built-in names and never replace them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.map_loader import MapError, parse_map
from gateway.parity import schema
from gateway.parity.redact import REDACTED, Redactor, capture_json, request_json, secrets_of
from gateway.settings import GatewaySettings
from tests.gateway.parity.support import answer, everything_stored, request, table_rows
from tests.support import asgi_client

SSN, CARD, PASSWORD, KEY, TRACE = "ssn-078-05-1120", "card-4111-1111", "pw-not-for-the-store", "ik-9f8e7d6c", "tr-0a1b2c"
MAP = """\
version: 1
defaults:
  shadow:
    noise_sample: 0
    redact: [ssn]
    redact_headers: [X-Internal-Key]
routes:
  - id: profile.get
    path: /profile
    methods: [GET]
    owner: legacy
    shadow: {sample: 1.0, redact: [card_number], redact_headers: [x-trace-secretless]}
"""


def test_the_map_adds_names_to_the_built_in_ones() -> None:
    loaded = parse_map(MAP, "m.yaml")
    rules = loaded.map.shadow_of(loaded.map.routes[0])
    assert rules.redact == ("ssn", "card_number")
    assert rules.redact_headers == ("x-internal-key", "x-trace-secretless")  # lower-cased
    r = Redactor(rules.redact, headers=rules.redact_headers)
    assert {"password", "token", "api_key", "ssn", "card_number"} <= r.fields  # never replaced
    # a defaults list used to replace the built-in one: `redact: [ssn]` let passwords through
    only = parse_map("version: 1\ndefaults: {shadow: {redact: [ssn]}}\nroutes: [{id: a, path: /a}]\n")
    r = Redactor(only.map.shadow_of(only.map.routes[0]).redact)
    assert r.hidden("ssn") and r.hidden("password") and r.hidden("new_password") and not r.hidden("name")


@pytest.mark.parametrize(
    ("shadow", "line", "message"),
    [
        ("    redact: ssn\n", 4, "defaults.shadow.redact: must be a list of names, e.g. [ssn, card_number] (got 'ssn')"),
        ("    redact: [ssn, 7]\n", 4, "defaults.shadow.redact[1]: Input should be a valid string (got 7)"),
        ("    redact: [user.ssn]\n", 4, "defaults.shadow.redact: 'user.ssn' is not a field name (no spaces, dots or "
         "brackets), e.g. card_number (got ['user.ssn'])"),
        ("    redact: ['']\n", 4, "defaults.shadow.redact: '' is not a field name (no spaces, dots or brackets), "
         "e.g. card_number (got [''])"),
        ("    redact_headers: x-key\n", 4,
         "defaults.shadow.redact_headers: must be a list of names, e.g. [x-internal-key] (got 'x-key')"),
        ("    redact_headers: ['x key']\n", 4, "defaults.shadow.redact_headers: 'x key' is not an HTTP header name, "
         "e.g. x-internal-key (got ['x key'])"),
        ("    redact_headers: ['x-key:']\n", 4, "defaults.shadow.redact_headers: 'x-key:' is not an HTTP header name, "
         "e.g. x-internal-key (got ['x-key:'])"),
        ("    redact: {fields: [ssn]}\n", 4,
         "defaults.shadow.redact: must be a list of names, e.g. [ssn, card_number] (got {'fields': ['ssn']})"),
        ("    redact_header: [x-key]\n", 4, "unknown key 'redact_header' in defaults.shadow"),
    ],
)
def test_bad_redaction_names_are_refused_with_their_line(shadow: str, line: int, message: str) -> None:
    text = "version: 1\ndefaults:\n  shadow:\n" + shadow + "routes: []\n"
    with pytest.raises(MapError) as caught:
        parse_map(text, "m.yaml")
    assert [str(p) for p in caught.value.problems] == [f"m.yaml:{line}: {message}"]


def test_a_configured_header_is_hidden_and_its_value_scrubbed_elsewhere() -> None:
    req = request(headers=(("X-Internal-Key", KEY), ("Accept", "*/*")))
    echoed = answer({"seen": f"key was {KEY}"})
    r = Redactor((), secrets_of(req, echoed, headers=["x-internal-key"]), headers=["x-internal-key"])
    assert dict(request_json(req, r)["headers"]) == {"X-Internal-Key": REDACTED, "Accept": "*/*"}
    assert capture_json(echoed, r)["body"]["value"] == {"seen": f"key was {REDACTED}"}
    assert r.rendering("headers.x-internal-key", KEY) == REDACTED
    assert Redactor(()).rendering("headers.x-internal-key", KEY) == KEY  # not configured: shown


@pytest.mark.anyio
async def test_a_shadowed_request_lands_in_the_store_with_the_map_s_names_redacted(
    sqlite_url: str, tmp_path: Path
) -> None:
    map_path = tmp_path / "migration_map.yaml"
    map_path.write_text(MAP)
    settings = GatewaySettings(
        map_path=map_path, store_url=sqlite_url, legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
        native_app="tests.gateway.wsgi_fixtures:native_app",
    )
    gw = Gateway(settings)
    await gw.startup({})
    try:
        async with asgi_client(gw.dispatcher) as c:
            body = {"name": "ann", "ssn": SSN, "card": {"card_number": CARD}, "password": PASSWORD}
            r = await c.request("GET", "/profile", params={"ssn": SSN, "page": "2"}, json=body,
                                headers={"X-Internal-Key": KEY, "X-Trace": TRACE})
            assert r.status_code == 200 and r.text == "legacy GET /profile"
        assert gw.shadow is not None
        await gw.shadow.stop(10)  # the comparison is done
    finally:
        await gw.shutdown()  # the recorder flushes last
    stored = everything_stored(sqlite_url)
    for secret in (SSN, CARD, PASSWORD, KEY):
        assert secret not in stored
    [sample] = table_rows(sqlite_url, schema.samples)  # legacy's text against native's JSON: a mismatch
    sent = json.loads(sample["request"])
    assert sent["body"] == {"kind": "json", "value": {
        "name": "ann", "ssn": REDACTED, "card": {"card_number": REDACTED}, "password": REDACTED}}
    assert sent["query"] == "ssn=[redacted]&page=2"
    headers = {name.lower(): value for name, value in sent["headers"]}
    assert headers["x-internal-key"] == REDACTED
    assert headers["x-trace"] == TRACE  # not a name the map gave: stored as sent
