"""The text of an exported regression test; `{{name}}` marks are filled in by gateway.parity.export.

Kept as a string in a module (not a data file) so it ships with the package as it is.
"""

TEMPLATE = '''\
"""Parity regression tests for route {{route_id}}, written by `gateway parity export-test` at {{written}}.

Each case is a request that answered differently on the legacy and the native side ({{count}} stored
samples). A test replays its request in-process against both apps and fails while they still
differ in a field that is not known noise; once the divergence is fixed, it passes.

Credentials were redacted before the requests were stored: headers whose value was redacted
are not sent. To send some (a test session, say), set GATEWAY_REPLAY_HEADERS to a JSON object,
e.g. GATEWAY_REPLAY_HEADERS='{"Cookie": "session=..."}'. Redacted JSON and form fields are sent
as "[redacted]".
"""

# Samples left out (they cannot be replayed):
{{left_out}}

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from gateway.compare import compare, compile_rules
from gateway.exchange import Capture, DiffKind, Side
from gateway.lifespan import ChildLifespan
from gateway.loading import load_app
from gateway.map_schema import ShadowRules, Unsafe

ROUTE_ID = {{route_id_literal}}
LEGACY_APP = {{legacy_app}}
LEGACY_URL = {{legacy_url}}  # when set, the legacy side is this server, not LEGACY_APP
NATIVE_APP = {{native_app}}
RULES = {{rules}}
# fields that differ between two runs of the same side: never a failure
NOISE = {{noise}}
CASES: list[dict[str, Any]] = {{cases}}

REDACTED = "[redacted]"
NOT_SENT = frozenset({"host", "content-length", "transfer-encoding", "connection", "x-gateway-shadow"})


def _request(case: dict[str, Any]) -> tuple[str, str, dict[str, str], bytes]:
    """(host, path and query, headers, body) of a case."""
    request = case["request"]
    headers: dict[str, str] = {}
    for name, value in request["headers"]:
        if name.lower() not in NOT_SENT and value != REDACTED:
            headers[name] = value
    headers.update(json.loads(os.environ.get("GATEWAY_REPLAY_HEADERS") or "{}"))
    body = request["body"]
    if body["kind"] == "json":
        content = json.dumps(body["value"]).encode()
    elif body["kind"] == "form":
        content = urlencode([tuple(pair) for pair in body["fields"]]).encode()
    elif body["kind"] == "text":
        content = body["text"].encode()
    else:
        content = b""
    host = next((v for k, v in request["headers"] if k.lower() == "host"), "localhost")
    query = f"?{request['query']}" if request["query"] else ""
    return host, request["path"] + query, headers, content


def _only(request: httpx.Request, sent: dict[str, str]) -> httpx.Request:
    # httpx adds headers of its own (accept-encoding, user-agent): send what the client sent
    wanted = {name.lower() for name in sent} | {"host", "content-length"}
    for name in list(request.headers):
        if name.lower() not in wanted:
            del request.headers[name]
    return request


def _capture(response: httpx.Response, body: bytes) -> Capture:
    headers = tuple((name.lower(), value) for name, value in response.headers.multi_items())
    return Capture(response.status_code, headers, body)


def _legacy(app: Any, method: str, url: str, headers: dict[str, str], content: bytes) -> Capture:
    transport = None if LEGACY_URL else httpx.WSGITransport(app=app)
    with httpx.Client(transport=transport) as client:
        request = _only(client.build_request(method, url, headers=headers, content=content), headers)
        response = client.send(request, stream=True)
        try:
            return _capture(response, b"".join(response.iter_raw()))
        finally:
            response.close()


async def _native(app: Any, method: str, url: str, headers: dict[str, str], content: bytes) -> Capture:
    state: dict[str, Any] = {}
    lifespan = ChildLifespan(app, "native")
    await lifespan.startup(state)

    async def with_state(scope: Any, receive: Any, send: Any) -> None:
        await app({**scope, "state": dict(state)}, receive, send)

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=with_state)) as client:
            request = _only(client.build_request(method, url, headers=headers, content=content), headers)
            response = await client.send(request, stream=True)
            try:
                return _capture(response, b"".join([chunk async for chunk in response.aiter_raw()]))
            finally:
                await response.aclose()
    finally:
        await lifespan.shutdown(10)


@pytest.fixture(scope="module")
def apps() -> tuple[Any, Any]:
    return (None if LEGACY_URL else load_app(LEGACY_APP)), load_app(NATIVE_APP)


@pytest.mark.parametrize("case", CASES, ids=[f"sample-{c['sample']}" for c in CASES])
def test_both_sides_answer_alike(case: dict[str, Any], apps: tuple[Any, Any]) -> None:
    legacy, native = apps
    method = case["request"]["method"]
    host, target, headers, content = _request(case)
    legacy_url = (LEGACY_URL.rstrip("/") if LEGACY_URL else f"http://{host}") + target
    answers = {
        Side.LEGACY: _legacy(legacy, method, legacy_url, headers, content),
        Side.NEW: asyncio.run(_native(native, method, f"http://{host}{target}", headers, content)),
    }
    owner = Side(case["owner"])
    candidate = Side.NEW if owner is Side.LEGACY else Side.LEGACY
    noise = {(path, DiffKind(kind)) for path, kind in NOISE}
    diffs = compare(answers[owner], answers[candidate], compile_rules(RULES))
    real = [d for d in diffs if (d.path, d.kind) not in noise]
    shown = "\\n".join(
        f"  {d.path} ({d.kind.value}): {owner.value} {d.owner!r} vs {candidate.value} {d.candidate!r}"
        for d in real
    )
    assert not real, f"{method} {case['request']['path']}: the sides still differ\\n{shown}"
'''
