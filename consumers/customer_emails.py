"""Customer emails: `billing.events` -> the email an event calls for
(billing/notifications/email_rules.py), rendered (billing/notifications/emails.py) and
handed to SMTP_URL (billing/notifications/smtp.py); and an hourly sweep that tells
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Final

from faststream.kafka import KafkaBroker, KafkaMessage
from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing import clock
from billing.customers.repository import get_customer
from billing.db.sessions import create_engine, create_session_factory, tenant_of, tenant_session
from billing.documents.pdf import render_pdf
from billing.documents.sources import invoice_document
from billing.ids import new_id
from billing.models import CustomerEmail, CustomerPaymentMethod, Organization
from billing.notifications import emails
from billing.notifications.email_rules import (
    KIND_OF_EVENT,
    EmailKind,
    card_expiry_key,
    expires_soon,
    kind_for,
    months_to_check,
    recipient_for,
    sender_for,
)
from billing.notifications.smtp import EmailNotSent, send
from billing.organizations.service import own_column
from consumers.subscribers import events_of, events_subscriber, wait_for_assignment
from contracts.enums import PaymentMethodType
from contracts.envelopes import EventEnvelope
from contracts.json_shapes import Emails
from contracts.resources import Customer
from contracts.resources import CustomerPaymentMethod as PaymentMethodResource
from contracts.settings import Settings, get_settings
from producers.publisher import create_broker, start_broker

log = logging.getLogger(__name__)

CUSTOMER_EMAILS_GROUP: Final = "billing-customer-emails"
EMAIL_BATCH: Final = 500
SWEEP_EVERY: Final = timedelta(hours=1)
LONGEST_PAUSE: Final = 60.0
# a claim this old still `sending` was left by a sender that stopped before SMTP took it
STALE_CLAIM: Final = timedelta(hours=1)
STALE_ERROR: Final = "not sent: the sender stopped between claiming the email and handing it to SMTP"
SENDING, SENT, FAILED = "sending", "sent", "failed"


@dataclass(frozen=True)
class ClaimedEmail:
    organization_id: str
    claim_id: str
    message: EmailMessage


async def _claimed_before(session: AsyncSession, kind: EmailKind, key: str) -> bool:
    """Whether the email was claimed already (a repeated event): looked at before it is
    rendered; the claim itself (`_claim`) still settles a race."""
    found = await session.scalar(
        select(CustomerEmail.id).where(CustomerEmail.kind == kind.value, CustomerEmail.key == key)
    )
    return found is not None


async def _claim(
    session: AsyncSession, kind: EmailKind, key: str, customer_id: str, message: EmailMessage
) -> ClaimedEmail | None:
    """The email claimed under (kind, key), or None when it was claimed before."""
    claim_id = new_id("customer_email")
    claimed = await session.scalar(
        insert(CustomerEmail)
        .values(
            id=claim_id,
            organization_id=tenant_of(session),
            customer_id=customer_id,
            kind=kind.value,
            key=key,
            recipient=str(message["To"])[:320],
            subject=str(message["Subject"])[:500],
            status=SENDING,
        )
        .on_conflict_do_nothing()
        .returning(CustomerEmail.id)
    )
    return ClaimedEmail(tenant_of(session), claim_id, message) if claimed else None


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
            rows = await session.execute(
                select(Organization.id, Organization.emails).where(
                    Organization.id.in_({event.organizationId for event in wanted})
                )
            )
            settings_of: dict[str, Emails] = dict(rows.all())  # (id, emails) rows
        for event in wanted:
            settings = settings_of.get(event.organizationId)
            kind = kind_for(event.type, event.data, settings) if settings is not None else None
            if settings is None or kind is None:
                continue
            async with tenant_session(self.sessions, event.organizationId) as session, session.begin():
                claimed = await self._prepare(session, event, kind, settings)
            if claimed is not None and not await self._send(claimed):
                await self._wait_then_retry()

    async def _prepare(
        self, session: AsyncSession, event: EventEnvelope, kind: EmailKind, settings: Emails
    ) -> ClaimedEmail | None:
        if await _claimed_before(session, kind, event.eventId):
            return None
        resource: Mapping[str, Any] = event.data
        customer = await get_customer(session, str(resource.get("customerId")))
        recipient = recipient_for(Customer.model_validate(customer).model_dump(mode="json")) if customer else None
        if customer is None or recipient is None:
            return None
        sender = sender_for(await own_column(session, Organization.name), settings, self.settings.email_from)
        portal = settings["portalUrl"]
        if kind is EmailKind.trial_will_end:
            message = emails.trial_will_end(sender, recipient, resource, portal)
        elif kind is EmailKind.payment_failed:
            message = emails.payment_failed(sender, recipient, resource, portal)
        else:
            document = await invoice_document(session, str(resource["id"]))
            if document is None:
                return None
            pdf = await asyncio.to_thread(render_pdf, document)
            if kind is EmailKind.payment_receipt:
                message = emails.payment_receipt(sender, recipient, resource, pdf)
            else:
                message = emails.invoice_finalized(sender, recipient, resource, pdf, portal)
        return await _claim(session, kind, event.eventId, customer.id, message)

    async def _send(self, claimed: ClaimedEmail) -> bool:
        """Sends a claimed email, outside any transaction, and records how it went; False
        when a retry can help (the claim is released)."""
        try:
            await send(self.settings.smtp_url, claimed.message)
        except EmailNotSent as error:
            if not error.permanent:
                log.warning("email %s not sent, retried later: %s", claimed.claim_id, error)
                async with tenant_session(self.sessions, claimed.organization_id) as session, session.begin():
                    await session.execute(delete(CustomerEmail).where(CustomerEmail.id == claimed.claim_id))
                return False
            log.warning("email %s refused for good: %s", claimed.claim_id, error)
            await self._record(claimed, FAILED, str(error)[:500])
            return True
        await self._record(claimed, SENT)
        self.pause = 0.0
        return True

    async def _record(self, claimed: ClaimedEmail, status: str, error: str | None = None) -> None:
        async with tenant_session(self.sessions, claimed.organization_id) as session, session.begin():
            await session.execute(
                update(CustomerEmail)
                .where(CustomerEmail.id == claimed.claim_id)
                .values(status=status, error=error, sent_at=clock.now() if status == SENT else None),
                execution_options={"synchronize_session": False},
            )

    async def _wait_then_retry(self) -> None:
        self.pause = min(LONGEST_PAUSE, max(1.0, self.pause * 2))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=self.pause)
        raise EmailsDeferred  # nacked: the event is consumed again

    async def fail_stale_claims(self, now: datetime) -> int:
        """Marks the emails a stopped sender left `sending` as failed (visible, with why),
        rather than sending them again late; how many. Across organizations."""
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(CustomerEmail)
                .where(CustomerEmail.status == SENDING, CustomerEmail.created_at < now - STALE_CLAIM)
                .values(status=FAILED, error=STALE_ERROR),
                execution_options={"synchronize_session": False},
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]  # an UPDATE's CursorResult

    async def sweep_cards(self, today: date) -> int:
        """Emails the customers whose cards expire within 30 days (once per card and expiry);
        how many were sent. A card whose email failed for now is tried at the next sweep."""
        async with self.sessions() as session:  # across organizations: which cards to look at
            candidates = (
                await session.execute(
                    select(CustomerPaymentMethod.organization_id, CustomerPaymentMethod.id).where(
                        CustomerPaymentMethod.type == PaymentMethodType.card,
                        tuple_(CustomerPaymentMethod.exp_year, CustomerPaymentMethod.exp_month).in_(
                            months_to_check(today)
                        ),
                    )
                )
            ).all()
        sent = 0
        for organization_id, payment_method_id in candidates:
            async with tenant_session(self.sessions, organization_id) as session, session.begin():
                claimed = await self._prepare_card(session, payment_method_id, today)
            if claimed is not None and await self._send(claimed):
                sent += 1
        return sent

    async def _prepare_card(self, session: AsyncSession, payment_method_id: str, today: date) -> ClaimedEmail | None:
        settings: Emails = await own_column(session, Organization.emails)
        method = await session.get(CustomerPaymentMethod, payment_method_id)
        if not settings["cardExpiring"] or method is None or method.exp_year is None or method.exp_month is None:
            return None
        key = card_expiry_key(method.id, method.exp_year, method.exp_month)
        if not expires_soon(method.exp_year, method.exp_month, today) or await _claimed_before(
            session, EmailKind.card_expiring, key
        ):
            return None
        customer = await get_customer(session, method.customer_id)
        recipient = recipient_for(Customer.model_validate(customer).model_dump(mode="json")) if customer else None
        if customer is None or recipient is None:
            return None
        sender = sender_for(await own_column(session, Organization.name), settings, self.settings.email_from)
        resource = PaymentMethodResource.model_validate(method).model_dump(mode="json")
        message = emails.card_expiring(sender, recipient, resource, settings["portalUrl"])
        return await _claim(session, EmailKind.card_expiring, key, customer.id, message)


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
            stale = await sender.fail_stale_claims(now)
            if stale:
                log.warning("%d emails were claimed but never sent (a sender stopped): marked failed", stale)
        except Exception:
            log.exception("the hourly email sweep failed; the next one tries again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=SWEEP_EVERY.total_seconds())
