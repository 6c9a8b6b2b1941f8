"""Publish-and-await: a write becomes a command on Kafka, and the request waits for its
outcome (correlated by commandId) up to a timeout, then answers 202 with a status URL."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.replies import ReplyListener
from billing.db.sessions import tenant_session
from billing.delivery.outcomes import get_outcome
from billing.errors import IdempotencyError, ServiceUnavailable
from contracts.commands import Command
from contracts.envelopes import Actor, CommandEnvelope, CommandOutcome, command_id_for, utcnow
from producers.publisher import Publisher, publish_command

IDEMPOTENCY_MISMATCH = (
    "Keys for idempotent requests can only be used with the same parameters they were first used with. "
    "Try using a key other than '{key}' if you meant to execute a different request."
)


@dataclass(frozen=True)
class Pending:
    command_id: str


class Replayed(CommandOutcome):
    """The stored outcome of an earlier request with the same Idempotency-Key."""


@dataclass(frozen=True)
class EarlierOutcome:
    """What an Idempotency-Key was first answered with (None: not applied yet), looked up
    once per request: a controller that must know before it calls Stripe hands it on."""

    outcome: CommandOutcome | None


class CommandBus:
    def __init__(
        self, publisher: Publisher, replies: ReplyListener, sessions: async_sessionmaker[AsyncSession], timeout: float
    ) -> None:
        self._publisher = publisher
        self._replies = replies
        self._sessions = sessions
        self._timeout = timeout

    async def earlier(self, organization_id: str, idempotency_key: str | None) -> EarlierOutcome:
        if idempotency_key is None:
            return EarlierOutcome(None)
        return EarlierOutcome(
            await self._stored_outcome(organization_id, command_id_for(organization_id, idempotency_key))
        )

    async def execute(
        self,
        organization_id: str,
        actor: Actor,
        command: Command[Any],
        idempotency_key: str | None,
        *,
        earlier: EarlierOutcome | None = None,
    ) -> CommandOutcome | Pending:
        envelope = _envelope(organization_id, actor, command, idempotency_key)
        expected_hash = envelope.request_hash()
        if idempotency_key is not None:
            if earlier is None:
                earlier = await self.earlier(organization_id, idempotency_key)
            if earlier.outcome is not None:
                checked = self._checked(earlier.outcome, expected_hash, idempotency_key)
                return Replayed.model_validate(checked.model_dump())
        waiter = self._replies.expect(envelope.commandId)
        try:
            await self._publish(envelope)
            try:
                outcome = await asyncio.wait_for(asyncio.shield(waiter), timeout=self._timeout)
            except TimeoutError:
                stored = await self._stored_outcome(organization_id, envelope.commandId)
                if stored is None:
                    return Pending(envelope.commandId)
                outcome = stored
        finally:
            self._replies.forget(envelope.commandId, waiter)
        return self._checked(outcome, expected_hash, idempotency_key)

    async def submit(
        self, organization_id: str, actor: Actor, command: Command[Any], idempotency_key: str
    ) -> tuple[str, CommandOutcome | None]:
        """Publishes without waiting (a webhook answers as soon as Kafka has the command):
        (commandId, None), or (commandId, the first outcome) when the key was applied already."""
        envelope = _envelope(organization_id, actor, command, idempotency_key)
        earlier = await self._stored_outcome(organization_id, envelope.commandId)
        if earlier is None:
            await self._publish(envelope)
        return envelope.commandId, earlier

    async def _publish(self, envelope: CommandEnvelope) -> None:
        try:
            await publish_command(self._publisher, envelope)
        except (KafkaError, OSError) as error:
            raise ServiceUnavailable(
                "The billing command queue is unavailable; nothing was changed. Retry later.", code="queue_unavailable"
            ) from error

    async def _stored_outcome(self, organization_id: str, command_id: str) -> CommandOutcome | None:
        async with tenant_session(self._sessions, organization_id) as session:
            return await get_outcome(session, command_id)

    @staticmethod
    def _checked(outcome: CommandOutcome, expected_hash: str, idempotency_key: str | None) -> CommandOutcome:
        if outcome.requestHash != expected_hash:
            raise IdempotencyError(IDEMPOTENCY_MISMATCH.format(key=idempotency_key), code="idempotency_key_in_use")
        return outcome


def _envelope(
    organization_id: str, actor: Actor, command: Command[Any], idempotency_key: str | None
) -> CommandEnvelope:
    return CommandEnvelope(
        commandId=command_id_for(organization_id, idempotency_key),
        type=command.command_type,
        organizationId=organization_id,
        actor=actor,
        issuedAt=utcnow(),
        idempotencyKey=idempotency_key,
        payload=command.payload(),
    )
