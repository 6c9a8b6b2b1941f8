"""Customer emails, the Postgres side: which organizations want which emails, the email an
event or an expiring card calls for (rendered, its PDF attached), and the `customer_emails`
rows that claim each email before it is sent and record how the sending went. The
consumer (consumers/customer_emails.py) hands the claimed email to SMTP, outside any
transaction, between `claim` and `record_outcome`. Nothing here commits."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Final

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.customers.repository import get_customer
from billing.db.sessions import get_one, tenant_of
from billing.documents.pdf import render_pdf
from billing.documents.sources import invoice_document
from billing.ids import new_id
from billing.models import Customer as CustomerRow
from billing.models import CustomerEmail, CustomerPaymentMethod, Organization
from billing.notifications import emails
from billing.notifications.email_rules import (
    EmailKind,
    card_expiry_key,
    expires_soon,
    months_to_check,
    recipient_for,
    sender_for,
)
from billing.notifications.emails import Recipient
from billing.organizations.service import own_column
from contracts.enums import PaymentMethodType
from contracts.json_shapes import Emails
from contracts.resources import Customer
from contracts.resources import CustomerPaymentMethod as PaymentMethodResource

SENDING, SENT, FAILED = "sending", "sent", "failed"
# a claim this old still `sending` was left by a sender that stopped before SMTP took it
STALE_CLAIM: Final = timedelta(hours=1)
STALE_ERROR: Final = "not sent: the sender stopped between claiming the email and handing it to SMTP"


@dataclass(frozen=True)
class ClaimedEmail:
    organization_id: str
    claim_id: str
    message: EmailMessage


async def email_settings_of(session: AsyncSession, organization_ids: Collection[str]) -> dict[str, Emails]:
    """The organizations' email settings, in one query across organizations."""
    rows = await session.execute(
        select(Organization.id, Organization.emails).where(Organization.id.in_(organization_ids))
    )
    return dict(rows.all())  # (id, emails) rows


async def expiring_card_candidates(session: AsyncSession, today: date) -> list[tuple[str, str]]:
    """(organization, payment method) of every card whose expiry month `expires_soon` may
    accept today, across organizations; `card_email` decides for each in its tenant."""
    rows = await session.execute(
        select(CustomerPaymentMethod.organization_id, CustomerPaymentMethod.id).where(
            CustomerPaymentMethod.type == PaymentMethodType.card,
            tuple_(CustomerPaymentMethod.exp_year, CustomerPaymentMethod.exp_month).in_(months_to_check(today)),
        )
    )
    return [(organization_id, payment_method_id) for organization_id, payment_method_id in rows.all()]


async def event_email(
    session: AsyncSession,
    kind: EmailKind,
    event_id: str,
    resource: Mapping[str, Any],
    settings: Emails,
    default_sender: str,
) -> ClaimedEmail | None:
    """The email of kind `kind` an event's resource (an invoice, a subscription) calls for,
    rendered and claimed under the event's id; None when it was claimed before or the
    customer has no address."""
    if await _claimed_before(session, kind, event_id):
        return None
    found = await _recipient(session, str(resource.get("customerId")))
    if found is None:
        return None
    customer, recipient = found
    sender = sender_for(await own_column(session, Organization.name), settings, default_sender)
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
    return await _claim(session, kind, event_id, customer.id, message)


async def card_email(
    session: AsyncSession, payment_method_id: str, today: date, default_sender: str
) -> ClaimedEmail | None:
    """The card_expiring email of a card that expires soon, claimed once per card and
    expiry; None when the organization does not send it, or it was sent."""
    settings: Emails = await own_column(session, Organization.emails)
    method = await get_one(session, CustomerPaymentMethod, CustomerPaymentMethod.id, payment_method_id)
    if not settings["cardExpiring"] or method is None or method.exp_year is None or method.exp_month is None:
        return None
    key = card_expiry_key(method.id, method.exp_year, method.exp_month)
    if not expires_soon(method.exp_year, method.exp_month, today) or await _claimed_before(
        session, EmailKind.card_expiring, key
    ):
        return None
    found = await _recipient(session, method.customer_id)
    if found is None:
        return None
    customer, recipient = found
    sender = sender_for(await own_column(session, Organization.name), settings, default_sender)
    resource = PaymentMethodResource.model_validate(method).model_dump(mode="json")
    message = emails.card_expiring(sender, recipient, resource, settings["portalUrl"])
    return await _claim(session, EmailKind.card_expiring, key, customer.id, message)


async def release_claim(session: AsyncSession, claim_id: str) -> None:
    """Gives up a claim the SMTP server could not take for now: the email can be tried again."""
    await session.execute(delete(CustomerEmail).where(CustomerEmail.id == claim_id))


async def record_outcome(session: AsyncSession, claim_id: str, now: datetime, error: str | None = None) -> None:
    """Sent at `now`, or failed for good with the server's `error`."""
    await session.execute(
        update(CustomerEmail)
        .where(CustomerEmail.id == claim_id)
        .values(status=FAILED if error else SENT, error=error, sent_at=None if error else now),
        execution_options={"synchronize_session": False},
    )


async def fail_stale_claims(session: AsyncSession, now: datetime) -> int:
    """Marks the emails a stopped sender left `sending` as failed (visible, with why),
    rather than sending them again late; how many. Across organizations."""
    result = await session.execute(
        update(CustomerEmail)
        .where(CustomerEmail.status == SENDING, CustomerEmail.created_at < now - STALE_CLAIM)
        .values(status=FAILED, error=STALE_ERROR),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # an UPDATE's CursorResult


async def _recipient(session: AsyncSession, customer_id: str) -> tuple[CustomerRow, Recipient] | None:
    customer = await get_customer(session, customer_id)
    if customer is None:
        return None
    recipient = recipient_for(Customer.model_validate(customer).model_dump(mode="json"))
    return (customer, recipient) if recipient is not None else None


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
