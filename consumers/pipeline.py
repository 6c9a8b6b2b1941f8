"""Applies a batch of commands in one Postgres transaction.

For each command, in Kafka order: a commandId already in `processed_commands` is answered
again with its first outcome; otherwise its handler runs, and the outcome (success, or a
Stripe-shaped error) is recorded in `processed_commands` with its events in the outbox.
One commit covers the batch; the Kafka offsets are committed only after it, so a crash
replays the batch and the dedupe makes that harmless.

The first pass is optimistic: no savepoint and no flush per command, the batch's rows
written together at the end. Any failure of that pass that is not transient (a command
that fails having written something it cannot take back, a value Postgres refuses at the
batch's write, a handler that crashes) rolls the batch back and runs it again isolated:
a savepoint around each command, its rows and its bookkeeping written inside it, so the
command that fails alone is answered with a Stripe-shaped error and the others apply.

A message that is not a command envelope at all goes to the dead-letter topic with the
reason, and so does a command that still fails when applied alone `ALONE_TRIES` times
(it broke its transaction, or even its failure cannot be recorded): a partition never
stops. A transient failure (Postgres away) raises, so the caller retries the whole batch.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError, KafkaTimeoutError
from pydantic import ValidationError
from sqlalchemy import event, insert
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from billing.db.sessions import TENANT_KEY, bind_row_security
from billing.delivery.outbox import outbox_row
from billing.delivery.outcomes import outcomes_of
from billing.errors import (
    BillingError,
    Conflict,
    IdempotencyError,
    InternalError,
    InvalidRequest,
    from_validation_error,
)
from billing.models import Outbox, ProcessedCommand
from billing.requests.input_rules import TEXT_MESSAGE, bad_text, decoded, first_field, trimmed_param
from billing.secrets.redaction import redact
from consumers.registry import Applied, Route
from contracts.enums import CommandStatus
from contracts.envelopes import CommandEnvelope, CommandOutcome, EventEnvelope, new_event_id, utcnow
from contracts.events import COMMAND_FAILED, COMMAND_SUCCEEDED
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
class RefusedCommand:
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
class AppliedBatch:
    applied: int
    duplicates: int
    dead_letters: list[RefusedCommand]
    events: list[StagedEvent]


# SQLSTATEs that say the moment was bad, not the command: serialization failure, deadlock,
# lock or statement timeout, plus whole classes (connection lost, out of resources, shutdown)
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014"})
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57P")
ALONE_TRIES = 3
REASON_CHARS = 2000


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)


def is_transient(error: BaseException) -> bool:
    """Failures that say nothing about the command: retry, never record."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        code = _sqlstate(error)
        if code is not None:
            return code in _TRANSIENT_SQLSTATES or code.startswith(_TRANSIENT_SQLSTATE_CLASSES)
        return isinstance(error, (OperationalError, InterfaceError))
    if isinstance(error, KafkaError):
        return bool(error.retriable) or isinstance(error, KafkaTimeoutError)
    return isinstance(error, (OSError, TimeoutError))


def _refused_value(error: BaseException) -> bool:
    """Postgres (or its driver, for an argument it cannot encode) refusing a value: a data
    exception, SQLSTATE class 22 (a NUL in text, invalid JSON such as NaN or a lone
    surrogate, a number out of range)."""
    return isinstance(error, DBAPIError) and (_sqlstate(error) or "").startswith("22")


def _bad_text(value: Any) -> bool:
    return isinstance(value, str) and bad_text(value)


def _bad_number(value: Any) -> bool:
    """A float that is not finite (JSON has no NaN), an integer beyond int64."""
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63


def _refusal(envelope: CommandEnvelope) -> InvalidRequest:
    """What Postgres refused, named when the payload shows it: text it stores in no column
    (answered as the API's edge answers it), or a number out of every range."""
    param = first_field(envelope.payload, _bad_text)
    if param is not None:
        param = trimmed_param(param, bad_text)
        return InvalidRequest(f"Invalid {param or 'request'}: {TEXT_MESSAGE}.", code="invalid_characters", param=param)
    param = first_field(envelope.payload, _bad_number)
    if param is not None:
        message = f"Invalid {param}: the number cannot be stored (not finite, or out of range)."
        return InvalidRequest(message, code="invalid_value", param=param)
    return InvalidRequest("Invalid request: a value cannot be stored.", code="invalid_value")


