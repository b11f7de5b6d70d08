"""Request and response shapes of /api/users, with the legacy validation messages."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainValidator

from features.core import params, validation
from features.core.serialize import Timestamp
from features.users.models import ROLES

Email = Annotated[str, PlainValidator(validation.email, json_schema_input_type=str)]
Name = Annotated[str, PlainValidator(validation.text(1, 120), json_schema_input_type=str)]
Password = Annotated[str, PlainValidator(validation.password, json_schema_input_type=str)]
Role = Annotated[str, PlainValidator(validation.choice(ROLES), json_schema_input_type=str)]
Active = Annotated[bool, PlainValidator(validation.boolean, json_schema_input_type=bool)]

# listed in the order the error message names them; the first is the default
SORTS = ("id", "name", "email", "created_at")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    role: str
    is_active: bool
    created_at: Timestamp
    updated_at: Timestamp


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    name: Name
    password: Password
    role: Role = "customer"


class UserReplace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    name: Name
    role: Role
    is_active: Active


class UserPatch(BaseModel):
    """Any subset of the editable fields; a key sent as null is still checked (and refused)."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[str | None, PlainValidator(validation.email)] = None
    name: Annotated[str | None, PlainValidator(validation.text(1, 120))] = None
    role: Annotated[str | None, PlainValidator(validation.choice(ROLES))] = None
    is_active: Annotated[bool | None, PlainValidator(validation.boolean)] = None


class UserListQuery(BaseModel):
    page: params.Page = 1
    per_page: params.PerPage = 20
    role: Annotated[str | None, PlainValidator(params.query_choice(ROLES), json_schema_input_type=str)] = None
    is_active: params.BoolFilter = None
    q: params.TextFilter = None
    sort: Annotated[str, PlainValidator(params.query_sort(SORTS), json_schema_input_type=str)] = SORTS[0]
