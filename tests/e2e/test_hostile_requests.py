"""Malformed and hostile requests against a real `gateway serve`: each gets a clear 4xx (or the
answer its backend gives to the path it really names), never a 500, and the gateway keeps
serving. Sent over raw sockets, so nothing tidies them up on the way."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
LIMIT = 4096


def send_raw(server: Server, request: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            if _ and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), data[:200]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def get(path: bytes, *extra: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n" + b"".join(e + b"\r\n" for e in extra) + b"\r\n"


def post(path: bytes, body: bytes, *extra: bytes) -> bytes:
    head = b"POST " + path + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: application/json\r\n"
    return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n" + b"".join(e + b"\r\n" for e in extra) + b"\r\n" + body


def chunked(path: bytes, chunks: list[bytes]) -> bytes:
    head = b"POST " + path + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: application/json\r\n"
    body = b"".join(hex(len(c))[2:].encode() + b"\r\n" + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + body


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server(GATEWAY_MAX_BODY_BYTES=str(LIMIT))


def error_code(body: bytes) -> str:
    return str(json.loads(body)["error"]["code"])


def test_declared_bodies_over_the_limit_are_refused_at_once(server: Server) -> None:
    # legacy-owned, native-owned, shadowed and the gateway's own endpoints alike
    for path in (b"/api/users", b"/api/orders", b"/api/products", b"/_gateway/api/rollout/x/promote"):
        status, headers, body = send_raw(server, post(path, b"x" * (LIMIT + 1)))
        assert status == 413, (path, body)
        assert error_code(body) == "body_too_large"
        assert f"larger than {LIMIT} bytes (GATEWAY_MAX_BODY_BYTES)" in json.loads(body)["error"]["message"]
        assert headers["x-request-id"] == json.loads(body)["error"]["request_id"]
    # a length no one would send is refused without waiting for the bytes
    status, _, body = send_raw(server, b"POST /api/users HTTP/1.1\r\nHost: gw\r\nContent-Length: 999999999999\r\n\r\n{}", 5)
    assert status == 413


def test_chunked_bodies_are_cut_off_when_they_pass_the_limit(server: Server) -> None:
    big = [b"x" * 1000] * 6
    for path in (b"/api/users", b"/api/products", b"/_gateway/api/rollout/x/promote"):
        status, _, body = send_raw(server, chunked(path, big))
        assert status == 413, (path, body)
        assert error_code(body) == "body_too_large"
    # under the limit, a chunked body goes through whole
    status, _, body = send_raw(server, chunked(b"/api/users", [b'{"email": "c@example.com",', b' "name": "C"}']))
    assert status == 400 and b"password" in body  # the legacy app's own validation answered


def test_dot_segments_are_refused_not_guessed(server: Server) -> None:
    for path in (b"/api/users/../orders", b"/api/users/%2e%2e/orders", b"/api/./users", b"/api/users/%2E"):
        status, _, body = send_raw(server, get(path))
        assert status == 400, path
        assert error_code(body) == "bad_path"


HOSTILE = [
    ("malformed JSON to legacy", post(b"/api/users", b"{bad,"), {400}),
    ("malformed JSON to a shadowed write", post(b"/api/products", b"{bad,"), {400, 401}),
    ("invalid UTF-8 in a JSON body", post(b"/api/users", b'"\xff\xfe"'), {400}),
    ("invalid UTF-8 percent-encoding, native", get(b"/api/users/%ff"), {404}),
    ("invalid UTF-8 percent-encoding, legacy", get(b"/api/orders/%ff%fe"), {404}),
    ("invalid percent-encoding", get(b"/api/orders/%zz"), {404}),
    ("invalid UTF-8 in the query of a shadowed route", get(b"/api/products?q=%ff%fe"), {200}),
    ("NUL in the path", get(b"/api/orders/%00"), {404}),
    ("encoded slash: matched as the path it decodes to", get(b"/api/users/1%2F2"), {404}),
    ("a very long path", get(b"/api/" + b"a" * 20_000), {404, 414}),
    ("a very long header", get(b"/api/users/1", b"X-Big: " + b"a" * 60_000), {200, 400, 431}),
    ("an unknown method", b"FETCH /api/users HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", {400, 405}),
    ("two Content-Length headers", b"POST /api/users HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", {400}),
    ("two request ids", get(b"/api/users/1", b"X-Request-ID: first", b"X-Request-ID: second"), {200}),
    ("latin-1 bytes in a header", get(b"/api/users/1", b"X-Name: \xe9\xff"), {200}),
    ("a garbage cookie, legacy", get(b"/api/orders", b"Cookie: session=\xff\xfe; x"), {401}),
    ("a garbage cookie, native", get(b"/api/me", b"Cookie: session=not.a.signature"), {401}),
    ("an absolute-form request target", get(b"http://elsewhere.example/api/users/1"), {200}),
]


def test_hostile_input_gets_a_clear_4xx_never_a_500(server: Server) -> None:
    wrong = []
    for name, request_bytes, expected in HOSTILE:
        status, _, _ = send_raw(server, request_bytes)
        if status not in expected:
            wrong.append(f"{name}: {status}, expected {sorted(expected)}")
        status, _, _ = send_raw(server, get(b"/api/users/1"))  # and the gateway keeps serving
        assert status == 200, name
    assert not wrong, wrong
    assert "Traceback" not in server.log()