def failure_of(envelope: CommandEnvelope, error: Exception) -> BillingError:
    """The Stripe-shaped answer to a command whose handler, flush or bookkeeping raised."""
    if isinstance(error, BillingError):
        return error
    if isinstance(error, IntegrityError):
        log.warning("command %s hit a constraint: %s", envelope.commandId, error.orig)
        return Conflict("The request conflicts with the current state of the resource.", code="resource_conflict")
    if _refused_value(error):
        log.warning("command %s (%s) holds a value Postgres refuses: %s", envelope.commandId, envelope.type, error)
        return _refusal(envelope)
    log.exception("command %s (%s) failed unexpectedly", envelope.commandId, envelope.type, exc_info=error)
    return InternalError("An internal error occurred while applying the command.", code="internal_error")


def _storable(error: BillingError) -> BillingError:
    """The error as it can be recorded: a message or param built from the payload (an
    unknown key holding a NUL) must not make the failure itself unstorable."""
    if not (bad_text(error.message) or (error.param and bad_text(error.param))):
        return error
    message = "".join("\ufffd" if bad_text(char) else char for char in error.message)
    return BillingError(
        message, code=error.code, param=trimmed_param(error.param, bad_text), type=error.type, status=error.status
    )


_ENVELOPE_TEXT = ("commandId", "type", "organizationId", "idempotencyKey")


def parse_record(record: RawCommand) -> CommandEnvelope | RefusedCommand:
    if not record.value:
        return RefusedCommand(record, "empty message")
    try:
        # invalid bytes become lone surrogates: the envelope is still read, and the field
        # that holds them is refused by name (or by Postgres, in a free-form field)
        document = json.loads(decoded(record.value))
    except (ValueError, RecursionError) as error:  # not JSON, an integer too long, nested too deep
        return RefusedCommand(record, f"not JSON: {error}")
    try:
        envelope = CommandEnvelope.model_validate(document)
    except ValidationError as error:
        return RefusedCommand(record, f"not a command envelope: {error.errors(include_url=False, include_input=False)}")
    unstorable = [name for name in _ENVELOPE_TEXT if bad_text(getattr(envelope, name) or "")]
    if unstorable:
        return RefusedCommand(
            record, f"not a command envelope: {', '.join(unstorable)} cannot be stored (NUL or invalid text)"
        )
    return envelope


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
    outcome_type = COMMAND_SUCCEEDED if outcome.status == "succeeded" else COMMAND_FAILED
    return _event(envelope, outcome_type.name, outcome.model_dump(mode="json"))


