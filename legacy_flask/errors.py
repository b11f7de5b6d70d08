"""One error shape for the JSON API, raised anywhere and rendered at the edge."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

# Werkzeug's own errors on /api paths, under the contract's codes and messages
_HTTP_ERRORS = {
    400: ("bad_request", "bad request"),
    404: ("not_found", "not found"),
    405: ("method_not_allowed", "method not allowed"),
    413: ("payload_too_large", "payload too large"),
    500: ("internal_error", "internal server error"),
}


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    pass


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class ValidationError(ApiError):
    code = "validation_error"

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("invalid input")
        self.fields = fields


def error_response(
    status: int, code: str, message: str, fields: dict[str, str] | None = None
) -> Response:
    body: dict[str, object] = {"code": code, "message": message}
    if fields is not None:
        body["fields"] = fields
    response = jsonify(error=body)
    response.status_code = status
    return response


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, getattr(exc, "fields", None))


def _http_error(exc: HTTPException) -> Response | HTTPException:
    # HTML pages keep Werkzeug's error pages; only the JSON API speaks the error shape
    if not request.path.startswith("/api/"):
        return exc
    status = exc.code or 500
    code, message = _HTTP_ERRORS.get(
        status, ((exc.name or "error").lower().replace(" ", "_"), (exc.name or "error").lower())
    )
    response = error_response(status, code, message)
    # keep the Allow header of a 405 and similar: clients rely on it
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def register(app: Flask) -> None:
    # unhandled exceptions reach the HTTPException handler as InternalServerError, after
    # Flask has logged the traceback
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
