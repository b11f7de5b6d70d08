"""A new side's 2xx that says JSON and is not falls back to legacy, through the gateway over HTTP.

The native app here answers `/f/<what>` as named below; legacy (tests/reliability/faulty_apps)
answers every `/f/<what>` with good JSON, so a fallback shows in the body as well as in the
headers.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import Gateway
from gateway.fallback import MAX_CHECKED_BODY
from gateway.rollout.state import RuntimeState
from gateway.settings import GatewaySettings
from tests.reliability.fault_support import client as fault_client
from tests.reliability.fault_support import running_gateway
from tests.reliability.faulty_apps import good_body

pytestmark = pytest.mark.anyio

BROKEN = b'{"item": "broken", "n": '
HUGE = MAX_CHECKED_BODY + 4096
CHUNK = 65536


def huge_broken() -> bytes:
    return b"[" + b" " * (HUGE - 1)  # a JSON array that never closes


ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "good": (200, "application/json", b'{"item": "good", "n": 1}'),
    "bad": (200, "application/json", BROKEN),
    "bad_charset": (200, "application/json; charset=utf-8", BROKEN),
    "problem": (201, "application/problem+json", BROKEN),
    "empty": (200, "application/json", b""),
    "latin1": (200, "application/json", '{"é": 1}'.encode("latin-1")),
    "text": (200, "text/plain", BROKEN),
    "no_content": (204, "application/json", b""),
    "not_found": (404, "application/json", BROKEN),
}


async def native_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = "startup" if message["type"] == "lifespan.startup" else "shutdown"
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    what = scope["path"].rsplit("/", 1)[-1]

    async def start(status: int, media: str, *extra: tuple[bytes, bytes]) -> None:
        headers = [(b"content-type", media.encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})

    if what in ANSWERS:
        status, media, body = ANSWERS[what]
        await start(status, media, (b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.body", "body": body})
    elif what == "chunked_good":  # good JSON in pieces: held whole, then sent on
        await start(200, "application/json")
        for piece in (b'{"item": ', b'"chunked_good", ', b'"n": 1}'):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif what == "chunked_bad":
        await start(200, "application/json")
        await send({"type": "http.response.body", "body": BROKEN[:10], "more_body": True})
        await send({"type": "http.response.body", "body": BROKEN[10:]})
    elif what == "gzip":  # compressed: not checked, passed on as it is
        body = gzip.compress(BROKEN)
        await start(200, "application/json", (b"content-encoding", b"gzip"), (b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.body", "body": body})
    elif what == "huge_declared":  # over the hold limit by its Content-Length: streamed at once
        body = huge_broken()
        await start(200, "application/json", (b"content-length", str(len(body)).encode()))
        for i in range(0, len(body), CHUNK):
            await send({"type": "http.response.body", "body": body[i:i + CHUNK], "more_body": i + CHUNK < len(body)})
    elif what == "huge_chunked":  # no length: held until it passes the limit, then streamed
        body = huge_broken()
        await start(200, "application/json")
        for i in range(0, len(body), CHUNK):
            await send({"type": "http.response.body", "body": body[i:i + CHUNK], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif what == "breaks":  # starts a JSON answer and breaks off: the client sees the break
        await start(200, "application/json", (b"content-length", b"100"))
        await send({"type": "http.response.body", "body": BROKEN[:10], "more_body": True})
        raise ConnectionResetError("native broke off mid-answer")
    else:
        raise AssertionError(f"no answer for {what}")


MAP = """\
version: 1
routes:
  - {id: checked, path: '/f/<what>', methods: [GET], owner: new, fallback: {}, guard: GUARD}
  - {id: unchecked, path: '/u/<what>', methods: [GET], owner: new, fallback: {on: [exception, timeout]}}
  - {id: bare, path: '/n/<what>', methods: [GET], owner: new}
