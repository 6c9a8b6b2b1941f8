"""Errors in Stripe's shape: `{"error": {"type", "code", "message", "param"}}`.

A service raises a BillingError; the consumer records it as the command's outcome and the
API answers it with `status`. Nothing else needs to know how an error is rendered.
"""

from __future__ import annotations

from typing import Any


class BillingError(Exception):
    type: str = "invalid_request_error"
    status: int = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        if type is not None:
            self.type = type
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, error: dict[str, Any]) -> BillingError:
        return cls(
            error["message"],
            code=error.get("code"),
            param=error.get("param"),
            type=error["type"],
            status=error.get("status", 400),
        )


class InvalidRequest(BillingError):
    pass


class ResourceMissing(BillingError):
    status = 404

    def __init__(self, resource: str, resource_id: str, param: str | None = "id") -> None:
        super().__init__(f"No such {resource}: '{resource_id}'", code="resource_missing", param=param)


class IdempotencyError(BillingError):
    type = "idempotency_error"
    status = 400


class Conflict(BillingError):
    status = 409


class AuthenticationError(BillingError):
    type = "authentication_error"
    status = 401


class RateLimited(BillingError):
    type = "rate_limit_error"
    status = 429


class ServiceUnavailable(BillingError):
    type = "api_error"
    status = 503


class InternalError(BillingError):
    type = "api_error"
    status = 500


_VALIDATION_CODES = {
    "missing": "parameter_missing",
    "extra_forbidden": "parameter_unknown",
    "string_too_long": "parameter_invalid_string_too_long",
    "string_too_short": "parameter_invalid_string_empty",
    "int_type": "parameter_invalid_integer",
    "int_parsing": "parameter_invalid_integer",
    "int_from_float": "parameter_invalid_integer",
    "string_pattern_mismatch": "parameter_invalid_format",
}


def stripe_param(location: tuple[int | str, ...]) -> str | None:
    """("address", "line1") -> "address[line1]", as Stripe names nested parameters."""
    parts = [str(part) for part in location if part not in ("body",)]
    if not parts:
        return None
    return parts[0] + "".join(f"[{part}]" for part in parts[1:])


def from_validation_error(error: Any) -> InvalidRequest:
    """The first problem of a pydantic ValidationError, with its exact parameter."""
    first = error.errors(include_url=False)[0]
    param = stripe_param(tuple(first["loc"]))
    code = _VALIDATION_CODES.get(first["type"], "parameter_invalid")
    if first["type"] == "value_error" and "email" in first["msg"].lower():
        code = "email_invalid"
    if first["type"] == "extra_forbidden":
        message = f"Received unknown parameter: {param}"
    elif first["type"] == "missing":
        message = f"Missing required param: {param}."
    else:
        message = f"Invalid {param}: {first['msg']}" if param else first["msg"]
    return InvalidRequest(message, code=code, param=param)
