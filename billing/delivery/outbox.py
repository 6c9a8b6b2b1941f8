"""Outbox rows: written in the command's transaction, read and marked by the relay
(producers/relay.py), which publishes them after the commit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.models import Outbox
from contracts.envelopes import EventEnvelope


def outbox_row(envelope: EventEnvelope, topic: str) -> dict[str, Any]:
    """The row that relays `envelope` to `topic` once the transaction inserting it commits."""
    return {
        "organization_id": envelope.organizationId,
        "topic": topic,
        "key": envelope.organizationId,
        "event_type": envelope.type,
        "payload": envelope.model_dump(mode="json"),
    }


async def claim_unsent(session: AsyncSession, limit: int, min_age_seconds: float) -> Sequence[Outbox]:
    """The oldest rows unsent for `min_age_seconds`, locked so that two sweeps never send
    the same batch (younger rows are still being relayed by their committer)."""
    cutoff = datetime.now(UTC) - timedelta(seconds=min_age_seconds)
    statement = (
        select(Outbox)
        .where(Outbox.sent_at.is_(None), Outbox.created_at < cutoff)
        .order_by(Outbox.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(statement)).all()


async def mark_sent(session: AsyncSession, ids: Sequence[int]) -> None:
    # no objects of this session to keep in step with the rows: skip the ORM's synchronizing pass
    await session.execute(
        update(Outbox).where(Outbox.id.in_(ids)).values(sent_at=datetime.now(UTC)),
        execution_options={"synchronize_session": False},
    )


class PostgresOutboxStore:
    """The outbox as the relay in producers/ sees it."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session, session.begin():
            yield session

    claim_unsent = staticmethod(claim_unsent)
    mark_sent = staticmethod(mark_sent)

    async def mark_sent_alone(self, ids: Sequence[int]) -> None:
        """One UPDATE in autocommit: no BEGIN and COMMIT round trips for a mark that, if
        lost, only means the sweep publishes those events a second time."""
        async with self._sessions() as session:
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            await mark_sent(session, ids)
