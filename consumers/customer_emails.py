"""Customer emails: `billing.events` -> the email an event calls for
(billing/notifications/email_rules.py), rendered (billing/notifications/emails.py) and
handed to SMTP_URL (billing/notifications/smtp.py), claimed and recorded in Postgres
(billing/notifications/customer_emails.py); and an hourly sweep that tells
customers about their cards expiring within 30 days.

An email is claimed before it is sent: a `customer_emails` row unique per organization,
kind and key (the event's id; a card and its expiry), committed before the SMTP server is
called, outside any transaction. A repeat of the event (Kafka delivers at least once)
finds the claim and sends nothing. A temporary failure (the server away, a 4xx answer)
releases the claim, and the event is consumed again after a pause that grows to a minute
(every email waits: they all need that server); a permanent one (the recipient refused
for good) is kept as failed with the server's answer. A crash between the claim and the
send loses that one email: at most once, never twice; the hourly sweep marks such a claim
failed, saying why.

Runs inside `billing consume` and `billing dev`, a consumer group of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, Final

from faststream.kafka import KafkaBroker, KafkaMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing import clock
from billing.db.sessions import create_engine, create_session_factory, tenant_session
from billing.notifications import customer_emails
from billing.notifications.customer_emails import ClaimedEmail
from billing.notifications.email_rules import KIND_OF_EVENT, kind_for
from billing.notifications.smtp import EmailNotSent, send
from consumers.subscribers import events_of, events_subscriber, wait_for_assignment
from contracts.envelopes import EventEnvelope
from contracts.settings import Settings, get_settings
from producers.publisher import create_broker, start_broker

log = logging.getLogger(__name__)

CUSTOMER_EMAILS_GROUP: Final = "billing-customer-emails"
EMAIL_BATCH: Final = 500
SWEEP_EVERY: Final = timedelta(hours=1)
LONGEST_PAUSE: Final = 60.0


class CustomerEmailSender:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings, stop: asyncio.Event) -> None:
        self.sessions = sessions
        self.settings = settings
        self.stop = stop
        self.pause = 0.0

    async def on_events(self, events: Sequence[EventEnvelope]) -> None:
        """Sends the emails a batch of events calls for. The organizations' settings are
        read once for the batch, so the many events that call for none cost one query."""
        wanted = [event for event in events if event.type in KIND_OF_EVENT]
        if not wanted:
            return
        async with self.sessions() as session:  # across organizations: whose settings want what
            settings_of = await customer_emails.email_settings_of(session, {event.organizationId for event in wanted})
        for event in wanted:
            settings = settings_of.get(event.organizationId)
            kind = kind_for(event.type, event.data, settings) if settings is not None else None
            if settings is None or kind is None:
                continue
            async with tenant_session(self.sessions, event.organizationId) as session, session.begin():
                claimed = await customer_emails.event_email(
                    session, kind, event.eventId, event.data, settings, self.settings.email_from
                )
            if claimed is not None and not await self._send(claimed):
                await self._wait_then_retry()

    async def _send(self, claimed: ClaimedEmail) -> bool:
        """Sends a claimed email, outside any transaction, and records how it went; False
        when a retry can help (the claim is released)."""
        error: str | None = None
        try:
            await send(self.settings.smtp_url, claimed.message)
        except EmailNotSent as refused:
            if not refused.permanent:
                log.warning("email %s not sent, retried later: %s", claimed.claim_id, refused)
                async with tenant_session(self.sessions, claimed.organization_id) as session, session.begin():
                    await customer_emails.release_claim(session, claimed.claim_id)
                return False
            log.warning("email %s refused for good: %s", claimed.claim_id, refused)
            error = str(refused)[:500]
        async with tenant_session(self.sessions, claimed.organization_id) as session, session.begin():
            await customer_emails.record_outcome(session, claimed.claim_id, clock.now(), error)
        if error is None:
            self.pause = 0.0
        return True

    async def _wait_then_retry(self) -> None:
        self.pause = min(LONGEST_PAUSE, max(1.0, self.pause * 2))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=self.pause)
        raise EmailsDeferred  # nacked: the event is consumed again

    async def sweep_cards(self, today: date) -> int:
        """Emails the customers whose cards expire within 30 days (once per card and expiry);
        how many were sent. A card whose email failed for now is tried at the next sweep."""
        async with self.sessions() as session:  # across organizations: which cards to look at
            candidates = await customer_emails.expiring_card_candidates(session, today)
        sent = 0
        for organization_id, payment_method_id in candidates:
            async with tenant_session(self.sessions, organization_id) as session, session.begin():
                claimed = await customer_emails.card_email(session, payment_method_id, today, self.settings.email_from)
            if claimed is not None and await self._send(claimed):
                sent += 1
        return sent

    async def fail_stale_claims(self) -> int:
        async with self.sessions() as session, session.begin():
            return await customer_emails.fail_stale_claims(session, clock.now())


class EmailsDeferred(Exception):
    """The SMTP server could not take an email for now: its event is consumed again."""


def build_email_consumer(broker: KafkaBroker, sender: CustomerEmailSender, settings: Settings) -> Any:
    subscriber = events_subscriber(broker, settings, CUSTOMER_EMAILS_GROUP, EMAIL_BATCH)

    @subscriber
    async def on_events(message: KafkaMessage) -> None:
        await sender.on_events(events_of(message))

    return subscriber


async def run_customer_emails(
    stop: asyncio.Event, settings: Settings | None = None, ready: asyncio.Event | None = None
) -> None:
    """Runs until `stop` is set: part of `billing consume` and `billing dev`."""
    settings = settings or get_settings()
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    broker = create_broker(settings)
    sender = CustomerEmailSender(sessions, settings, stop)
    subscriber = build_email_consumer(broker, sender, settings)
    if not await start_broker(broker, stop, "the customer emails consumer"):
        await engine.dispose()
        return
    sweeping = asyncio.create_task(sweep_hourly(sender, stop))
    try:
        await wait_for_assignment(subscriber)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        stop.set()
        await subscriber.stop()
        await sweeping
        await broker.stop()
        await engine.dispose()


async def sweep_hourly(sender: CustomerEmailSender, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            now = clock.now()
            sent = await sender.sweep_cards(now.date())
            if sent:
                log.info("sent %d card expiry emails", sent)
            stale = await sender.fail_stale_claims()
            if stale:
                log.warning("%d emails were claimed but never sent (a sender stopped): marked failed", stale)
        except Exception:
            log.exception("the hourly email sweep failed; the next one tries again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=SWEEP_EVERY.total_seconds())
