"""The dashboard's HTTP side: GET /_gateway/, the login form, and a page per route.

Pages that read the stores are plain `def` handlers: FastAPI runs them on its thread pool,
so a slow store never blocks the event loop that serves traffic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import SecretStr

from gateway.dashboard import data
from gateway.dashboard.auth import COOKIE, COOKIE_PATH, Sessions
from gateway.dashboard.pages import BASE, login_page, message_page, overview_page
from gateway.dashboard.samples import route_page
from gateway.metrics import GatewayMetrics
from gateway.parity.recorder import ParityRecorder
from gateway.reloader import MapHolder
from gateway.rollout.state import RolloutStore

MAX_FORM_BYTES = 16 * 1024
OFF = "the dashboard is off: set GATEWAY_ADMIN_TOKEN (or GATEWAY_ADMIN_TOKENS) to turn it on"
WRONG = "that is not an admin token: use GATEWAY_ADMIN_TOKEN's value, or one of GATEWAY_ADMIN_TOKENS"
# where a login may send the browser back to: a dashboard page, never another site
_NEXT = re.compile(r"^/_gateway/(?:[A-Za-z0-9_.:%-]+(?:/[A-Za-z0-9_.:%-]+)*)?$")
HEADERS = {
    # no script at all; inline CSS and SVG only; the favicon is a data: URL
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def dashboard_router(
    *,
    holder: MapHolder,
    metrics: GatewayMetrics,
    recorder: ParityRecorder | None,
    rollout: RolloutStore | None,
    admin_tokens: Mapping[str, SecretStr],
) -> APIRouter:
    sessions = Sessions(admin_tokens)
    router = APIRouter(prefix=BASE, include_in_schema=False)

    def signed_in(request: Request) -> str | None:
        """The holder a bearer header or a session cookie names, if either is valid."""
        authorization = request.headers.get("authorization")
        if authorization:
            return sessions.bearer(authorization)
        cookie = request.cookies.get(COOKIE)
        return sessions.verify(cookie) if cookie else None

    def off() -> HTMLResponse:
        return html(message_page("Dashboard off", OFF), 404)

    @router.get("/")
    def overview(request: Request, refresh: int = Query(10, ge=0, le=3600)) -> Response:
        if not sessions.enabled:
            return off()
        holder_name = signed_in(request)
        if holder_name is None:
            return html(login_page())
        figures = data.overview(holder, metrics, recorder, rollout)
        return html(overview_page(figures, holder=holder_name, refresh=refresh))

    @router.get("/routes/{route_id:path}")  # ids in the store are not always the map's
    def route(request: Request, route_id: str) -> Response:
        if not sessions.enabled:
            return off()
        holder_name = signed_in(request)
        if holder_name is None:
            return html(login_page(next_path=request.url.path))
        detail = data.route(route_id, holder, metrics, recorder, rollout)
        if detail is None:
            unknown = f"no route {route_id!r} in the map nor in the parity store"
            return html(message_page("Unknown route", unknown), 404)
        return html(route_page(detail, holder=holder_name))

    @router.post("/login")
    async def login(request: Request) -> Response:
        if not sessions.enabled:
            return off()
        form = await _form(request)
        if form is None:
            return html(message_page("Too large", f"a login form is at most {MAX_FORM_BYTES} bytes"), 413)
        wanted = form.get("next", "")
        next_path = wanted if _NEXT.match(wanted) and "//" not in wanted else f"{BASE}/"
        holder_name = sessions.holder_of(form.get("token", ""))
        if holder_name is None:
            return html(login_page(WRONG, next_path), 401)
        response = RedirectResponse(next_path, status_code=303, headers=HEADERS)
        response.set_cookie(
            COOKIE,
            sessions.issue(holder_name),
            max_age=sessions.lifetime_s,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse(f"{BASE}/", status_code=303, headers=HEADERS)
        response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
        return response

    return router


async def _form(request: Request) -> dict[str, str] | None:
    """An url-encoded form's first values; None when it is too large. Parsed here rather than
    with FastAPI's Form, which needs python-multipart: the gateway core does not depend on it."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            return None
    fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}
