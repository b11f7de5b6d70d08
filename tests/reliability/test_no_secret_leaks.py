"""Credentials sent through shadowed routes never reach the parity store or the gateway's log.

A real `gateway serve` shadows login, user creation and two reads, with a native side that
answers differently (so that every comparison differs and its sample is stored). The test
sends the canary secrets of tests/support.py everywhere a client puts credentials:
Authorization and X-Api-Key headers, cookies, JSON fields (also nested), form and multipart
fields, the query string; the legacy side answers logins with a Set-Cookie session. Then the
store and the log must hold none of those values, while the stored samples show each of them
as "[redacted]" (so the secrets did go down the path that redacts them). The session-end scan
in tests/conftest.py checks the same over every store and log of the whole run.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.e2e.conftest import Server
from tests.leaks import scan_files
from tests.support import (
    LEARNT_SECRETS,
    SECRET_API_KEY,
    SECRET_BEARER,
    SECRET_COOKIE,
    SECRET_PASSWORD,
    SECRET_TOKEN,
    secrets_to_find,
    wait_until,
)

pytestmark = pytest.mark.e2e

REDACTED = "[redacted]"
ADMIN = {"email": "admin@example.com", "password": "admin-password"}
CANARY_USER = {"email": "canary-user@example.com", "name": "Canary User", "password": SECRET_PASSWORD}
MAP = """\
version: 1
defaults:
  shadow: {noise_sample: 0}
routes:
  - id: auth.login
    path: /auth/login
    methods: [POST]
    owner: legacy
    shadow: {sample: 1.0, unsafe: rollback, compare_headers: [content-type, set-cookie]}
  - id: users.create
    path: /api/users
    methods: [POST]
    owner: legacy
    shadow: {sample: 1.0, unsafe: rollback}
  - id: products.get
    path: /api/products/<int:product_id>
    methods: [GET]
    owner: legacy
    shadow: {sample: 1.0, redact: [card_number]}
  - id: users.me
    path: /api/me
    methods: [GET]
    owner: new
    shadow: {sample: 1.0}
"""
# the expected samples: (route, where in the stored sample, what it must say there)
HEADERS = {"authorization": SECRET_BEARER, "x-api-key": SECRET_API_KEY}


def learn_session(response: httpx.Response) -> None:
    """A session cookie a backend set is a secret too: the session-end scan looks for it."""
    for value in response.headers.get_list("set-cookie"):
        cookie = value.split(";", 1)[0].partition("=")[2]
        if cookie:
            LEARNT_SECRETS.add(cookie)


def send_secrets(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30, headers=HEADERS) as c:
        admin = c.post("/auth/login", json=ADMIN)
        assert admin.status_code == 200, admin.text
        learn_session(admin)
        created = c.post("/api/users", json=CANARY_USER | {"role": "customer"})
        assert created.status_code == 201, created.text
        c.cookies.clear()

        as_json = c.post("/auth/login", json={"email": CANARY_USER["email"], "password": SECRET_PASSWORD})
        assert as_json.status_code == 200, as_json.text
        learn_session(as_json)
        session = as_json.cookies["session"]
        c.cookies.clear()
        form = {"email": CANARY_USER["email"], "password": SECRET_PASSWORD, "next": "/"}
        as_form = c.post("/auth/login", data=form)
        assert as_form.status_code == 302, as_form.text
        learn_session(as_form)
        c.cookies.clear()
        multipart = c.post("/auth/login", data=form, files={"avatar": ("a.txt", b"hello")})
        assert multipart.status_code == 302, multipart.text
        learn_session(multipart)
        c.cookies.clear()
        extra = {"email": CANARY_USER["email"], "password": SECRET_PASSWORD, "token": SECRET_TOKEN,
                 "api_key": SECRET_API_KEY, "profile": {"secret": SECRET_TOKEN, "tokens": [{"token": SECRET_TOKEN}]}}
        c.post("/auth/login", json=extra)  # whatever legacy says to unknown fields, it is compared

        cookies = f"session={session}; tracking={SECRET_COOKIE}"
        for product in (1, 2, 3):
            r = c.get(f"/api/products/{product}", params={"token": SECRET_TOKEN, "password": SECRET_PASSWORD},
                      headers={"Cookie": cookies})
            assert (r.status_code, r.headers["x-served-by"]) == (200, "legacy")
        me = c.get("/api/me", headers={"Cookie": cookies})
        assert (me.status_code, me.json()["email"]) == (200, CANARY_USER["email"])


def samples(url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("parity_samples"):
                return []
            rows = conn.execute(sa.text("SELECT route_id, request, owner, candidate, differences FROM parity_samples"))
            return [{"route": r[0], **{k: json.loads(v) for k, v in zip(("request", "owner", "candidate",
                                                                          "differences"), r[1:], strict=True)}}
                    for r in rows]
    finally:
        engine.dispose()


def stored_text(url: str) -> str:
    """Every row of every parity table, as text: what a PostgreSQL store holds."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names() if t.startswith("parity_")]
            return "\n".join(str(tuple(row)) for t in tables for row in conn.execute(sa.text(f"SELECT * FROM {t}")))
    finally:
        engine.dispose()


