"""Claiming due work across every organization, once, whatever number of schedulers run.

A claim locks the due rows it reads (`FOR UPDATE SKIP LOCKED`: a second scheduler takes
other rows rather than wait) and records one `scheduled_commands` row per unit, in the
transaction the caller commits only after Kafka acknowledged the commands. A crash
before that commit leaves no claim and the next pass publishes the same commands again
(the same ids: the consumer's dedupe answers the repeat); after it, the claim stands and
nothing is published twice. The unique (subject, type, due time) is the last word should
two claims ever meet."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.models import ScheduledCommand
from billing.scheduling.due import DueKind
from contracts.commands import Command
from contracts.envelopes import Actor, CommandEnvelope, command_id_for

ACTOR = Actor(type="system", id="scheduler")


@dataclass(frozen=True)
class DueWork:
    organization_id: str
    subject_id: str
    due_at: datetime
    command: Command[Any]

    @property
    def command_id(self) -> str:
        """The same for the same unit, whichever scheduler publishes it and however often."""
        unit = f"scheduler:{self.command.command_type}:{self.subject_id}:{self.due_at.isoformat()}"
        return command_id_for(self.organization_id, unit)

    def envelope(self, issued_at: datetime) -> CommandEnvelope:
        return CommandEnvelope(
            commandId=self.command_id,
            type=self.command.command_type,
            organizationId=self.organization_id,
            actor=ACTOR,
            issuedAt=issued_at,
            payload=self.command.payload(),
        )


def _unclaimed(kind: DueKind, now: datetime, organization_ids: Collection[str] | None) -> list[ColumnElement[bool]]:
    claimed = exists().where(
        ScheduledCommand.subject_id == kind.subject.id,
        ScheduledCommand.type == kind.command_type,
        ScheduledCommand.due_at == kind.due_at,
    )
    conditions = [kind.is_due(literal(now)), ~claimed]
    if organization_ids is not None:
        conditions.append(kind.subject.organization_id.in_(organization_ids))
    return conditions


async def count_due(
    session: AsyncSession, kind: DueKind, now: datetime, organization_ids: Collection[str] | None = None
) -> int:
    """How many units of `kind` are due by `now` and not claimed yet."""
    statement = select(func.count()).select_from(kind.subject).where(*_unclaimed(kind, now, organization_ids))
    return (await session.scalar(statement)) or 0


async def claim_due(
    session: AsyncSession,
    kind: DueKind,
    now: datetime,
    limit: int,
    organization_ids: Collection[str] | None = None,
) -> tuple[int, list[DueWork]]:
    """Up to `limit` units of `kind` due by `now`, earliest first, claimed in the session's
    transaction: how many due rows it found, and the units it claimed (a row another
    claim took in between is not among them)."""
    statement = (
        select(kind.subject.organization_id, kind.subject.id, kind.due_at)
        .where(*_unclaimed(kind, now, organization_ids))
        .order_by(kind.due_at)
        .limit(limit)
        .with_for_update(of=kind.subject, skip_locked=True)
    )
    found = [
        DueWork(organization_id, subject_id, due_at, kind.command(subject_id, due_at))
        for organization_id, subject_id, due_at in (await session.execute(statement)).tuples()
    ]
    if not found:
        return 0, []
    claims = (
        insert(ScheduledCommand)
        .values(
            [
                {
                    "command_id": work.command_id,
                    "organization_id": work.organization_id,
                    "type": kind.command_type,
                    "subject_id": work.subject_id,
                    "due_at": work.due_at,
                }
                for work in found
            ]
        )
        .on_conflict_do_nothing()
        .returning(ScheduledCommand.command_id)
    )
    won = set((await session.scalars(claims)).all())
    return len(found), [work for work in found if work.command_id in won]
