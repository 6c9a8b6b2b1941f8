"""`billing analytics ...`: a Typer sub-app, mounted by cli/main.py as `analytics`.

    billing analytics migrate
    billing analytics consume                     # the consumer as its own process
    billing analytics replay --since 2d           # or an ISO time / epoch seconds
    billing analytics usage --org org_1 --meter api_call --start 2025-01-01 --end 2025-02-01
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

analytics_app = typer.Typer(help="ClickHouse analytics: usage and interaction events.", no_args_is_help=True)


@analytics_app.command()
def migrate() -> None:
    """Apply the ClickHouse migrations (idempotent)."""
    from analytics.migrations import migrate as run
    from analytics.store import get_store

    store = get_store()
    applied = run(store)
    typer.echo(f"{store.url}: applied {applied}" if applied else f"{store.url}: up to date")


@analytics_app.command()
def consume() -> None:
    """Run the analytics consumer until interrupted (Ctrl-C / SIGTERM stop it cleanly)."""
    from analytics.consumer import main
    from cli.heap import settle_heap

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
    stats = run(None, start, until=end, topics=topics, batch_size=batch_size)
    typer.echo(
        f"replayed {stats.messages} records from {stats.partitions} partitions in {stats.seconds:.1f}s: "
        f"{stats.usage_inserted} usage events stored, {stats.usage_duplicates} already there, "
        f"{stats.interactions} interactions, {stats.dead_letters} dead letters"
    )


@analytics_app.command()
def usage(
    org: Annotated[str, typer.Option(help="organization id")],
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
    from analytics.store import get_store
    from contracts.usage import format_decimal

    now = datetime.now(UTC)
    try:
        rows = run(
            get_store(),
            org,
            meter,
            aggregation,  # type: ignore[arg-type]
            start=parse_since(start) if start else now - timedelta(days=30),
            end=parse_since(end) if end else now,
            group_by=group_by,  # type: ignore[arg-type]
            value_key=value_key,
            customer_id=customer,
        )
    except (QueryError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    for r in rows:
        label = " ".join(x for x in (r.bucket.isoformat() if r.bucket else "", r.customer_id or "") if x) or "total"
        typer.echo(f"{label}\t{format_decimal(r.value) if r.value is not None else '-'}\t{r.event_count} events")
