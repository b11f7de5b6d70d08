"""The parity comparison itself notices what it must (or every parity test would pass)."""

from __future__ import annotations

import httpx

from tests.features.parity import differences, json_differences


def response(status: int = 200, content: bytes = b'{"a":1,"b":2}\n', **headers: str) -> httpx.Response:
    headers.setdefault("content-type", "application/json")
    return httpx.Response(status, content=content, headers=headers)


def test_identical_answers_have_no_differences() -> None:
    assert differences(response(), response(), exact=True) == []
    assert differences(response(), response(), exact=False) == []


def test_status_headers_and_bytes_are_compared() -> None:
    assert differences(response(200), response(201), exact=True) == ["status 200 != 201"]
    found = differences(response(location="/a"), response(location="/b"), exact=False)
    assert found == ["location '/a' != '/b'"]
    found = differences(response(), response(**{"content-type": "text/html"}), exact=True)
    assert found == ["content-type 'application/json' != 'text/html'"]
    # the same JSON, written differently: a difference when bytes must match
    spaced = response(content=b'{"a": 1, "b": 2}\n')
    assert differences(response(), spaced, exact=True)
    assert differences(response(), spaced, exact=False) == [
        'body b\'{"a": 1, "b": 2}\\n\' is not written as Flask writes JSON'
    ]


def test_allow_is_compared_without_flasks_automatic_methods() -> None:
    legacy = response(405, allow="POST, HEAD, OPTIONS, GET")
    assert differences(legacy, response(405, allow="GET, POST"), exact=True) == []
    assert differences(legacy, response(405, allow="GET"), exact=True)


def test_key_order_types_and_values() -> None:
    assert json_differences({"a": 1, "b": 2}, {"b": 2, "a": 1}, loose_clock=False)
    assert json_differences({"a": 1}, {"a": 1.0}, loose_clock=False)
    assert json_differences({"a": True}, {"a": 1}, loose_clock=False)
    assert json_differences([1, 2], [1, 2, 3], loose_clock=False)
    assert json_differences({"x": [{"a": "s"}]}, {"x": [{"a": "t"}]}, loose_clock=False) == [
        "body.x[0].a: 's' != 't'"
    ]


def test_only_timestamps_may_differ_and_only_by_seconds() -> None:
    a = {"id": 1, "created_at": "2026-01-01T10:00:00", "updated_at": "2026-01-01T10:00:00"}
    close = {**a, "updated_at": "2026-01-01T10:00:02"}
    assert json_differences(a, close, loose_clock=True) == []
    assert json_differences(a, close, loose_clock=False)
    far = {**a, "updated_at": "2026-01-01T11:00:00"}
    assert json_differences(a, far, loose_clock=True)
    assert json_differences(
        {"name": "2026-01-01T10:00:00"}, {"name": "2026-01-01T10:00:01"}, loose_clock=True
    )
