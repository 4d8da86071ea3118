"""Error responses shared by the routers' OpenAPI declarations."""

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """What went wrong, in words a user can act on."""

    type: str
    message: str
    details: Any = Field(
        None,
        description="more on the error, shaped by its kind: a 422 or 413 lists `{loc, msg}` per field (a "
        "sweep's add the `point`, or give `{point, error}`); a 500 gives `{request_id}`; a 409 names what "
        "is in the way (`job_id`, `status`, `labels` or `jobs`); null when there is nothing to add",
    )


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
