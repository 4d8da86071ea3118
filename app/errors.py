"""Error types with HTTP status codes; one handler renders them all as the contract's body."""

from __future__ import annotations

from typing import Any


class BumpfitError(Exception):
    """Something went wrong."""

    status_code = 500
    type = "internal_error"

    def __init__(self, message: str | None = None, details: Any = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.details = details
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


class NotFound(BumpfitError):
    """No such resource."""

    status_code = 404
    type = "not_found"


class Conflict(BumpfitError):
    """The resource is not in a state that allows this."""

    status_code = 409
    type = "conflict"


class Unavailable(BumpfitError):
    """The service cannot answer now; try again shortly."""

    status_code = 503
    type = "unavailable"
