"""`billing stack up|down|status`: the Typer sub-app over stack.core."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from contracts.settings import PROJECT_ROOT

from . import core
from ._proc import StackError
from .base import ServiceStatus

stack_app = typer.Typer(
    name="stack",
    help="The local stack: Postgres, Apache Kafka (KRaft), ClickHouse (chDB), stripe-mock and an SMTP server (mail in .data/mail), under .data/.",
    no_args_is_help=True,
    add_completion=False,
)

ServicesArg = Annotated[
    list[str] | None,
    typer.Argument(help="Services (postgres, kafka, clickhouse, stripe-mock, smtp); default: all.", show_default=False),
]


def _quiet_libraries() -> None:
    # Probing a broker that is still starting makes aiokafka log connection errors.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _short(path: Path | None) -> str:
    if path is None:
        return "-"
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _table(rows: list[ServiceStatus]) -> str:
    header = ("SERVICE", "STATE", "MODE", "PID", "ADDRESS", "DATA", "LOG", "DETAIL")
    body = [
        (
            r.name,
            "healthy" if r.healthy else "DOWN",
            r.mode,
            str(r.pid) if r.pid else "-",
            r.address,
            _short(r.data_dir),
            _short(r.log_file),
            r.detail,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in [header, *body]
    )


@stack_app.command()
def up(services: ServicesArg = None) -> None:
    """Start the stack (idempotent: reuses what runs, never re-downloads or re-inits)."""
    _quiet_libraries()
    t0 = time.monotonic()
    try:
        rows = core.ensure_up(services, say=_say)
    except StackError as exc:
        typer.echo(f"billing stack up failed:\n{exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(_table(rows))
    typer.echo(f"stack up in {time.monotonic() - t0:.1f} s", err=True)


@stack_app.command()
def down(services: ServicesArg = None) -> None:
    """Stop what `up` started (SIGTERM, wait, then SIGKILL). Data stays in .data/."""
    _quiet_libraries()
    t0 = time.monotonic()
    try:
        core.down(services, say=_say)
    except StackError as exc:
        typer.echo(f"billing stack down failed:\n{exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"stack down in {time.monotonic() - t0:.1f} s", err=True)


@stack_app.command()
def status(
    services: ServicesArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """What runs where (service, pid, address, data dir, log file, healthy?). Exit 1 if any is down."""
    _quiet_libraries()
    try:
        rows = core.status(services)
    except StackError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        typer.echo(_table(rows))
    if not all(r.healthy for r in rows):
        raise typer.Exit(1)
