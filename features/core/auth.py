"""Who is calling: the user id in Flask's session cookie, checked against the users table.

Login stays on the legacy side (`POST /auth/login` sets `session["user_id"]`); native
routes read the same cookie with the same SECRET_KEY. One set of dependencies for every
feature: `current_user` (may be None), `require_login`, `require_admin`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request

from features.core.db import SessionDep
from features.core.errors import Forbidden, Unauthorized
from features.core.flask_session import COOKIE_NAME, SessionCookie
from features.core.settings import Settings

# only the columns a permission check needs; features keep their own full mappings
_users = sa.table("users", sa.column("id"), sa.column("role"), sa.column("is_active"))


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def session_cookie(request: Request) -> SessionCookie:
    reader: SessionCookie | None = getattr(request.app.state, "session_cookie", None)
    if reader is None:
        settings: Settings = request.app.state.settings
        reader = SessionCookie(settings.secret_key, max_age=settings.permanent_session_lifetime)
        request.app.state.session_cookie = reader
    return reader


def session_user_id(request: Request) -> int | None:
    """`session["user_id"]` from a valid cookie, else None (tampered or expired: logged out)."""
    data = session_cookie(request).loads(request.cookies.get(COOKIE_NAME))
    user_id = data.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        return user_id
    return None


async def current_user(request: Request, session: SessionDep) -> Principal | None:
    user_id = session_user_id(request)
    if user_id is None:
        return None
    row = (
        await session.execute(sa.select(_users.c.role, _users.c.is_active).where(_users.c.id == user_id))
    ).one_or_none()
    # a session that outlived its user, or the user's deactivation, is no login at all
    if row is None or not row.is_active:
        return None
    return Principal(user_id=user_id, role=row.role)


async def require_login(user: Annotated[Principal | None, Depends(current_user)]) -> Principal:
    if user is None:
        raise Unauthorized()
    return user


async def require_admin(user: Annotated[Principal, Depends(require_login)]) -> Principal:
    if not user.is_admin:
        raise Forbidden()
    return user


CurrentUser = Annotated[Principal | None, Depends(current_user)]
LoginRequired = Annotated[Principal, Depends(require_login)]
AdminRequired = Annotated[Principal, Depends(require_admin)]