"""
GUARD = "{min_samples: 5, max_error_rate: 0.5, window_s: 60}"

MakeGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[MakeGateway]:
    started: list[Gateway] = []

    async def make(map_text: str = MAP.replace("GUARD", GUARD)) -> Gateway:
        map_path = tmp_path / "migration_map.yaml"
        map_path.write_text(map_text)
        gw = Gateway(GatewaySettings(
            map_path=map_path, store_url=f"sqlite:///{tmp_path}/store.db",
            legacy_app="tests.reliability.faulty_apps:legacy_app",
            native_app="tests.gateway.rollout.test_fallback_json:native_app",
        ))
        await gw.startup({})
        started.append(gw)
        return gw

    yield make
    for gw in started:
        await gw.shutdown()


def client(gw: Gateway) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=gw.dispatcher, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://gw")


def sample(gw: Gateway, name: str, **labels: str) -> float:
    gw.metrics.publish()  # request counts are batched until the next publish
    return gw.metrics.registry.get_sample_value(name, labels) or 0


@pytest.mark.parametrize("what", ["bad", "bad_charset", "problem", "empty", "latin1", "chunked_bad"])
async def test_a_json_typed_2xx_that_does_not_parse_is_answered_by_legacy_and_marked(
    make_gateway: MakeGateway, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await make_gateway()
    async with client(gw) as c:
        with caplog.at_level("WARNING", logger="gateway.fallback"):
            r = await c.get(f"/f/{what}")
    status, media = (201, "application/problem+json") if what == "problem" else (200, "application/json")
    assert f"new side answered {status} ({media}) with a body that is not JSON; legacy answers" in caplog.text
    assert (r.status_code, r.headers["x-served-by"], r.content) == (200, "legacy", good_body(what))
    assert r.headers["x-gateway-fallback"] == "invalid_json"
    assert sample(gw, "gateway_fallbacks_total", route="checked", reason="invalid_json") == 1
    assert sample(gw, "gateway_requests_total", route="checked", backend="legacy", role="primary",
                  status_class="2xx") == 1


@pytest.mark.parametrize(
    ("what", "status", "body"),
    [
        ("good", 200, ANSWERS["good"][2]),
        ("chunked_good", 200, b'{"item": "chunked_good", "n": 1}'),
        ("text", 200, BROKEN),  # not typed JSON: nothing to check
        ("no_content", 204, b""),
        ("not_found", 404, BROKEN),  # only a success is held to its type
    ],
)
async def test_good_json_and_answers_not_claiming_json_go_through_untouched(
    make_gateway: MakeGateway, what: str, status: int, body: bytes
) -> None:
    gw = await make_gateway()
    async with client(gw) as c:
        r = await c.get(f"/f/{what}")
    assert (r.status_code, r.headers["x-served-by"], r.content) == (status, "new", body)
    assert "x-gateway-fallback" not in r.headers
    assert sample(gw, "gateway_fallbacks_total", route="checked", reason="invalid_json") == 0


async def test_head_is_checked_on_the_get_the_new_side_answers(make_gateway: MakeGateway) -> None:
    gw = await make_gateway()
    async with client(gw) as c:
        good = await c.head("/f/good")
        bad = await c.head("/f/bad")
    assert (good.status_code, good.headers["x-served-by"], good.content) == (200, "new", b"")
    assert (bad.status_code, bad.headers["x-served-by"], bad.content) == (200, "legacy", b"")
    assert bad.headers["x-gateway-fallback"] == "invalid_json"


async def test_invalid_json_counts_as_a_new_side_error_and_the_guard_rolls_the_route_back(
    make_gateway: MakeGateway,
) -> None:
    gw = await make_gateway()
    async with client(gw) as c:
        for _ in range(5):
            assert (await c.get("/f/bad")).headers["x-gateway-fallback"] == "invalid_json"
        await gw.rollout.check_guards()
        after = await c.get("/f/bad")
    state = gw.rollout_store.states()["checked"]
    assert (state.state, state.reason) == (
        RuntimeState.ROLLED_BACK, "new error rate 100.0 % over 60 s (5 of 5) exceeds 50.0 %")
    assert (after.headers["x-served-by"], after.content) == ("legacy", good_body("bad"))
    assert "x-gateway-fallback" not in after.headers  # rolled back: legacy's own now, no stand-in


async def test_without_5xx_in_fallback_on_or_without_fallback_the_broken_body_is_the_answer(
    make_gateway: MakeGateway,
) -> None:
    """The check falls back under `5xx`: a route that does not fall back on server errors
    does not on a body that breaks its own Content-Type either."""
    gw = await make_gateway()
    async with client(gw) as c:
        unchecked = await c.get("/u/bad")
        bare = await c.get("/n/bad")
    for r in (unchecked, bare):
        assert (r.status_code, r.headers["x-served-by"], r.content) == (200, "new", BROKEN)


@pytest.mark.parametrize(("what", "reason"), [("huge_declared", "too_large"), ("huge_chunked", "too_large"),
                                              ("gzip", "encoded")])
async def test_a_json_answer_too_large_to_hold_or_compressed_streams_unchecked_and_is_counted(
    make_gateway: MakeGateway, what: str, reason: str
) -> None:
    """Holding is bounded: past MAX_CHECKED_BODY (declared, or as the body arrives) what was
    held goes out and the rest follows as it comes; a broken body then reaches the client,
    whole, and gateway_fallback_unchecked_total says the check did not run."""
    gw = await make_gateway()
    async with client(gw) as c:
        r = await c.get(f"/f/{what}")
    assert (r.status_code, r.headers["x-served-by"]) == (200, "new")
    expected = BROKEN if what == "gzip" else huge_broken()  # httpx decompresses
    assert (len(r.content), r.content == expected) == (len(expected), True)
    assert sample(gw, "gateway_fallback_unchecked_total", route="checked", reason=reason) == 1
    assert sample(gw, "gateway_fallbacks_total", route="checked", reason="invalid_json") == 0


async def test_a_held_answer_breaking_off_reaches_the_client_cut_off_and_counts_as_an_error(
    make_gateway: MakeGateway,
) -> None:
    """As without the check: what the new side sent goes out, then the break (the guard counts it)."""
    gw = await make_gateway()
    async with client(gw) as c:
        r = await c.get("/f/breaks")
    assert (r.status_code, r.headers["x-served-by"], r.content) == (200, "new", BROKEN[:10])
    assert int(r.headers["content-length"]) == 100  # cut short
    assert sample(gw, "gateway_requests_total", route="checked", backend="new", role="primary",
                  status_class="error") == 1
    assert sample(gw, "gateway_fallbacks_total", route="checked", reason="exception") == 0


CANARY_SHADOWED = """\
version: 1
routes:
  - id: f.badjson
    path: /f/badjson
    methods: [GET]
    owner: legacy
    canary: {percent: 100, sticky: [client_ip]}
    shadow: {sample: 1.0, noise_sample: 0, max_body_bytes: 65536}
    fallback: {on: [5xx, exception, timeout], timeout_ms: 500}
    guard: {window_s: 60, min_samples: 5, max_error_rate: 0.5, max_mismatch_rate: 0.1}
"""


async def test_a_shadowed_canary_answering_invalid_json_falls_back_and_its_error_rate_rolls_it_back(
    tmp_path: Path,
) -> None:
    """The case tests/reliability/test_new_side_faults.py had the client get the broken body
    for, caught only by the mismatch rate: now legacy answers, the comparison is skipped (there
    is no new answer to compare), and the error rate is what rolls the route back."""
    async with running_gateway(tmp_path, CANARY_SHADOWED) as gw, fault_client(gw) as c:
        for _ in range(5):
            r = await c.get("/f/badjson")
            assert (r.status_code, r.headers["x-served-by"], r.content) == (200, "legacy", good_body("badjson"))
            assert r.headers["x-gateway-fallback"] == "invalid_json"
        assert sample(gw, "gateway_shadow_skipped_total", route="f.badjson", reason="owner_fell_back") == 5
        await gw.rollout.check_guards()
        state = gw.rollout_store.states()["f.badjson"]
        assert state.reason == "new error rate 100.0 % over 60 s (5 of 5) exceeds 50.0 %"
        after = await c.get("/f/badjson")
        assert (after.headers["x-served-by"], "x-gateway-fallback" in after.headers) == ("legacy", False)
