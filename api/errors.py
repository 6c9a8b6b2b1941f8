"""Every failure leaves the API in Stripe's shape:
`{"error": {"type", "code", "message", "param"}}` with the matching status."""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from billing.errors import BillingError

log = logging.getLogger(__name__)


def error_response(error: BillingError, headers: dict[str, str] | None = None) -> Response[dict[str, Any]]:
    body = {k: v for k, v in error.to_dict().items() if k != "status"}
    return Response({"error": body}, status_code=error.status, headers=headers)


def _param(key: str | None) -> str | None:
    if not key:
        return None
    parts = re.split(r"\.", key)
    return parts[0] + "".join(f"[{part}]" for part in parts[1:])


# pydantic's messages, as Litestar passes them on, to Stripe's error codes
_MESSAGE_CODES = [
    ("Extra inputs are not permitted", "parameter_unknown"),
    ("Field required", "parameter_missing"),
    ("valid email", "email_invalid"),
    ("at most", "parameter_invalid_string_too_long"),
    ("at least", "parameter_invalid_string_empty"),
    # msgspec's, for query and header parameters
    ("of length <=", "parameter_invalid_string_too_long"),
    ("of length >=", "parameter_invalid_string_empty"),
    ("valid integer", "parameter_invalid_integer"),
    ("should match pattern", "parameter_invalid_format"),
]


def _declared_name(request: Request[Any, Any, Any], key: str | None) -> str | None:
    """A query or header parameter by the name the client sent (`created[gt]`), not the
    handler's argument name (`created_gt`)."""
    if not key:
        return key
    handler = request.route_handler
    # the handler's own arguments, then those of its dependencies (api/params.py: paging)
    signatures = [
        handler.parsed_fn_signature,
        *(p.parsed_fn_signature for p in handler.resolve_dependencies().values()),
    ]
    for signature in signatures:
        parameter = signature.parameters.get(key)
        if parameter is not None:
            definition = parameter.kwarg_definition
            return getattr(definition, "query", None) or getattr(definition, "header", None) or key
    return key


def on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    problems = exc.extra if isinstance(exc.extra, list) else []
    if not problems:
        return error_response(BillingError(str(exc.detail), code="parameter_invalid"))
    first = problems[0]
    key = first.get("key")
    param = _declared_name(request, key) if first.get("source") in ("query", "header") else _param(key)
    message = first.get("message", "Invalid request").removeprefix("Value error, ")  # a validator's own words
    code = next((code for text, code in _MESSAGE_CODES if text in message), "parameter_invalid")
    if code == "parameter_unknown":
        message = f"Received unknown parameter: {param}"
    elif code == "parameter_missing":
        message = f"Missing required param: {param}."
    elif param:
        message = f"Invalid {param}: {message}"
    return error_response(BillingError(message, code=code, param=param))


def on_billing_error(request: Request[Any, Any, Any], exc: BillingError) -> Response[dict[str, Any]]:
    headers = {"Retry-After": "1"} if exc.status in (429, 503) else {}
    headers.update(getattr(exc, "headers", {}))  # a failed command's (api/responses.py CommandFailed)
    return error_response(exc, headers or None)


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if isinstance(exc, NotFoundException) or status == 404:
        return error_response(
            BillingError(
                f"Unrecognized request URL ({request.method}: {request.url.path}).", code="url_invalid", status=404
            )
        )
    codes = {
        405: "method_not_allowed",
        413: "request_too_large",
        415: "unsupported_media_type",
        429: "rate_limit",
        401: "api_key_invalid",
    }
    types = {429: "rate_limit_error", 401: "authentication_error"}
    detail = str(exc.detail)
    if status == 400:
        # validation errors have their own handler: a bare 400 is a body that did not decode
        return error_response(BillingError(f"Invalid JSON body: {detail}", code="invalid_json"))
    headers = dict(exc.headers or {})
    if status == 429:
        headers.setdefault("Retry-After", str(headers.get("RateLimit-Reset", 1)))
    error = BillingError(detail, code=codes.get(status, "invalid_request"), type=types.get(status), status=status)
    return error_response(error, headers)


# Postgres restarting says so in these: connection lost or refused (class 08), shutting down
# or starting up (57P01-57P03), too many connections; the driver's own "connection closed"
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53300")
_UNAVAILABLE_DRIVER_ERRORS = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    PoolTimeout,
    OSError,
    TimeoutError,
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether a failure says Postgres is out of reach (not that the query was wrong),
    looking through the wrapping SQLAlchemy and asyncpg put around the cause."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        if str(getattr(error, "sqlstate", None) or "").startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if isinstance(error, _UNAVAILABLE_DRIVER_ERRORS):
            return True
        pending += [getattr(error, "orig", None), error.__cause__, error.__context__]
        if isinstance(error, BaseExceptionGroup):  # Litestar's cleanup of dependencies gathers them
            pending += error.exceptions
    return False


def on_database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, (OperationalError, InterfaceError)) or database_unavailable(exc):
        return on_database_unavailable(request, exc)
    return on_unexpected(request, exc)


def on_database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(
        BillingError(
            "The database is unavailable; nothing was changed. Retry later.",
            code="database_unavailable",
            type="api_error",
            status=503,
        ),
        {"Retry-After": "1"},
    )


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if database_unavailable(exc):
        return on_database_unavailable(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        BillingError(
            "An unexpected error occurred.",
            code="internal_error",
            type="api_error",
            status=HTTP_500_INTERNAL_SERVER_ERROR,
        )
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    DBAPIError: on_database_error,
    PoolTimeout: on_database_unavailable,
    asyncpg.exceptions.PostgresError: on_database_error,
    asyncpg.exceptions.InterfaceError: on_database_unavailable,
    ValidationException: on_validation,
    BillingError: on_billing_error,
    HTTPException: on_http_error,
    Exception: on_unexpected,
}
