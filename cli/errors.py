"""How the CLI answers what went wrong: one line on stderr and exit code 1, never a
traceback for something a person can act on (a wrong id, Postgres out of reach, a
directory that cannot be written). Malformed arguments are usage errors: typer's exit 2.
A traceback is left only for what is a bug of ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import typer

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def id_of(resource: str) -> Callable[[str], str]:
    """A typer callback refusing, as a usage error, a value that cannot be an id of
    `resource` (billing/ids.py: its prefix, then letters and digits), before any query."""
    from billing.ids import PREFIXES, has_shape

    def check(value: str) -> str:
        if not has_shape(resource, value):
            what = resource.replace("_", " ")
            raise typer.BadParameter(f"{value!r} is not an {what} id ({PREFIXES[resource]}_ then letters and digits)")
        return value

    return check


def text_of(max_length: int) -> Callable[[str], str]:
    """A typer callback for a name: 1 to `max_length` characters, no NUL or invalid UTF-8
    (the limits of its column and of the API's input rules)."""
    from billing.requests.input_rules import bad_text

    def check(value: str) -> str:
        if not 1 <= len(value) <= max_length:
            raise typer.BadParameter(f"give 1 to {max_length} characters (got {len(value)})")
        if bad_text(value):
            raise typer.BadParameter("holds a NUL or bytes that are not UTF-8")
        return value

    return check


# Postgres refusing who connects, or to what: a wrong password or role (class 28), no such
# database (3D000). DATABASE_URL says something else than the stack's.
_REFUSED_SQLSTATES = ("28", "3D000")


def _refusal(error: BaseException | None) -> BaseException | None:
    """The driver's error in `error`'s chain that refuses the connection, if one does."""
    while error is not None:
        if str(getattr(error, "sqlstate", None) or "").startswith(_REFUSED_SQLSTATES):
            return error
        error = getattr(error, "orig", None) or error.__cause__
    return None


def database_unreachable(error: BaseException) -> str | None:
    """The message for a failure that says Postgres is out of reach or refuses
    DATABASE_URL's credentials or database, else None."""
    from sqlalchemy.engine import make_url

    from api.errors import database_unavailable
    from contracts.settings import get_settings

    url = make_url(get_settings().database_url)
    where = f"Postgres at {url.host}:{url.port}/{url.database}"
    refusal = _refusal(error)
    if refusal is not None:
        return f"{where} refused the connection ({refusal}); check DATABASE_URL"
    if database_unavailable(error):
        return f"cannot reach {where} ({error}); start the local stack with `billing stack up`, or set DATABASE_URL"
    return None


def run(work: Callable[[], T]) -> T:
    """`work()`, with its billing errors (billing/errors.py: a missing resource, a refused
    request) and an unreachable Postgres answered as messages."""
    from billing.errors import BillingError

    try:
        return work()
    except BillingError as error:
        fail(error.message)
    except Exception as error:
        message = database_unreachable(error)
        if message is None:
            raise
        fail(message)


def run_async(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`run` for a coroutine function: its own event loop, as each CLI command has."""
    return run(lambda: asyncio.run(work()))
