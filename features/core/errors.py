"""Domain errors and the one error shape at the edge: the legacy app's.

`{"error": {"code", "message"}}`, plus `"fields"` for validation errors. Services raise
these; only the handlers installed by `install_error_handlers` turn them into HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import ErrorDetails, PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from features.core.responses import LegacyJSONResponse


class DomainError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else self.default_message
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(DomainError):
    status_code = 400
    code = "bad_request"
    default_message = "request body must be a JSON object"


class ValidationFailed(DomainError):
    status_code = 400
    code = "validation_error"
    default_message = "invalid input"

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__()
        self.fields = dict(fields)

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["fields"] = self.fields
        return body


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"
    default_message = "login required"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"
    default_message = "admin role required"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    default_message = "not found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"
    default_message = "conflict"


def invalid(message: str) -> PydanticCustomError:
    """A pydantic error whose text is shown to the client as is (a legacy message)."""
    return PydanticCustomError("legacy", message)


# pydantic's built-in error types, in the legacy app's words
_MESSAGES: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a number",
    "decimal_type": "must be a number",
    "decimal_parsing": "must be a number",
}


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "legacy":
        return error["msg"]
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}"
    return _MESSAGES.get(kind, error["msg"])


def fields_from_errors(errors: Iterable[ErrorDetails], *, skip: int = 0) -> dict[str, str]:
    """`{field: message}`, the first error per field, in the order pydantic reports them.

    `skip` drops leading location parts (FastAPI prefixes "query", "body", ...).
    """
    fields: dict[str, str] = {}
    for error in errors:
        loc = error["loc"][skip:]
        name = str(loc[0]) if loc else "body"
        fields.setdefault(name, _message(error))
    return fields


def _is_body_shape_error(error: ErrorDetails) -> bool:
    # the body as a whole is missing, not JSON, or not an object: legacy says bad_request
    loc = error["loc"]
    return error["type"] == "json_invalid" or (loc[:1] == ("body",) and len(loc) == 1)


def request_validation_error(exc: RequestValidationError) -> DomainError:
    errors: list[ErrorDetails] = list(exc.errors())
    if any(_is_body_shape_error(error) for error in errors):
        return BadRequest()
    return ValidationFailed(fields_from_errors(errors, skip=1))


def error_response(error: DomainError) -> JSONResponse:
    return LegacyJSONResponse(error.body(), status_code=error.status_code)


# routing errors (no such path, wrong method), under the legacy app's codes and messages
_HTTP_ERRORS = {
    400: ("bad_request", "bad request"),
    404: ("not_found", "not found"),
    405: ("method_not_allowed", "method not allowed"),
    413: ("payload_too_large", "payload too large"),
    500: ("internal_error", "internal server error"),
}


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    # every method some route answers on this path, not only the first route's ones
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return error_response(exc)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    default = exc.detail.lower() if isinstance(exc.detail, str) else "error"
    code, message = _HTTP_ERRORS.get(status, (default.replace(" ", "_"), default))
    body = {"error": {"code": code, "message": message}}
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = _allowed_methods(request)
    return LegacyJSONResponse(body, status_code=status, headers=headers)


async def _on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # the server still logs the traceback: Starlette re-raises after this response is sent
    return LegacyJSONResponse(
        {"error": {"code": "internal_error", "message": "internal server error"}},
        status_code=500,
    )


async def _on_request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(request_validation_error(exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected_error)
