"""Reads of applied commands: their first outcome, for duplicates, idempotent replays
and the `GET /v1/commands/{id}` status."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.sessions import get_one
from billing.models import ProcessedCommand
from contracts.envelopes import CommandOutcome


def _outcome(row: ProcessedCommand) -> CommandOutcome:
    return CommandOutcome(
        commandId=row.command_id,
        commandType=row.type,
        status=row.status.value,
        requestHash=row.request_hash,
        resourceId=row.resource_id,
        result=row.result,
        error=row.error,
    )


async def outcomes_of(session: AsyncSession, command_ids: Iterable[str]) -> dict[str, tuple[str, CommandOutcome]]:
    """(organization id, outcome) by command id, across tenants: the consumer dedupes a
    batch of many tenants' commands at once, and must tell a replay from a foreign id."""
    rows = await session.scalars(select(ProcessedCommand).where(ProcessedCommand.command_id.in_(set(command_ids))))
    return {row.command_id: (row.organization_id, _outcome(row)) for row in rows.all()}


async def get_outcome(session: AsyncSession, command_id: str) -> CommandOutcome | None:
    row = await get_one(session, ProcessedCommand, ProcessedCommand.command_id, command_id)
    return _outcome(row) if row else None
