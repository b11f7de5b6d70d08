"""HTTP edge of the users feature: parse, call the service, shape the response."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from features.core.auth import LoginRequired
from features.core.db import SessionDep
from features.core.deps import SettingsDep
from features.core.openapi import ERROR_RESPONSES, json_body_doc, query_doc
from features.core.pagination import Page
from features.core.params import query_params
from features.core.validation import json_body
from features.users import service
from features.users.schemas import UserCreate, UserListQuery, UserOut, UserPatch, UserReplace

router = APIRouter(prefix="/api", tags=["users"], responses=ERROR_RESPONSES)


@router.get("/users", name="users.list", openapi_extra=query_doc(UserListQuery))
async def list_users(request: Request, session: SessionDep) -> Page[UserOut]:
    return await service.list_users(session, query=query_params(request, UserListQuery))


@router.get("/users/{user_id:int}", name="users.get")
async def get_user(user_id: int, session: SessionDep) -> UserOut:
    return await service.get_user(session, user_id=user_id)


@router.post("/users", name="users.create", status_code=201, openapi_extra=json_body_doc(UserCreate))
async def create_user(
    request: Request, response: Response, session: SessionDep, settings: SettingsDep
) -> UserOut:
    data = await json_body(request, UserCreate)
    user = await service.create_user(
        session,
        email=data.email,
        name=data.name,
        password=data.password,
        role=data.role,
        hash_iterations=settings.password_hash_iterations,
    )
    response.headers["Location"] = request.url_for("users.get", user_id=user.id).path
    return user


@router.put("/users/{user_id:int}", name="users.replace", openapi_extra=json_body_doc(UserReplace))
async def replace_user(user_id: int, request: Request, session: SessionDep) -> UserOut:
    # 404 before the body is looked at, as on the legacy side
    await service.ensure_exists(session, user_id=user_id)
    data = await json_body(request, UserReplace)
    return await service.update_user(session, user_id=user_id, changes=data.model_dump())


@router.patch("/users/{user_id:int}", name="users.update", openapi_extra=json_body_doc(UserPatch))
async def update_user(user_id: int, request: Request, session: SessionDep) -> UserOut:
    await service.ensure_exists(session, user_id=user_id)
    data = await json_body(request, UserPatch)
    changes = data.model_dump(exclude_unset=True)
    return await service.update_user(session, user_id=user_id, changes=changes)


@router.delete("/users/{user_id:int}", name="users.delete", status_code=204)
async def delete_user(user_id: int, session: SessionDep) -> Response:
    await service.delete_user(session, user_id=user_id)
    return Response(status_code=204)


@router.get("/me", name="users.me")
async def me(user: LoginRequired, session: SessionDep) -> UserOut:
    return await service.get_user(session, user_id=user.user_id)
