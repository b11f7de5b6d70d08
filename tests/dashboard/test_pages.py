"""The dashboard through the gateway, in-process: the token gate, the overview and a route's page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from gateway.app import Gateway
from gateway.exchange import DiffKind
from gateway.settings import GatewaySettings
from tests.gateway.parity.support import answer, compare_once, diff, request
from tests.support import asgi_client

pytestmark = pytest.mark.anyio
TOKEN = "dash-token-0123"
EVIL_PATH = "/api/x\"'&<b>y"
MAP = """\
version: 1
routes:
  - {id: users.get, path: '/api/users/<int:user_id>', methods: [GET], owner: new}
  - {id: token, path: /token, methods: [GET], owner: legacy, shadow: {sample: 1.0, noise_sample: 0}}
  - {id: broken, path: /fail500, methods: [GET], owner: new}
  - {id: idle, path: /idle, methods: [GET, POST], owner: legacy, canary: {percent: 10, sticky: [client_ip]}}
  - {id: evil, path: "PATH", owner: new}
""".replace("PATH", EVIL_PATH.replace('"', '\\"'))
ROUTE_IDS = ("users.get", "token", "broken", "idle", "evil")


async def started(tmp_path: Path, **settings: Any) -> Gateway:
    map_path = tmp_path / "migration_map.yaml"
    map_path.write_text(MAP)
    gw = Gateway(
        GatewaySettings(
            map_path=map_path,
            legacy_app="tests.gateway.wsgi_fixtures:legacy_app",
            native_app="tests.gateway.wsgi_fixtures:native_factory",
            **{"store_url": f"sqlite:///{tmp_path}/parity.db", **settings},
        )
    )
    await gw.startup({})
    return gw


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await started(tmp_path, admin_token=TOKEN, admin_tokens={"alice": "alice-token-99"})
    yield gw
    await gw.shutdown()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def row(page: str, route_id: str) -> str:
    match = re.search(rf'<tr data-route="{re.escape(route_id)}">(.*?)</tr>', page, re.S)
    assert match, f"no row for {route_id}"
    return match.group(1)


async def login(c: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    return await c.post("/_gateway/login", data={"token": token})


async def test_without_a_token_the_dashboard_is_off(tmp_path: Path) -> None:
    gw = await started(tmp_path)
    try:
        async with asgi_client(gw.dispatcher) as c:
            answers = [
                await c.get("/_gateway/"),
                await c.get("/_gateway/", headers=bearer()),
                await c.get("/_gateway/routes/users.get"),
                await login(c),
            ]
    finally:
        await gw.shutdown()
    for r in answers:
        assert r.status_code == 404
        assert "the dashboard is off: set GATEWAY_ADMIN_TOKEN" in r.text
        assert "users.get" not in r.text
        assert "set-cookie" not in r.headers


async def test_without_a_session_the_page_is_a_login_form(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        r = await c.get("/_gateway/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<form class="login" method="post" action="/_gateway/login">' in r.text
    assert 'name="token" type="password"' in r.text
    assert not any(f'data-route="{route_id}"' in r.text for route_id in ROUTE_IDS)
    assert "script-src" not in r.headers["content-security-policy"]  # no script is allowed at all


async def test_a_wrong_token_is_401_with_the_form_and_a_message(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        r = await login(c, "not-the-token")
        empty = await login(c, "")
    for answer_ in (r, empty):
        assert answer_.status_code == 401
        assert "that is not an admin token" in answer_.text and 'name="token"' in answer_.text
        assert "set-cookie" not in answer_.headers


async def test_login_sets_a_strict_http_only_cookie_and_the_page_lists_every_mapped_route(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        for i in range(4):
            assert (await c.get(f"/api/users/{i}")).status_code == 200
        await c.get("/fail500")
        r = await login(c)
        assert r.status_code == 303 and r.headers["location"] == "/_gateway/"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/_gateway" in cookie
        assert TOKEN not in cookie
        page = await c.get("/_gateway/")
    assert page.status_code == 200
    assert "signed in as <b>admin</b>" in page.text
    assert '<meta http-equiv="refresh" content="10">' in page.text
    assert '<link rel="icon" href="data:,">' in page.text
    for route_id in ROUTE_IDS:
        row(page.text, route_id)  # every entry, with traffic or not
    assert re.search(r'id="progress">3 of 5 endpoints native<', page.text)  # users.get, broken, evil
    users = row(page.text, "users.get")
    assert re.search(r'<span class="new">new</span> 4</div>', users)  # requests per side
    assert re.search(r"new</span> [0-9.]+ / [0-9.]+ / [0-9.]+ ms", users) and "<svg" in users
    assert '<span class="new">new</span> 100.0 % (1)' in row(page.text, "broken")  # 5xx share
    assert "no traffic yet" in row(page.text, "idle") and "canary 10 %" in row(page.text, "idle")
    assert "not shadowed" in users
    assert "legacy, shadowed 100 %" in row(page.text, "token")


async def test_the_page_reads_the_parity_store_and_links_to_the_samples(gateway: Gateway) -> None:
    compare_once(gateway.recorder, "token", (diff("body.token"),))
    compare_once(gateway.recorder, "token", (diff("body.token"), diff("body.value", DiffKind.TYPE)))
    compare_once(gateway.recorder, "token")
    assert await gateway.recorder.flush()
    async with asgi_client(gateway.dispatcher) as c:
        page = (await c.get("/_gateway/", headers=bearer())).text
    token = row(page, "token")
    assert "33.33 %" in token and "of 3 compared" in token
    assert "<code>body.token</code> (value) 2x" in token
    assert 'href="/_gateway/routes/token"' in token


async def test_run_time_decisions_show_in_the_mode_and_the_audit_log(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        promoted = await c.post("/_gateway/api/rollout/idle/promote", json={"reason": "<b>ship</b> it"},
                                headers=bearer("alice-token-99"))
        assert promoted.status_code == 200
        page = (await c.get("/_gateway/", headers=bearer())).text
    idle = row(page, "idle")
    assert "<td>new<div class=\"bad\">promoted</div></td>" in idle
    audit = re.search(r'<table id="audit">(.*?)</table>', page, re.S)
    assert audit and "<td>promote</td><td>idle</td><td>alice</td>" in audit.group(1)
    assert "<b>ship</b>" not in page


async def test_a_bearer_header_works_and_a_bad_one_or_a_forged_cookie_gets_the_form(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        admin = await c.get("/_gateway/", headers=bearer())
        alice = await c.get("/_gateway/", headers=bearer("alice-token-99"))
        wrong = await c.get("/_gateway/", headers=bearer("nope"))
        c.cookies.set("gateway_session", "v1.YWRtaW4.99999999999.AAAA", path="/_gateway")
        forged = await c.get("/_gateway/")
    assert "signed in as <b>admin</b>" in admin.text and 'data-route="users.get"' in admin.text
    assert "signed in as <b>alice</b>" in alice.text
    for r in (wrong, forged):
        assert r.status_code == 200 and 'name="token"' in r.text and 'data-route="users.get"' not in r.text


async def test_logout_clears_the_cookie(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        await login(c, "alice-token-99")
        assert 'data-route="users.get"' in (await c.get("/_gateway/")).text
        out = await c.post("/_gateway/logout")
        assert out.status_code == 303 and "gateway_session=" in out.headers["set-cookie"]
        assert "Max-Age=0" in out.headers["set-cookie"]
        after = await c.get("/_gateway/")
    assert 'name="token"' in after.text and 'data-route="users.get"' not in after.text


async def test_route_ids_paths_and_stored_bodies_are_escaped(gateway: Gateway) -> None:
    hostile = "<script>alert(1)</script>"
    compare_once(
        gateway.recorder, hostile, (diff("body.x", owner="<i>o</i>", candidate="<i>c</i>"),),
        req=request(f"/api/{hostile}"), owner=answer({"x": "<img src=x onerror=alert(1)>"}),
        candidate=answer({"x": "</td></tr></table><b>broken</b>"}),
    )
    assert await gateway.recorder.flush()
    async with asgi_client(gateway.dispatcher) as c:
        page = (await c.get("/_gateway/", headers=bearer())).text
        sample = await c.get(f"/_gateway/routes/{quote(hostile, safe='')}", headers=bearer())
    evil = row(page, "evil")
    assert "<b>" not in evil and "x&quot;&#x27;&amp;&lt;b&gt;y" in evil
    assert sample.status_code == 200
    for raw in (hostile, "<img src=x", "<b>broken</b>", "<i>o</i>", "</table><b>"):
        assert raw not in sample.text, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in sample.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in sample.text


async def test_a_route_page_shows_the_answers_side_by_side(gateway: Gateway) -> None:
    compare_once(
        gateway.recorder, "token", (diff("body.label", owner='"aaa"', candidate='"bbb"'),),
        owner=answer({"label": "aaa", "value": 1}), candidate=answer({"label": "bbb", "value": 1}),
    )
    assert await gateway.recorder.flush()
    async with asgi_client(gateway.dispatcher) as c:
        r = await c.get("/_gateway/routes/token", headers=bearer())
    assert r.status_code == 200
    table = re.search(r'<table class="sbs">(.*?)</table>', r.text, re.S)
    assert table, r.text
    assert "legacy (owner)</th>" in table.group(1) and "new (candidate)</th>" in table.group(1)
    changed = re.findall(r'<tr class="changed"><td class="owner"><pre>(.*?)</pre></td>'
                         r'<td class="candidate"><pre>(.*?)</pre></td></tr>', table.group(1))
    assert changed == [('  &quot;label&quot;: &quot;aaa&quot;,', '  &quot;label&quot;: &quot;bbb&quot;,')]
    assert '<tr class="same"><td class="owner"><pre>  &quot;value&quot;: 1</pre>' in table.group(1)
    assert "<code>body.label</code> (value)" in r.text


async def test_a_secret_field_is_redacted_on_both_sides_of_the_page(gateway: Gateway) -> None:
    # `token` is a built-in secret name: a map cannot turn it off, so the page never shows it
    compare_once(
        gateway.recorder, "token", (diff("body.token", owner='"aaa"', candidate='"bbb"'),),
        owner=answer({"token": "aaa", "value": 1}), candidate=answer({"token": "bbb", "value": 1}),
    )
    assert await gateway.recorder.flush()
    async with asgi_client(gateway.dispatcher) as c:
        r = await c.get("/_gateway/routes/token", headers=bearer())
    assert r.status_code == 200
    assert "aaa" not in r.text and "bbb" not in r.text
    assert "&quot;token&quot;: &quot;[redacted]&quot;" in r.text


async def test_an_unknown_route_page_is_404_and_a_quiet_mapped_one_is_not(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        unknown = await c.get("/_gateway/routes/nope", headers=bearer())
        quiet = await c.get("/_gateway/routes/idle", headers=bearer())
        anonymous = await c.get("/_gateway/routes/idle")
    assert unknown.status_code == 404 and "no route &#x27;nope&#x27; in the map" in unknown.text
    assert quiet.status_code == 200 and "no shadow results for this route yet" in quiet.text
    assert 'name="token"' in anonymous.text and 'value="/_gateway/routes/idle"' in anonymous.text


async def test_login_returns_to_a_dashboard_page_only(gateway: Gateway) -> None:
    async with asgi_client(gateway.dispatcher) as c:
        back = await c.post("/_gateway/login", data={"token": TOKEN, "next": "/_gateway/routes/idle"})
        away = await c.post("/_gateway/login", data={"token": TOKEN, "next": "//evil.example/_gateway/"})
        other = await c.post("/_gateway/login", data={"token": TOKEN, "next": "/_gateway//evil.example"})
    assert back.headers["location"] == "/_gateway/routes/idle"
    assert away.headers["location"] == other.headers["location"] == "/_gateway/"


async def test_an_unreadable_store_is_said_in_place_and_the_rest_of_the_page_stays(tmp_path: Path) -> None:
    gw = await started(tmp_path, admin_token=TOKEN, store_url="postgresql://postgres@127.0.0.1:1/none")
    try:
        async with asgi_client(gw.dispatcher) as c:
            await c.get("/api/users/1")
            page = await c.get("/_gateway/", headers=bearer())
            route = await c.get("/_gateway/routes/users.get", headers=bearer())
    finally:
        await gw.shutdown()
    assert page.status_code == 200
    assert re.search(r'id="parity-error">parity store unavailable: [^<]*\S', page.text)
    assert "rollout store unavailable: " in page.text
    assert 'class="parity" title="parity store unavailable' in row(page.text, "users.get")
    assert all(f'data-route="{route_id}"' in page.text for route_id in ROUTE_IDS)
    assert route.status_code == 200 and "parity store unavailable: " in route.text