class BatchRecords:
    """The bookkeeping rows of a batch (processed commands, outbox events), inserted with
    one statement each just before the commit instead of one round trip per command (the
    isolated pass writes each command's rows inside its savepoint instead)."""

    def __init__(self) -> None:
        self.processed: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.staged: list[StagedEvent] = []

    def event(self, envelope: EventEnvelope) -> None:
        self.events.append(outbox_row(envelope, BILLING_EVENTS))

    def outcome(
        self, envelope: CommandEnvelope, applied: Applied[Any] | None, error: BillingError | None
    ) -> CommandOutcome:
        outcome = CommandOutcome(
            commandId=envelope.commandId,
            commandType=envelope.type,
            status="succeeded" if error is None else "failed",
            requestHash=envelope.request_hash(),
            resourceType=applied.resource_type if applied else None,
            resourceId=applied.resource_id if applied else None,
            result=applied.resource if applied else None,
            error=_storable(error).to_dict() if error else None,
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
        for domain_event in applied.events if applied else []:
            self.event(_event(envelope, domain_event.type, domain_event.data))
        return outcome

    def discard(self) -> None:
        """Forget the rows not written yet (those of a command whose savepoint rolled back)."""
        self.processed.clear()
        self.events.clear()

    async def write(self, session: AsyncSession) -> None:
        """Inserts the rows not written yet, each organization's under its row-level
        security (two statements per organization); their events, with outbox ids, join
        `staged`, in order within each organization."""
        organizations = dict.fromkeys(row["organization_id"] for row in [*self.processed, *self.events])
        for organization_id in organizations:
            processed = [row for row in self.processed if row["organization_id"] == organization_id]
            events = [row for row in self.events if row["organization_id"] == organization_id]
            await bind_row_security(session, organization_id)
            if processed:
                await session.execute(insert(ProcessedCommand), processed)
            if events:
                ids = await session.scalars(insert(Outbox).returning(Outbox.id, sort_by_parameter_order=True), events)
                rows = zip(ids.all(), events, strict=True)
                self.staged += [StagedEvent(id, row["topic"], row["key"], row["payload"]) for id, row in rows]
        self.discard()


class _NeedsIsolation(Exception):
    """A command refused after it had written: the optimistic pass cannot undo that alone."""


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


async def _bind_command(session: AsyncSession, routes: dict[str, Route], envelope: CommandEnvelope) -> None:
    route = routes.get(envelope.type)
    await bind_row_security(session, envelope.organizationId, tenant_role=route is None or route.command.row_security)


async def _run_handler(
    session: AsyncSession, routes: dict[str, Route], envelope: CommandEnvelope
) -> Applied[Any] | BillingError:
    """The handler's result, or the refusal of a command that never reaches one; what the
    handler raises propagates."""
    route = routes.get(envelope.type)
    if route is None:
        return InvalidRequest(f"Unknown command type {envelope.type!r}.", code="unknown_command", param="type")
    try:
        command = route.command.model_validate(envelope.payload)
    except ValidationError as error:
        return from_validation_error(error)
    return await route.handler(session, command)


async def _apply_optimistic(
    session: AsyncSession, routes: dict[str, Route], envelope: CommandEnvelope
) -> tuple[Applied[Any] | None, BillingError | None]:
    """The fast path: no savepoint, no flush of its own. A refusal that wrote nothing is
    simply forgotten; any other failure raises, for the isolated pass."""
    # earlier commands of the batch may have changes not yet flushed: a failure can
    # only be forgotten if it touched nothing but objects of its own
    flushes = session.sync_session.info.get(_FLUSHES, 0)
    new_before, changed_before = set(session.new), bool(session.dirty or session.deleted)
    try:
        result = await _run_handler(session, routes, envelope)
    except BillingError as error:
        if session.sync_session.info.get(_FLUSHES, 0) != flushes or changed_before or session.deleted:
            raise _NeedsIsolation from error
        _discard_unflushed(session, new_before)
        return None, error
    return (None, result) if isinstance(result, BillingError) else (result, None)


async def _apply_isolated(
    session: AsyncSession, routes: dict[str, Route], envelope: CommandEnvelope, records: BatchRecords
) -> CommandOutcome:
    """One command inside a savepoint, its rows flushed and its bookkeeping written there,
    so that whatever fails (handler, a value Postgres refuses, the outcome's own rows) is
    this command's: rolled back and answered as its failure. Raises only when the moment
    is at fault (transient), or when even the failure cannot be recorded."""
    await records.write(session)  # answers to duplicates, which a rollback must not take along
    await _bind_command(session, routes, envelope)  # the write may have bound another organization
    savepoint = await session.begin_nested()
    try:
        result = await _run_handler(session, routes, envelope)
        await session.flush()
        if isinstance(result, BillingError):
            outcome = records.outcome(envelope, None, result)
        else:
            outcome = records.outcome(envelope, result, None)
        await records.write(session)
    except Exception as error:
        await savepoint.rollback()
        records.discard()
        if is_transient(error):
            raise
        failure = failure_of(envelope, error)
        async with session.begin_nested():
            outcome = records.outcome(envelope, None, failure)
            await records.write(session)
        return outcome
    await savepoint.commit()
    return outcome


async def apply_batch(
    sessions: async_sessionmaker[AsyncSession], routes: dict[str, Route], records: list[RawCommand]
) -> AppliedBatch:
    """Tries the whole batch without savepoints; if that fails for a reason other than a
    transient one, rolls the batch back and applies it again with a savepoint around each
    command; if even that fails, applies each command alone. Raises only transient errors."""
    envelopes: list[tuple[RawCommand, CommandEnvelope]] = []
    dead_letters: list[RefusedCommand] = []
    for record in records:
        parsed = parse_record(record)
        if isinstance(parsed, RefusedCommand):
            dead_letters.append(parsed)
        else:
            envelopes.append((record, parsed))
    batch = [envelope for _, envelope in envelopes]
    try:
        applied, duplicates, events = await _apply_envelopes(sessions, routes, batch, isolated=False)
    except Exception as error:
        if is_transient(error):
            raise
        if not isinstance(error, _NeedsIsolation):
            log.info(
                "batch of %d commands failed (%r): applying it again with a savepoint per command", len(batch), error
            )
        try:
            applied, duplicates, events = await _apply_envelopes(sessions, routes, batch, isolated=True)
        except Exception as error:
            if is_transient(error):
                raise
            log.warning("the isolated pass of %d commands failed (%r): applying each alone", len(batch), error)
            applied, duplicates, events, poisoned = await _apply_alone(sessions, routes, envelopes)
            dead_letters += poisoned
    return AppliedBatch(applied, duplicates, dead_letters, events)


async def _apply_alone(
    sessions: async_sessionmaker[AsyncSession],
    routes: dict[str, Route],
    envelopes: list[tuple[RawCommand, CommandEnvelope]],
) -> tuple[int, int, list[StagedEvent], list[RefusedCommand]]:
    """Each command in a transaction of its own, in order, `ALONE_TRIES` times at most: one
    that still fails goes to the dead letters with the reason, and the others apply."""
    applied = duplicates = 0
    events: list[StagedEvent] = []
    poisoned: list[RefusedCommand] = []
    for record, envelope in envelopes:
        for attempt in range(1, ALONE_TRIES + 1):
            try:
                one_applied, one_duplicate, one_events = await _apply_envelopes(
                    sessions, routes, [envelope], isolated=True
                )
            except Exception as error:
                if is_transient(error):
                    raise
                log.warning(
                    "command %s failed alone (try %d of %d): %r", envelope.commandId, attempt, ALONE_TRIES, error
                )
                if attempt == ALONE_TRIES:
                    # repr: ASCII whatever the error holds; cut, as a statement's error lists its parameters
                    reason = f"command {envelope.type} failed {ALONE_TRIES} times: {error!r:.{REASON_CHARS}}"
                    if error.__context__ is not None:  # what the handler raised, when recording it failed
                        reason += f", while handling {error.__context__!r:.{REASON_CHARS}}"
                    poisoned.append(RefusedCommand(record, redact(reason)))
                continue
            applied, duplicates, events = applied + one_applied, duplicates + one_duplicate, events + one_events
            break
    return applied, duplicates, events, poisoned


async def _apply_envelopes(
    sessions: async_sessionmaker[AsyncSession],
    routes: dict[str, Route],
    envelopes: list[CommandEnvelope],
    *,
    isolated: bool,
) -> tuple[int, int, list[StagedEvent]]:
    applied_count = duplicates = 0
    records = BatchRecords()
    # autoflush: a command that reads what an earlier command of the batch wrote sees it;
    # otherwise the batch's writes go out together at the end
    async with sessions(autoflush=True) as session, session.begin():
        known = await outcomes_of(session, {e.commandId for e in envelopes})
        seen_in_batch: dict[str, CommandOutcome] = {}
        for envelope in envelopes:
            owner, first = known.get(
                envelope.commandId, (envelope.organizationId, seen_in_batch.get(envelope.commandId))
            )
            if owner != envelope.organizationId:
                # another tenant's command id: answer without revealing its outcome
                refused = CommandOutcome(
                    commandId=envelope.commandId,
                    commandType=envelope.type,
                    status="failed",
                    requestHash=envelope.request_hash(),
                    error=IdempotencyError(
                        "This commandId is already in use.", code="command_id_in_use", param="commandId"
                    ).to_dict(),
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
                await session.flush()
                session.expunge_all()
                session.info[TENANT_KEY] = envelope.organizationId
            # the second wall: the handler's SQL runs as the tenant role, bound to its organization
            await _bind_command(session, routes, envelope)
            if isolated:
                seen_in_batch[envelope.commandId] = await _apply_isolated(session, routes, envelope, records)
            else:
                applied, error = await _apply_optimistic(session, routes, envelope)
                seen_in_batch[envelope.commandId] = records.outcome(envelope, applied, error)
            applied_count += 1
        session.info.pop(TENANT_KEY, None)
        await session.flush()
        await records.write(session)
    return applied_count, duplicates, records.staged


def dead_letter_message(letter: RefusedCommand) -> dict[str, Any]:
    return {
        "reason": letter.reason,
        "topic": letter.record.topic,
        "partition": letter.record.partition,
        "offset": letter.record.offset,
        "value": (letter.record.value or b"").decode("utf-8", errors="replace"),
        "receivedAt": utcnow().isoformat(),
    }
