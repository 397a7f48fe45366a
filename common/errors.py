"""Typed errors, mapped to HTTP once by :func:`install_error_handlers`, in one shape.

Every error body but a 422's is :class:`ErrorBody` (``{"detail": "...", "code": "..."}``,
plus the fields its error adds); a 422 keeps FastAPI's validation shape, whose
``detail[].loc`` names the field. :func:`error_responses` declares them in the OpenAPI.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException


class ServiceError(Exception):
    """An error with an HTTP status and a stable machine-readable ``code``."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        return {"detail": self.message, "code": self.code, **self.details}


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class InvalidRequest(ServiceError):
    status_code = 422
    code = "invalid_request"


class InvalidFields(ServiceError):
    """Input that passes the schema but not the service's own rules (an unknown SKU, a
    reused Idempotency-Key): a 422 in the validation shape, each error's ``loc`` naming
    its field, as FastAPI's own 422s do. The service's logic raises it; only
    :func:`install_error_handlers` knows it is HTTP.

    ::

        raise InvalidFields([{"type": "unknown_sku", "loc": ("body", "items", 0, "sku"),
                              "msg": "unknown SKU SKU-9", "input": "SKU-9"}])
    """

    status_code = 422
    code = "invalid_fields"

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__("; ".join(str(error["msg"]) for error in errors))
        self.errors = [dict(error) for error in errors]


class DownstreamUnavailable(ServiceError):
    """A downstream service was down, too slow, or answered with a 5xx."""

    status_code = 503
    code = "downstream_unavailable"

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} unavailable: {reason}", service=service)
        self.service = service
        self.reason = reason


class DatabaseBusy(ServiceError):
    """The service's own database could not do its part in time: SQLite's write lock not
    free within the busy timeout, a PostgreSQL lock or connection lost. Overload, not a
    bug: a 503 the client may retry, never a 500. An order left pending by it is ended
    and undone by the order service's recovery of abandoned orders."""

    status_code = 503
    code = "database_busy"

    def __init__(self) -> None:
        super().__init__("the service's database is busy: try again shortly")


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"

    def __init__(self) -> None:
        super().__init__("request bodies are JSON: send Content-Type: application/json")


class BodyTooLarge(HTTPException):
    """413. An HTTPException, not a ServiceError: it is raised while FastAPI reads the body,
    which turns any other exception there into a 400."""

    code = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")
        self.details = {"limit_bytes": limit}


class ErrorBody(BaseModel):
    """The body of every error response but a validation error (422)."""

    model_config = ConfigDict(extra="allow")

    detail: str
    code: str


class FieldError(BaseModel):
    """One invalid field of a 422; ``loc`` names it (``["body", "items", 0, "quantity"]``)."""

    type: str
    loc: list[str | int]
    msg: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationErrorBody(BaseModel):
    """The body of a 422 (FastAPI's validation shape)."""

    detail: list[FieldError]


def error_response(error: ServiceError | HTTPException) -> JSONResponse:
    if isinstance(error, ServiceError):
        return JSONResponse(error.to_body(), status_code=error.status_code)
    status = HTTPStatus(error.status_code)
    body = {
        "detail": error.detail if isinstance(error.detail, str) else status.phrase,
        "code": getattr(error, "code", status.name.lower()),
        **getattr(error, "details", {}),
    }
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


def error_responses(described: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses``: each status with what it means here, as an :class:`ErrorBody`."""
    return {status: {"model": ErrorBody, "description": text} for status, text in described.items()}


#: Characters of a field's input that a 422 may echo back; longer inputs, lists and
#: objects are left out (the ``loc`` and ``msg`` say what is wrong).
MAX_ECHO = 100


def _echoable(value: Any) -> bool:
    if value is None or isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)  # json.loads takes NaN; no JSON response can carry it
    if isinstance(value, str) and len(value) <= MAX_ECHO:
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate
            return False
        return True
    return False


def _bounded(error: dict[str, Any], secret_fields: Collection[str]) -> dict[str, Any]:
    """An error of a 422 as it is sent: no input of a secret field (card data), no big or
    unencodable input, and ``ctx`` values as text."""
    secret = any(part in secret_fields for part in error.get("loc", ()))
    bounded: dict[str, Any] = {k: error[k] for k in ("type", "loc", "msg") if k in error}
    if "input" in error and not secret and _echoable(error["input"]):
        bounded["input"] = error["input"]
    ctx = error.get("ctx")
    if ctx and not secret:
        bounded["ctx"] = {
            k: v if _echoable(v) else str(v).encode(errors="replace").decode()
            for k, v in ctx.items()
        }
    return bounded


async def _service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc)


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI makes a body that is not UTF-8 a 400; it is malformed JSON, like any other.
        error = {"type": "json_invalid", "loc": ["body"], "msg": "JSON must be UTF-8 text"}
        return JSONResponse({"detail": [error]}, status_code=422)
    return error_response(exc)


def install_error_handlers(app: FastAPI, *, secret_fields: Collection[str] = ()) -> None:
    """Map ServiceError and HTTPException (404, 405, 413 ...) to :class:`ErrorBody`; 422s
    keep FastAPI's shape (``detail[].loc`` names the field) with bounded inputs, and never
    echo the input of a field under ``secret_fields`` (card data)."""
    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(HTTPException, _http_error_handler)
    # Imported here: settings modules import this one, and must stay light.
    from sqlalchemy.exc import OperationalError

    async def database_busy(request: Request, exc: Exception) -> JSONResponse:
        response = error_response(DatabaseBusy())
        response.headers["Retry-After"] = "1"
        return response

    app.add_exception_handler(OperationalError, database_busy)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        # The request's schema (FastAPI) and the service's own rules give the same 422.
        assert isinstance(exc, RequestValidationError | InvalidFields)
        found = exc.errors() if isinstance(exc, RequestValidationError) else exc.errors
        errors = [_bounded(error, secret_fields) for error in found]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(InvalidFields, validation_error)
