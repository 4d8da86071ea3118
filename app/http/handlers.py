"""Exception handlers: every error the app raises becomes the contract's JSON error body."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import BumpfitError, Unavailable, shaped
from app.http.validation import validation_details
from app.store import dberrors

log = logging.getLogger("bumpfit.api")
HTTP_TYPES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def _json(
    request: Request, body: dict[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The error response, in V2's shape on /v2 routes (`app.errors.shaped`)."""
    body, status = shaped(body, status, request.url.path)
    return JSONResponse(body, status_code=status, headers=headers)


async def bumpfit_error(request: Request, exc: Exception) -> JSONResponse:
    """BumpfitError and its subclasses, with their own status."""
    assert isinstance(exc, BumpfitError)
    return _json(request, exc.body(), exc.status_code, exc.headers)


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """A request that does not match its schema: 422 naming each field by its path in the request."""
    assert isinstance(exc, RequestValidationError)
    errors = validation_details(list(exc.errors())) or [{"loc": "body", "msg": "invalid"}]
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if first["loc"] == "body" and "json" not in request.headers.get("content-type", ""):
        more += "; send the body as JSON with the header Content-Type: application/json"
    body = {
        "error": {"type": "validation_error", "message": f"{first['loc']}: {first['msg']}{more}", "details": errors}
    }
    return _json(request, body, 422)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method, unparseable body)."""
    assert isinstance(exc, StarletteHTTPException)
    kind = HTTP_TYPES.get(exc.status_code, "http_error")
    body = {"error": {"type": kind, "message": str(exc.detail), "details": None}}
    return _json(request, body, exc.status_code, exc.headers)


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database error, told apart: away or busy for now -> 503 "retry" with Retry-After; a missing
    table or column (not migrated) -> 500 naming the request id, and a log line saying what to do.
    Anything else goes on to the catch-all 500. No answer carries SQL or a connection string."""
    assert isinstance(exc, DBAPIError)
    request_id = getattr(request.state, "request_id", "")
    if dberrors.transient(exc):
        log.warning("database unavailable: %s", dberrors.summary(exc), extra={"request_id": request_id})
        err = Unavailable("the database is unavailable; retry shortly")
        return _json(request, err.body(), 503, {"Retry-After": "1"})
    if dberrors.schema_missing(exc):
        log.error("%s (%s)", dberrors.MIGRATE_HINT, dberrors.summary(exc), extra={"request_id": request_id})
        message = (
            f"the database is not set up for this release; the service log has what to do under request id {request_id}"
        )
        body = BumpfitError(message, details={"request_id": request_id}).body()
        return _json(request, body, 500)
    raise exc


def install(app: FastAPI) -> None:
    """Register every handler on the app; anything else is answered by middleware.Observe."""
    app.add_exception_handler(BumpfitError, bumpfit_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(DBAPIError, database_error)
