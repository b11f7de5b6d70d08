"""OpenAPI for bodies and query strings that handlers parse themselves.

Handlers read the body after their own 404 check and the query string the way Werkzeug
does, so FastAPI cannot infer either; these describe them from the same pydantic models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


def query_doc(model: type[BaseModel]) -> dict[str, Any]:
    properties: dict[str, Any] = model.model_json_schema().get("properties", {})
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in properties.items()
        ]
    }


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: dict[str, str] | None = Field(
        default=None, description="validation_error only: what is wrong with each field"
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


# Every client error has the legacy shape; declaring it also keeps FastAPI from
# documenting its own 422, which these apps never send.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "an error, in the legacy app's shape"}
}
