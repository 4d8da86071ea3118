"""Error responses shared by the routers' OpenAPI declarations."""

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """What went wrong, in words a user can act on."""

    type: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx response."""

    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed body (unparseable JSON or multipart)"},
    404: {"model": ErrorResponse, "description": "Unknown id"},
    409: {"model": ErrorResponse, "description": "State conflict"},
    413: {"model": ErrorResponse, "description": "Over a configured limit"},
    422: {"model": ErrorResponse, "description": "Invalid request: `details` names each field by its path"},
    500: {"model": ErrorResponse, "description": "Unexpected error; `details.request_id` finds it in the log"},
}
