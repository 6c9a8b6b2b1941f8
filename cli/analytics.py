"""`billing analytics ...`: a Typer sub-app, mounted by cli/main.py as `analytics`.

billing analytics migrate
billing analytics consume                     # the consumer as its own process
billing analytics replay --since 2d           # or an ISO time / epoch seconds
billing analytics usage --org org_1 --meter api_call --start 2025-01-01 --end 2025-02-01
"""

from __future__ import annotations

import fcntl
import os
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.errors import fail, id_of

if TYPE_CHECKING:
    from analytics.store import AnalyticsStore

analytics_app = typer.Typer(help="ClickHouse analytics: usage and interaction events.", no_args_is_help=True)

# what to do instead when another process holds the chDB directory (consume, replay, migrate)
STOP_THE_HOLDER = (
    "Stop that process first, or run it as `billing dev --no-analytics` so that it leaves the store to this command."
)


def chdb_holder(path: Path) -> str | None:
    """The process that holds the chDB directory `path`, if one does ("pid 123: billing dev").

    chDB is the ClickHouse server in a library: it takes an exclusive flock on
    `<path>/status` and writes its PID there. Opening the engine anyway fails only with
    "Error initializing EmbeddedServer" (after chDB prints the real reason to stderr
    itself), so a shared lock taken and dropped at once is how to tell, and who."""
    try:
        fd = os.open(path / "status", os.O_RDONLY)
    except FileNotFoundError:
        return None  # never opened: nothing holds it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            status = os.read(fd, 4096).decode(errors="replace")
        else:
            return None
    finally:
        os.close(fd)
    pid = next((line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith("PID:")), "")
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:  # no /proc (macOS), or another PID namespace
        return f"pid {pid}" if pid else "another process"
    # `.../.venv/bin/python3 .../.venv/bin/billing dev` reads as `python3 billing dev`
    command = " ".join(Path(word).name if word.startswith("/") else word for word in words if word)
    command = " ".join(command.split())
    return f"pid {pid}: {command[:80]}{'...' if len(command) > 80 else ''}"


def open_store(instead: str) -> AnalyticsStore:
    """The analytics store of CLICKHOUSE_URL, or a message and exit 1 when it cannot be
    opened: with chDB, one that says which process holds the directory, and `instead`."""
    from clickhouse_connect.driver.exceptions import OperationalError

    from analytics.store import StoreError, get_store, parse_store_url
    from contracts.settings import get_settings

    url = get_settings().clickhouse_url
    try:
        target = parse_store_url(url)
        holder = chdb_holder(Path(target.path)) if target.kind == "chdb" and target.path else None
        if holder is not None:
            fail(
                f"the analytics store {target.path} is open in another process ({holder}); "
                f"chDB lets one process at a time use its directory.\n{instead}"
            )
        return get_store(url)
    except StoreError as error:
        fail(str(error))
    except OperationalError:  # clickhouse-connect's for a server out of reach (after its retries)
        fail(
            f"cannot reach the ClickHouse server at {target.host}:{target.port}; "
            "start it, or set CLICKHOUSE_URL (chdb:///path for the embedded default)"
        )


@analytics_app.command()
def migrate() -> None:
    """Apply the ClickHouse migrations (idempotent)."""
    from analytics.migrations import migrate as run

    store = open_store("The process that holds it migrates it when it starts. " + STOP_THE_HOLDER)
    applied = run(store)
    typer.echo(f"{store.url}: applied {applied}" if applied else f"{store.url}: up to date")


@analytics_app.command()
def consume() -> None:
    """Run the analytics consumer until interrupted (Ctrl-C / SIGTERM stop it cleanly)."""
    from analytics.consumer import main
    from cli.heap import settle_heap

    open_store(STOP_THE_HOLDER)
    settle_heap()
    main()


