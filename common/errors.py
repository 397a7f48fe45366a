"""Typed errors, mapped to HTTP once by :func:`install_error_handlers`."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


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


class DownstreamUnavailable(ServiceError):
    """A downstream service was down, too slow, or answered with a 5xx."""

    status_code = 503
    code = "downstream_unavailable"

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} unavailable: {reason}", service=service)
        self.service = service
        self.reason = reason


async def _service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return JSONResponse(exc.to_body(), status_code=exc.status_code)


def install_error_handlers(app: FastAPI, *, secret_fields: Collection[str] = ()) -> None:
    """Map ServiceError to its status; 422s keep FastAPI's shape (``detail[].loc`` names
    the field) but never echo the input of a field under ``secret_fields`` (card data)."""
    app.add_exception_handler(ServiceError, _service_error_handler)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = []
        for error in exc.errors():
            if secret_fields and any(part in secret_fields for part in error.get("loc", ())):
                error = {k: v for k, v in error.items() if k not in ("input", "ctx")}
            errors.append(error)
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    app.add_exception_handler(RequestValidationError, validation_error)
