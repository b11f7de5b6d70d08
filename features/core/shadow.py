"""Whether this request is the gateway's shadow copy, and of which kind.

The gateway sends a copy of some requests to the side that does not own the route, with
`X-Gateway-Shadow: copy` (a read) or `X-Gateway-Shadow: rollback` (a write whose transaction
is always rolled back). It strips the header from client requests, so only it can set it.
Code with side effects outside the database (e-mails, outbound calls) asks `is_shadow`
and skips them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

SHADOW_HEADER = "x-gateway-shadow"


def shadow_mode(request: Request) -> str | None:
    mode = request.headers.get(SHADOW_HEADER)
    return mode if mode in ("copy", "rollback") else None


def is_shadow(request: Request) -> bool:
    return shadow_mode(request) is not None


def is_rollback_shadow(request: Request) -> bool:
    return shadow_mode(request) == "rollback"


ShadowDep = Annotated[bool, Depends(is_shadow)]
