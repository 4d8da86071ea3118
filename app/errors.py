"""Error types with HTTP status codes; one handler renders them all as the contract's body."""

from __future__ import annotations

from typing import Any


class BumpfitError(Exception):
    """Something went wrong."""

    status_code = 500
    type = "internal_error"

    def __init__(self, message: str | None = None, details: Any = None, headers: dict[str, str] | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.details = details
        self.headers = headers  # sent with the error response (Retry-After)
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """The contract's error body."""
        return {"error": {"type": self.type, "message": self.message, "details": self.details}}


class InvalidInput(BumpfitError):
    """The request is not valid."""

    status_code = 422
    type = "validation_error"

    @classmethod
    def at(cls, field: str, problem: str) -> InvalidInput:
        """An error about one field, named by its dotted path."""
        return cls(f"{field}: {problem}", details=[{"loc": field, "msg": problem}])


class TooLarge(InvalidInput):
    """The request exceeds a configured limit."""

    status_code = 413
    type = "too_large"


class Unauthorized(BumpfitError):
    """An API key is required."""

    status_code = 401
    type = "unauthorized"


class Forbidden(BumpfitError):
    """This API key may not do that."""

    status_code = 403
    type = "forbidden"


class InvalidHost(BumpfitError):
    """This service does not answer to that host name."""

    status_code = 400
    type = "invalid_host"


class NotFound(BumpfitError):
    """No such resource."""

    status_code = 404
    type = "not_found"


class Conflict(BumpfitError):
    """The resource is not in a state that allows this."""

    status_code = 409
    type = "conflict"


class TooMany(BumpfitError):
    """Over a per-key limit: the request rate, queued jobs or open event streams."""

    status_code = 429
    type = "too_many_requests"


class Unavailable(BumpfitError):
    """The service cannot answer now; try again shortly."""

    status_code = 503
    type = "unavailable"


def is_v2(path: str) -> bool:
    """True for the Open Inference Protocol's routes, whose errors take V2's shape."""
    return path == "/v2" or path.startswith("/v2/")


def shaped(body: dict[str, Any], status: int, path: str) -> tuple[dict[str, Any], int]:
    """An error body and status for `path`: the contract's, or on /v2 routes V2's `{"error": message}`,
    where a request the model cannot take is a 400 (as in Triton and KServe) rather than a 422."""
    if not is_v2(path):
        return body, status
    return {"error": body["error"]["message"]}, 400 if status == 422 else status