def headers_of(part: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in part["headers"]}


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_secrets_sent_through_shadowed_routes_are_neither_stored_nor_logged(
    start_server: Callable[..., Server], tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    if store == "sqlite":
        store_file = tmp_path / "leak-parity.db"
        url = f"sqlite:///{store_file}"
    else:
        store_file = None
        url = request.getfixturevalue("pg_url")
    server = start_server(MAP, GATEWAY_NATIVE_APP="tests.shadow.divergent_native:create_app",
                          GATEWAY_STORE_URL=url, GATEWAY_SAMPLES_PER_SIGNATURE="50")
    send_secrets(server)

    def stored() -> bool:
        routes = {s["route"] for s in samples(url)}
        return {"auth.login", "products.get"} <= routes

    wait_until(stored, timeout=20, what="samples of the login and the product reads stored")
    # stop the gateway: every log line and every pending flush is written
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(30)
    secrets = secrets_to_find()
    # the canaries and the session cookies of the logins (one user's are equal within a second)
    assert len(LEARNT_SECRETS) >= 2 and set(LEARNT_SECRETS) <= set(secrets)

    # none of the secrets anywhere
    files = [server.log_path] + ([store_file] if store_file is not None else [])
    leaks = scan_files(files, secrets, "file")
    assert not leaks, "\n".join(map(str, leaks))
    text = stored_text(url)
    assert not [s for s in secrets if s in text]

    # and each of them went down the redacting path: stored, in its place, as [redacted]
    found = samples(url)
    login = [s for s in found if s["route"] == "auth.login"]
    reads = [s for s in found if s["route"] == "products.get"]
    for sample in login + reads:
        sent = headers_of(sample["request"])
        assert sent["authorization"] == sent["x-api-key"] == REDACTED, sample["request"]
    assert any(headers_of(s["owner"]).get("set-cookie") == REDACTED for s in login)
    set_cookie_diffs = [d for s in login for d in s["differences"] if d["path"] == "headers.set-cookie"]
    assert set_cookie_diffs and all(d["owner"] in (None, REDACTED) for d in set_cookie_diffs), set_cookie_diffs
    bodies = [s["request"]["body"] for s in login]
    json_bodies = [b["value"] for b in bodies if b["kind"] == "json"]
    assert json_bodies and all(b["password"] == REDACTED for b in json_bodies)
    extra = next(b for b in json_bodies if "token" in b)
    assert extra["token"] == extra["api_key"] == extra["profile"]["secret"] == REDACTED
    assert extra["profile"]["tokens"] == REDACTED  # a name built on a secret field's is hidden whole
    forms = [dict(b["fields"]) for b in bodies if b["kind"] == "form"]
    assert forms and all(f["password"] == REDACTED for f in forms)
    parts = [{p["name"]: p.get("value") for p in b["parts"]} for b in bodies if b["kind"] == "multipart"]
    assert parts and all(p["password"] == REDACTED for p in parts)
    for sample in reads:
        assert headers_of(sample["request"])["cookie"] == REDACTED
        assert "token=[redacted]" in sample["request"]["query"]
        assert "password=[redacted]" in sample["request"]["query"]
