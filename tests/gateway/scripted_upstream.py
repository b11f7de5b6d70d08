"""A scripted HTTP/1.1 server on 127.0.0.1 (plain or TLS) for the remote-mode client's tests:
it answers by path, counts connections and remembers every request it read."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.http1 import MAX_BUFFER
from tests.conftest import IN_CI


class Upstream:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append((head, body))
                path = head.split(b" ")[1].split(b"?")[0]
                if not await self.answer(path, head, body, writer):
                    return
        finally:
            writer.close()

    async def answer(self, path: bytes, head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        """Write the answer; False closes the connection."""
        if path == b"/keep":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            return True
        if path == b"/close":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            return False
        if path == b"/close-unframed":  # no length, no chunks: the body ends where the connection does
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
            await writer.drain()
            return False
        if path == b"/drop-after":  # keep-alive by the headers, then the server hangs up anyway
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            return False
        if path == b"/chunked":
            writer.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-kind: chunks\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            return True
        if path == b"/chunked-slowly":  # chunks arrive one by one, the last size line split in two
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for piece in (b"3\r\nabc\r\n", b"3\r\ndef\r\n", b"0\r", b"\n\r\n"):
                await writer.drain()
                await asyncio.sleep(0.01)
                writer.write(piece)
            return True
        if path == b"/continue":  # 100 Continue, then the answer, as gunicorn does for Expect
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)  # the client has read the 100 alone by now
            writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
            return True
        if path == b"/early-hints":
            writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            return True
        if path == b"/big":
            size = MAX_BUFFER * 4
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
            for _ in range(size // 65536):
                writer.write(b"x" * 65536)
                await writer.drain()
            return True
        if path == b"/cut-head":  # hangs up in the middle of the headers
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/pl")
            await writer.drain()
            return False
        if path == b"/cut":  # hangs up in the middle of the body
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
            await writer.drain()
            return False
        if path == b"/cut-chunked":  # hangs up in the middle of a chunked body
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nonly")
            await writer.drain()
            return False
        if path == b"/silent-close":  # reads the request, hangs up without a byte
            return False
        if path == b"/stall-body":  # the head and a part, then nothing more for a long time
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst")
            await writer.drain()
            await asyncio.sleep(5)
            return False
        if path == b"/slow":
            await asyncio.sleep(5)
            return False
        if path == b"/echo":
            writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
            return True
        if path == b"/head":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
            return True
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        return True

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


@dataclass(frozen=True)
class Certificate:
    cert: Path  # self-signed: its own CA
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def self_signed(directory: Path) -> Certificate:
    """A certificate for 127.0.0.1 and localhost, made with the openssl command line (the dev
    tools have no certificate library; every machine of the project has openssl)."""
    if shutil.which("openssl") is None:
        if IN_CI:
            pytest.fail("CI=true: the TLS tests need the openssl command line")
        pytest.skip("no openssl command line to make a test certificate with")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return Certificate(cert, key)
