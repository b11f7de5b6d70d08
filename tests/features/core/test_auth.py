"""The shared login dependencies over a seeded users table."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from features.core.auth import AdminRequired, CurrentUser, LoginRequired
from features.core.db import dispose_engine
from features.core.errors import install_error_handlers
from features.core.settings import Settings
from tests.features.helpers import SECRET, flask_cookie

pytestmark = pytest.mark.anyio

ADMIN_ID, ALICE_ID = 1, 2  # the seed's first accounts


def auth_app(url: str) -> FastAPI:
    app = FastAPI()
    app.state.settings = Settings(database_url=url, secret_key=SECRET)
    install_error_handlers(app)

    @app.get("/who")
    async def who(user: CurrentUser) -> dict[str, object]:
        return {"user": None if user is None else [user.user_id, user.role]}

    @app.get("/login-only")
    async def login_only(user: LoginRequired) -> dict[str, int]:
        return {"user_id": user.user_id}

    @app.get("/admin-only")
    async def admin_only(user: AdminRequired) -> dict[str, int]:
        return {"user_id": user.user_id}

    return app


@pytest.fixture
async def client(seeded_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = auth_app(seeded_url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client
    await dispose_engine(app)


async def call(client: httpx.AsyncClient, path: str, cookie: str | None) -> httpx.Response:
    headers = {"cookie": f"session={cookie}"} if cookie is not None else {}
    return await client.get(path, headers=headers)


def inactive_user_id(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        user_id = conn.scalar(sa.text("select min(id) from users where is_active = false"))
    engine.dispose()
    assert isinstance(user_id, int)
    return user_id


async def test_logged_out(client: httpx.AsyncClient) -> None:
    assert (await call(client, "/who", None)).json() == {"user": None}
    response = await call(client, "/login-only", None)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "login required"}}
    assert (await call(client, "/admin-only", None)).status_code == 401


async def test_customer(client: httpx.AsyncClient) -> None:
    cookie = flask_cookie({"user_id": ALICE_ID}, SECRET)
    assert (await call(client, "/who", cookie)).json() == {"user": [ALICE_ID, "customer"]}
    assert (await call(client, "/login-only", cookie)).json() == {"user_id": ALICE_ID}
    response = await call(client, "/admin-only", cookie)
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "forbidden", "message": "admin role required"}}


async def test_admin(client: httpx.AsyncClient) -> None:
    cookie = flask_cookie({"user_id": ADMIN_ID}, SECRET)
    assert (await call(client, "/admin-only", cookie)).json() == {"user_id": ADMIN_ID}


@pytest.mark.parametrize(
    "session",
    [
        {"user_id": 999_999},  # deleted since login
        {"user_id": "2"},
        {"user_id": True},
        {"other": 2},
        {},
    ],
)
async def test_sessions_that_are_no_login(client: httpx.AsyncClient, session: dict[str, object]) -> None:
    response = await call(client, "/login-only", flask_cookie(session, SECRET))
    assert response.status_code == 401


async def test_a_deactivated_user_is_logged_out(client: httpx.AsyncClient, seeded_url: str) -> None:
    cookie = flask_cookie({"user_id": inactive_user_id(seeded_url)}, SECRET)
    assert (await call(client, "/login-only", cookie)).status_code == 401


async def test_a_cookie_signed_with_another_secret_is_no_login(client: httpx.AsyncClient) -> None:
    cookie = flask_cookie({"user_id": ADMIN_ID}, "not-the-secret")
    assert (await call(client, "/admin-only", cookie)).status_code == 401


async def test_a_tampered_cookie_is_no_login(client: httpx.AsyncClient) -> None:
    cookie = flask_cookie({"user_id": ALICE_ID}, SECRET)
    payload, rest = cookie.split(".", 1)
    forged = flask_cookie({"user_id": ADMIN_ID}, SECRET).split(".", 1)[0]
    assert (await call(client, "/login-only", f"{forged}.{rest}")).status_code == 401
    assert (await call(client, "/login-only", f"{payload}.{rest}")).status_code == 200
