"""Applies a batch of commands in one Postgres transaction.

For each command, in Kafka order: a commandId already in `processed_commands` is answered
again with its first outcome; otherwise its handler runs, and the outcome (success, or a
Stripe-shaped error) is recorded in `processed_commands` with its events in the outbox.
One commit covers the batch; the Kafka offsets are committed only after it, so a crash
replays the batch and the dedupe makes that harmless.

The first pass is optimistic: no savepoint and no flush per command, the batch's rows
written together at the end. A command that fails having written something it cannot
take back makes the batch roll back and run again with a savepoint around each command.

A message that is not a command envelope at all goes to the dead-letter topic with the
reason. A transient failure (Postgres away) raises, so the caller retries the whole batch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import event, insert
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from billing.commands import outcomes_of
from billing.db import TENANT_KEY
from billing.errors import BillingError, Conflict, IdempotencyError, InternalError, InvalidRequest, from_validation_error
from billing.models import Outbox, ProcessedCommand
from billing.outbox import outbox_row
from consumers.registry import Applied, Route
from contracts.enums import CommandStatus
from contracts.envelopes import CommandEnvelope, CommandOutcome, EventEnvelope, new_event_id, utcnow
from producers.topics import BILLING_EVENTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawCommand:
    """One Kafka record as the pipeline sees it."""

    value: bytes | None
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class DeadLetter:
    record: RawCommand
    reason: str


@dataclass(frozen=True)
class StagedEvent:
    """An outbox row as committed: what the relay publishes right after the commit."""

    id: int
    topic: str
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class BatchResult:
    applied: int
    duplicates: int
    dead_letters: list[DeadLetter]
    events: list[StagedEvent]


def is_transient(error: BaseException) -> bool:
    """Failures that say nothing about the command: retry, never record."""
    if isinstance(error, (OperationalError, InterfaceError, OSError, TimeoutError)):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def parse_record(record: RawCommand) -> CommandEnvelope | DeadLetter:
    if not record.value:
        return DeadLetter(record, "empty message")
    try:
        document = json.loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return DeadLetter(record, f"not JSON: {error}")
    try:
        return CommandEnvelope.model_validate(document)
    except ValidationError as error:
        return DeadLetter(record, f"not a command envelope: {error.errors(include_url=False)}")


def _event(envelope: CommandEnvelope, event_type: str, data: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(
        eventId=new_event_id(),
        type=event_type,
        organizationId=envelope.organizationId,
        occurredAt=utcnow(),
        commandId=envelope.commandId,
        data=data,
    )


def _outcome_event(envelope: CommandEnvelope, outcome: CommandOutcome) -> EventEnvelope:
    return _event(envelope, f"command.{outcome.status}", outcome.model_dump(mode="json"))


class BatchRecords:
    """The bookkeeping rows of a batch (processed commands, outbox events), inserted with
    one statement each just before the commit instead of one round trip per command."""

    def __init__(self) -> None:
        self.processed: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def event(self, envelope: EventEnvelope) -> None:
        self.events.append(outbox_row(envelope, BILLING_EVENTS))

    def outcome(self, envelope: CommandEnvelope, applied: Applied | None, error: BillingError | None) -> CommandOutcome:
        outcome = CommandOutcome(
            commandId=envelope.commandId,
            commandType=envelope.type,
            status="succeeded" if error is None else "failed",
            requestHash=envelope.request_hash(),
            resourceType=applied.resource_type if applied else None,
            resourceId=applied.resource_id if applied else None,
            result=applied.resource if applied else None,
            error=error.to_dict() if error else None,
        )
        self.processed.append(
            {
                "command_id": envelope.commandId,
                "organization_id": envelope.organizationId,
                "type": envelope.type,
                "idempotency_key": envelope.idempotencyKey,
                "request_hash": outcome.requestHash,
                "status": CommandStatus(outcome.status),
                "resource_id": outcome.resourceId,
                "result": outcome.result,
                "error": outcome.error,
            }
        )
        self.event(_outcome_event(envelope, outcome))
        for event_type, data in applied.events if applied else []:
            self.event(_event(envelope, event_type, data))
        return outcome

    async def write(self, session: AsyncSession) -> list[StagedEvent]:
        """Inserts the rows; returns the events with their outbox ids, for the relay."""
        if self.processed:
            await session.execute(insert(ProcessedCommand), self.processed)
        if not self.events:
            return []
        ids = await session.scalars(insert(Outbox).returning(Outbox.id, sort_by_parameter_order=True), self.events)
        return [StagedEvent(id, row["topic"], row["key"], row["payload"]) for id, row in zip(ids.all(), self.events, strict=True)]


class _NeedsIsolation(Exception):
    """A command failed after it had written: the optimistic pass cannot undo that alone."""


_FLUSHES = "flushes"


@event.listens_for(Session, "after_flush")
def _count_flushes(session: Session, flush_context: object) -> None:
    session.info[_FLUSHES] = session.info.get(_FLUSHES, 0) + 1


def _discard_unflushed(session: AsyncSession, new_before: set[object]) -> None:
    """Forget what a failed command added or changed in memory but had not written."""
    for obj in list(session.new):
        if obj not in new_before:
            session.expunge(obj)
    for obj in list(session.dirty):
        session.expire(obj)


async def _apply_one(
    session: AsyncSession, routes: dict[str, Route], envelope: CommandEnvelope, *, isolated: bool
) -> tuple[Applied | None, BillingError | None]:
    """Runs one handler. Isolated, inside a savepoint that a failure rolls back. Not
    isolated (the fast path: no savepoint, no flush of its own), a failure that wrote
    nothing is simply forgotten, and any other asks for the isolated pass."""
    route = routes.get(envelope.type)
    if route is None:
        return None, InvalidRequest(f"Unknown command type {envelope.type!r}.", code="unknown_command", param="type")
    try:
        payload = route.payload_model.model_validate(envelope.payload)
    except ValidationError as error:
        return None, from_validation_error(error)
    if not isolated:
        # earlier commands of the batch may have changes not yet flushed: a failure can
        # only be forgotten if it touched nothing but objects of its own
        flushes = session.sync_session.info.get(_FLUSHES, 0)
        new_before, changed_before = set(session.new), bool(session.dirty or session.deleted)
        try:
            return await route.handler(session, payload), None
        except BillingError as error:
            if session.sync_session.info.get(_FLUSHES, 0) != flushes or changed_before or session.deleted:
                raise _NeedsIsolation from error
            _discard_unflushed(session, new_before)
            return None, error
        except Exception as error:
            if is_transient(error):
                raise
            raise _NeedsIsolation from error
    savepoint = await session.begin_nested()
    try:
        applied = await route.handler(session, payload)
        await session.flush()
    except BillingError as error:
        await savepoint.rollback()
        return None, error
    except IntegrityError as error:
        await savepoint.rollback()
        log.warning("command %s hit a constraint: %s", envelope.commandId, error.orig)
        return None, Conflict("The request conflicts with the current state of the resource.", code="resource_conflict")
    except Exception as error:
        await savepoint.rollback()
        if is_transient(error):
            raise
        log.exception("command %s (%s) failed unexpectedly", envelope.commandId, envelope.type)
        return None, InternalError("An internal error occurred while applying the command.", code="internal_error")
    await savepoint.commit()
    return applied, None


async def _flush(session: AsyncSession, *, isolated: bool) -> None:
    """Writes what the optimistic pass kept in memory; a constraint it breaks belongs to
    some command of the batch, which only the isolated pass can tell."""
    try:
        await session.flush()
    except IntegrityError as error:
        if isolated:
            raise
        raise _NeedsIsolation from error


async def apply_batch(
    sessions: async_sessionmaker[AsyncSession], routes: dict[str, Route], records: list[RawCommand]
) -> BatchResult:
    """Tries the whole batch without savepoints; if a command fails after writing, rolls
    the batch back and applies it again with a savepoint around each command."""
    parsed = [parse_record(record) for record in records]
    envelopes = [p for p in parsed if isinstance(p, CommandEnvelope)]
    dead_letters = [p for p in parsed if isinstance(p, DeadLetter)]
    try:
        applied, duplicates, events = await _apply_envelopes(sessions, routes, envelopes, isolated=False)
    except _NeedsIsolation:
        applied, duplicates, events = await _apply_envelopes(sessions, routes, envelopes, isolated=True)
    return BatchResult(applied, duplicates, dead_letters, events)


async def _apply_envelopes(
    sessions: async_sessionmaker[AsyncSession], routes: dict[str, Route], envelopes: list[CommandEnvelope], *, isolated: bool
) -> tuple[int, int, list[StagedEvent]]:
    applied_count = duplicates = 0
    records = BatchRecords()
    # autoflush: a command that reads what an earlier command of the batch wrote sees it;
    # otherwise the batch's writes go out together at the end
    async with sessions(autoflush=True) as session, session.begin():
        known = await outcomes_of(session, {e.commandId for e in envelopes})
        seen_in_batch: dict[str, CommandOutcome] = {}
        for envelope in envelopes:
            owner, first = known.get(envelope.commandId, (envelope.organizationId, seen_in_batch.get(envelope.commandId)))
            if owner != envelope.organizationId:
                # another tenant's command id: answer without revealing its outcome
                refused = CommandOutcome(
                    commandId=envelope.commandId,
                    commandType=envelope.type,
                    status="failed",
                    requestHash=envelope.request_hash(),
                    error=IdempotencyError("This commandId is already in use.", code="command_id_in_use", param="commandId").to_dict(),
                )
                records.event(_outcome_event(envelope, refused))
                continue
            if first is not None:
                # answered again, so that a client retrying after a timeout gets its result
                records.event(_outcome_event(envelope, first))
                duplicates += 1
                continue
            if session.info.get(TENANT_KEY) != envelope.organizationId:
                # an object loaded for another tenant must never be served from the identity map
                await _flush(session, isolated=isolated)
                session.expunge_all()
                session.info[TENANT_KEY] = envelope.organizationId
            applied, error = await _apply_one(session, routes, envelope, isolated=isolated)
            seen_in_batch[envelope.commandId] = records.outcome(envelope, applied, error)
            applied_count += 1
        session.info.pop(TENANT_KEY, None)
        await _flush(session, isolated=isolated)
        events = await records.write(session)
    return applied_count, duplicates, events


def dead_letter_message(letter: DeadLetter) -> dict[str, Any]:
    return {
        "reason": letter.reason,
        "topic": letter.record.topic,
        "partition": letter.record.partition,
        "offset": letter.record.offset,
        "value": (letter.record.value or b"").decode("utf-8", errors="replace"),
        "receivedAt": utcnow().isoformat(),
    }