@analytics_app.command()
def replay(
    since: Annotated[str, typer.Option(help="ISO-8601 time, date, epoch seconds, or 90m / 6h / 2d back from now")],
    until: Annotated[str | None, typer.Option(help="stop at this time (default: the end of the topics now)")] = None,
    usage_only: Annotated[bool, typer.Option("--usage-only", help="replay usage.events only")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 10_000,
) -> None:
    """Re-read usage.events and billing.events from --since into ClickHouse (idempotent)."""
    from analytics.consumer import BILLING_EVENTS, USAGE_EVENTS
    from analytics.replay import parse_since
    from analytics.replay import replay as run

    try:
        start = parse_since(since)
        end = parse_since(until) if until else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    topics = (USAGE_EVENTS,) if usage_only else (USAGE_EVENTS, BILLING_EVENTS)
    open_store(STOP_THE_HOLDER)  # the replay's own, opened here to say why it cannot be
    stats = run(None, start, until=end, topics=topics, batch_size=batch_size)
    typer.echo(
        f"replayed {stats.messages} records from {stats.partitions} partitions in {stats.seconds:.1f}s: "
        f"{stats.usage_inserted} usage events stored, {stats.usage_duplicates} already there, "
        f"{stats.interactions} interactions, {stats.dead_letters} dead letters"
    )


@analytics_app.command()
def usage(
    org: Annotated[str, typer.Option(help="organization id", callback=id_of("organization"))],
    meter: Annotated[str, typer.Option(help="event name")],
    aggregation: Annotated[str, typer.Option()] = "sum",
    start: Annotated[str | None, typer.Option(help="default: 30 days ago")] = None,
    end: Annotated[str | None, typer.Option(help="default: now")] = None,
    group_by: Annotated[str | None, typer.Option(help="day, hour or customer")] = None,
    value_key: Annotated[str | None, typer.Option()] = None,
    customer: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Print a usage query's rows (exact decimals)."""
    from analytics.queries import QueryError
    from analytics.queries import usage as run
    from analytics.replay import parse_since
    from contracts.usage import format_decimal

    now = datetime.now(UTC)
    try:
        since = parse_since(start) if start else None
        until = parse_since(end) if end else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    store = open_store(
        f"The same figures from the running API (KEY: a secret key of {org}):\n"
        f"  {_usage_request(meter, aggregation, since, until, group_by, customer, value_key)}\n"
        "or stop that process and run this again."
    )
    try:
        rows = run(
            store,
            org,
            meter,
            aggregation,  # type: ignore[arg-type]  # typer hands a str, checked against the choices
            start=since or now - timedelta(days=30),
            end=until or now,
            group_by=group_by,  # type: ignore[arg-type]  # typer hands a str, checked against the choices
            value_key=value_key,
            customer_id=customer,
        )
    except (QueryError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    for r in rows:
        label = " ".join(x for x in (r.bucket.isoformat() if r.bucket else "", r.customer_id or "") if x) or "total"
        typer.echo(f"{label}\t{format_decimal(r.value) if r.value is not None else '-'}\t{r.event_count} events")


def _usage_request(
    event_name: str,
    aggregation: str,
    start: datetime | None,
    end: datetime | None,
    group_by: str | None,
    customer: str | None,
    value_key: str | None,
) -> str:
    """The curl of `GET /v1/analytics/usage` (api/controllers/analytics.py) that answers
    what `billing analytics usage` was asked, for a process that holds chDB to serve (with
    no --start / --end, its default range is the same: the last 30 days)."""
    from contracts.settings import get_settings

    settings = get_settings()
    query = {
        "eventName": event_name,
        "aggregation": aggregation,
        "from": start and start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "to": end and end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "groupBy": group_by,
        "customer": customer,
    }
    words = ["curl", "-s", "-G", f"http://{settings.api_host}:{settings.api_port}/v1/analytics/usage"]
    for name, value in query.items():
        if value is not None:
            words += ["--data-urlencode", f"{name}={value}"]
    command = shlex.join(words) + ' -H "Authorization: Bearer $KEY"'
    if value_key is not None:
        # the API sums a property only through a meter that names it
        command += (
            f"\n  (for --value-key {value_key}: meter=<the id of a meter with valueKey {value_key}> "
            "instead of eventName and aggregation)"
        )
    return command
