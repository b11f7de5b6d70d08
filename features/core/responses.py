"""JSON bytes as Flask's default JSON provider writes them.

Flask sorts keys, escapes non-ASCII, writes compact separators and ends with a newline;
the native side does the same, so a byte-for-byte shadow comparison has nothing to ignore.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse


def dumps(content: Any) -> bytes:
    text = json.dumps(content, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return f"{text}\n".encode("ascii")


class LegacyJSONResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
