"""`billing scheduler` and `billing renewals run`: the scheduler as its own process, and
one pass of it from the command line (catching up after downtime).

billing scheduler                              # until SIGINT/SIGTERM (also inside consume and dev)
billing renewals run                           # publish what is due now, wait for the consumer
billing renewals run --until 2027-01-01T00:00:00Z --organization org_1
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from cli.errors import fail, id_of, run_async

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from billing.scheduling.service import DueWork

renewals_app = typer.Typer(
    help="Due work: renewals, trial reminders, payment retries, expiries, test clocks.", no_args_is_help=True
)

Organizations = Annotated[
    list[str] | None,
    typer.Option(
        "--organization",
        metavar="ORGANIZATION",
        help="only this organization's work (repeatable); every organization's by default",
        callback=lambda values: [id_of("organization")(value) for value in values] if values else None,
    ),
]
BatchSize = Annotated[int, typer.Option(min=1, max=10_000, help="units claimed and published per transaction")]


def scheduler(organization: Organizations = None, batch_size: BatchSize = 500) -> None:
    """Run the scheduler until SIGINT/SIGTERM: every second, publish the commands for the
    work that fell due. Any number may run at once; each unit is published once."""
    from cli.main import _logging, _safe_settings, _until_signalled
    from consumers.scheduler import run_scheduler

    settings = _safe_settings()
    _logging()
    asyncio.run(
        _until_signalled(
            lambda stop: run_scheduler(stop, settings, organization_ids=organization, batch_size=batch_size)
        )
    )


@renewals_app.command("run")
def renewals_run(
    until: Annotated[
        str | None, typer.Option(help="take the work due up to this time (ISO-8601, epoch seconds, 6h / 2d back)")
    ] = None,
    organization: Organizations = None,
    batch_size: BatchSize = 500,
    wait: Annotated[
        float, typer.Option(min=0, help="seconds to wait for the consumer to apply what was published (0: no wait)")
    ] = 120,
) -> None:
    """One pass of the scheduler: publish the commands for the work due (renewals, trial
    reminders, payment retries, incomplete expiries, test clock steps), then follow the
    consumer applying them."""
    from analytics.replay import parse_since
    from consumers.scheduler import due_by

    latest = due_by()
    try:
        moment = parse_since(until) if until else latest
    except ValueError as error:
        fail(str(error))
    if moment > latest:
        fail(
            f"--until {moment.isoformat()} is in the future: work is done when it is due "
            f"(a test clock moves a customer's time)"
        )
    run_async(lambda: _renewals_pass(moment, organization, batch_size, wait))


async def _renewals_pass(moment: datetime, organization_ids: list[str] | None, batch_size: int, wait: float) -> None:
    from rich.console import Console
    from rich.progress import Progress

    from billing.db.sessions import create_engine, create_session_factory
    from consumers.scheduler import ClickHouseUsage, count_pass, run_pass
    from contracts.settings import get_settings
    from producers.publisher import Publisher, create_broker

    console = Console()
    engine = create_engine(pool_size=2)
    sessions = create_session_factory(engine)
    broker = create_broker()
    publisher = Publisher(broker)
    try:
        total = await count_pass(sessions, moment, organization_ids)
        console.print(f"due by {moment.isoformat()}: {total} unit{'' if total == 1 else 's'} of work")
        published: list[DueWork] = []
        if not total:
            return
        await broker.start()
        with Progress(console=console, transient=False) as progress:
            task = progress.add_task("publishing", total=total)

            def advance(works: list[DueWork]) -> None:
                published.extend(works)
                progress.update(task, advance=len(works))

            await run_pass(
                sessions,
                publisher,
                moment,
                batch_size=batch_size,
                organization_ids=organization_ids,
                published=advance,
                meter_total=ClickHouseUsage(get_settings().clickhouse_url),
            )
            progress.update(task, total=len(published))
        outcomes = await _follow(sessions, published, wait, console) if wait and published else {}
        _report(console, published, outcomes)
    finally:
        await publisher.stop()
        await engine.dispose()


async def _follow(
    sessions: async_sessionmaker[AsyncSession], published: list[DueWork], wait: float, console: Console
) -> dict[str, tuple[str, str | None]]:
    """The consumer's outcome of each published command, as it comes, for up to `wait`
    seconds: command id -> (status, error code)."""
    from rich.progress import Progress
    from sqlalchemy import select

    from billing.models import ProcessedCommand

    ids = [work.command_id for work in published]
    outcomes: dict[str, tuple[str, str | None]] = {}
    deadline = time.monotonic() + wait
    with Progress(console=console) as progress:
        task = progress.add_task("applying", total=len(ids))
        while len(outcomes) < len(ids) and time.monotonic() < deadline:
            waiting = [command_id for command_id in ids if command_id not in outcomes]
            async with sessions() as session:
                for start in range(0, len(waiting), 5000):
                    rows = await session.execute(
                        select(ProcessedCommand.command_id, ProcessedCommand.status, ProcessedCommand.error).where(
                            ProcessedCommand.command_id.in_(waiting[start : start + 5000])
                        )
                    )
                    for command_id, status, error in rows:
                        outcomes[command_id] = (str(status), (error or {}).get("code"))
            progress.update(task, completed=len(outcomes))
            if len(outcomes) < len(ids):
                await asyncio.sleep(0.2)
    return outcomes


def _report(console: Console, published: list[DueWork], outcomes: dict[str, tuple[str, str | None]]) -> None:
    from rich.table import Table

    table = Table("command", title="what this pass did")
    for column in ("published", "succeeded", "failed", "not applied yet"):
        table.add_column(column, justify="right")
    by_type: dict[str, Counter[str]] = {}
    failures: Counter[tuple[str, str | None]] = Counter()
    for work in published:
        status, code = outcomes.get(work.command_id, ("pending", None))
        by_type.setdefault(work.command.command_type, Counter())[status] += 1
        if status == "failed":
            failures[(work.command.command_type, code)] += 1
    for command_type, counts in sorted(by_type.items()):
        table.add_row(
            command_type,
            str(counts.total()),
            str(counts["succeeded"]),
            str(counts["failed"]),
            str(counts["pending"]),
        )
    console.print(table)
    for (command_type, code), count in sorted(failures.items(), key=str):
        console.print(f"failed: {count} x {command_type} ({code})")
    if any(counts["pending"] for counts in by_type.values()):
        console.print("the rest is on Kafka: `billing consume` (or `billing dev`) applies it")
