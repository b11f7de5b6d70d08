"""What the gateway refuses before any backend sees a request: a path with '.' or '..'
segments (the map and the backends could disagree on what it names, so it is not guessed
at) and a body larger than GATEWAY_MAX_BODY_BYTES (413; a declared length is refused at
once, a chunked body as soon as it grows past the limit)."""

from __future__ import annotations

from gateway.asgi import Message, Receive, Send


def dot_segment(path: str) -> str | None:
    """The first '.' or '..' segment of a (decoded) path, if it has one."""
    if "/." not in path:  # the common case, in one scan
        return None
    for segment in path.split("/"):
        if segment in (".", ".."):
            return segment
    return None


class LimitedBody:
    """The request's `receive`, cut off once the body passes `limit` bytes: the backend then
    sees the client as gone, and whatever it answers is dropped for the gateway's 413."""

    __slots__ = ("downstream", "exceeded", "limit", "receive", "seen")

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive, self.limit = receive, limit
        self.downstream: Send | None = None  # the client's send, for the gateway's own 413
        self.seen = 0
        self.exceeded = False

    async def __call__(self) -> Message:
        if self.exceeded:
            return {"type": "http.disconnect"}
        message = await self.receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                self.exceeded = True
                return {"type": "http.disconnect"}
        return message

    def gate(self, send: Send) -> Send:
        """`send`, closed to the backend once the body went over the limit."""
        self.downstream = send

        async def gated(message: Message) -> None:
            if not self.exceeded:
                await send(message)

        return gated
