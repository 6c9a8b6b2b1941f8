"""Customer emails end to end: the real API, command consumer and payment worker make
invoices and payments; the customer emails consumer (as `billing consume` runs it) reads
their events and sends through the stack's own SMTP server (aiosmtpd, a process of its
own), whose stored messages the tests read back: recipient, subject, amounts in the
customer's currency and locale, the invoice PDF. A repeat of an event sends nothing, an
organization that has not enabled emails sends none, an SMTP server that is away delays
an email without losing it, and a card expiring within 30 days is emailed once; a claim a stopped sender left is marked failed."""

from __future__ import annotations

import asyncio
import dataclasses
import email
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from billing.ids import new_id
from billing.models import CustomerEmail, CustomerPaymentMethod, Outbox
from billing.notifications.customer_emails import STALE_ERROR, fail_stale_claims
from consumers.customer_emails import CustomerEmailSender, run_customer_emails
from contracts.envelopes import EventEnvelope
from contracts.settings import get_settings
from producers.publisher import create_broker
from producers.topics import BILLING_EVENTS, topic
from tests.api.conftest import TenantClient, new_tenant, running
from tests.api.test_payment_methods import connected_tenant
from tests.api.test_subscription_payments import (  # noqa: F401 (payment_worker: a fixture)
    billable_customer,
    payment_worker,
    settled_payment,
    subscribe,
)
from tests.api.test_subscriptions import ok
from tests.billing.notifications.test_smtp import (
    running_smtp_server,
    smtp_server,  # noqa: F401 (a fixture)
)
from tests.stack.conftest import free_port_pair

PORTAL = "https://billing.acme.example.com/portal"
EVERY_EMAIL = {
    "fromAddress": "billing@acme.example.com",
    "replyTo": "support@acme.example.com",
    "portalUrl": PORTAL,
    "invoiceFinalized": True,
    "paymentReceipt": True,
    "paymentFailed": True,
    "trialWillEnd": True,
    "cardExpiring": True,
}


def customer_emails(smtp_url: str) -> AbstractAsyncContextManager[None]:
    return running(run_customer_emails, dataclasses.replace(get_settings(), smtp_url=smtp_url))


def stored(mail: Path, to: str) -> list[EmailMessage]:
    messages = []
    for path in sorted(mail.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        if to in str(message["To"]):
            messages.append(message)
    return messages


async def arrived(mail: Path, to: str, count: int = 1, timeout: float = 30) -> list[EmailMessage]:
    """The messages to `to`, once there are `count` of them."""
    async with asyncio.timeout(timeout):
        while len(found := stored(mail, to)) < count:
            await asyncio.sleep(0.1)
    return found


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def pdf_of(message: EmailMessage) -> tuple[str | None, bytes]:
    (attachment,) = message.iter_attachments()
    assert attachment.get_content_type() == "application/pdf"
    return attachment.get_filename(), attachment.get_payload(decode=True)  # type: ignore[return-value]


async def emailing(api: Any, session_factory: Any, name: str) -> TenantClient:
    """A new organization with Stripe connected and every customer email enabled."""
    client = (await connected_tenant(api, session_factory, name)).client
    await ok(await client.patch("/v1/billing-settings", json={"emails": EVERY_EMAIL}))
    return client


async def invoiced_by_hand(client: TenantClient, customer: dict[str, Any], amount: int = 123456) -> dict[str, Any]:
    """A monthly EUR subscription the customer pays by hand: its first invoice, open."""
    product = await ok(await client.post("/v1/products", json={"name": "Analytics seats"}), 201)
    body = {"product": product["id"], "currency": "eur", "unitAmount": amount, "recurring": {"interval": "month"}}
    price = await ok(await client.post("/v1/prices", json=body), 201)
    created = await ok(
        await client.post(
            "/v1/subscriptions",
            json={
                "customer": customer["id"],
                "items": [{"price": price["id"]}],
                "collectionMethod": "send_invoice",
                "daysUntilDue": 30,
            },
        ),
        201,
    )
    return await ok(await client.get(f"/v1/invoices/{created['latestInvoice']}"))


async def republish(session_factory: Any, organization_id: str, event_type: str) -> None:
    """The organization's first `event_type` event, published to billing.events again (as
    Kafka may deliver it twice)."""
    async with session_factory() as session:
        row = (
            await session.scalars(
                select(Outbox)
                .where(Outbox.organization_id == organization_id, Outbox.event_type == event_type)
                .order_by(Outbox.id)
                .limit(1)
            )
        ).one()
    broker = create_broker(get_settings())
    await broker.start()
    try:
        envelope = EventEnvelope.model_validate(row.payload)
        await broker.publish(
            envelope.model_dump_json().encode(), topic=topic(BILLING_EVENTS), key=organization_id.encode()
        )
    finally:
        await broker.stop()


async def test_invoices_receipts_and_failed_payments_are_emailed_once_in_the_customers_language(
    api: Any, session_factory: Any, payment_worker: None, smtp_server: tuple[str, Path]
) -> None:
    url, mail = smtp_server
    client = await emailing(api, session_factory, "Acme Analytics")
    jan = await ok(
        await client.post(
            "/v1/customers", json={"email": "jan@example.de", "name": "Jan Müller", "preferredLocales": ["de-DE"]}
        ),
        201,
    )
    ada = await billable_customer(client, session_factory, "pm_succeeds", email="ada@example.com")
    bob = await billable_customer(client, session_factory, "pm_declines", email="bob@example.com")
    quiet = TenantClient(api, await new_tenant(session_factory, "No emails enabled"))
    silent = await ok(await quiet.post("/v1/customers", json={"email": "silent@example.com"}), 201)
    async with customer_emails(url):
        invoice = await invoiced_by_hand(client, jan)
        await invoiced_by_hand(quiet, silent)
        charged = await subscribe(client, ada)
        declined = await subscribe(client, bob)
        assert (await settled_payment(session_factory, declined["latestInvoice"])).failure_code == "card_declined"

        (message,) = await arrived(mail, "jan@example.de")
        assert "Jan" in str(message["To"]) and "billing@acme.example.com" in str(message["From"])
        assert "Acme Analytics" in str(message["From"]) and str(message["Reply-To"]) == "support@acme.example.com"
        assert invoice["number"] in str(message["Subject"]) and "Acme Analytics" in str(message["Subject"])
        text = text_of(message)
        assert "1.234,56\xa0€" in text  # EUR in de-DE
        assert PORTAL in text
        filename, pdf = pdf_of(message)
        assert filename == f"{invoice['number']}.pdf" and pdf.startswith(b"%PDF")

        (receipt,) = await arrived(mail, "ada@example.com")  # its invoice was charged: a receipt, no invoice email
        assert str(receipt["Subject"]) == "Receipt from Acme Analytics"
        assert "€19.99" in text_of(receipt)
        paid = await ok(await client.get(f"/v1/invoices/{charged['latestInvoice']}"))
        assert pdf_of(receipt)[0] == f"{paid['number']}.pdf"

        (failed,) = await arrived(mail, "bob@example.com")
        assert str(failed["Subject"]) == "Your payment to Acme Analytics failed"
        assert "€19.99" in text_of(failed) and PORTAL in text_of(failed)

        # the same event again sends nothing; the next invoice is emailed as usual
        await republish(session_factory, client.tenant.organization_id, "invoice.finalized")
        second = await invoiced_by_hand(client, jan, amount=500)
        assert [second["number"] in str(m["Subject"]) for m in await arrived(mail, "jan@example.de", 2)] == [
            False,
            True,
        ]
        await asyncio.sleep(0.5)
        assert len(stored(mail, "jan@example.de")) == 2
    assert stored(mail, "silent@example.com") == []  # its organization never enabled emails
    async with session_factory() as session:
        kinds = (
            await session.scalars(
                select(CustomerEmail.kind).where(CustomerEmail.organization_id == client.tenant.organization_id)
            )
        ).all()
        assert sorted(kinds) == ["invoice_finalized", "invoice_finalized", "payment_failed", "payment_receipt"]
        quiet_rows = await session.scalars(
            select(CustomerEmail).where(CustomerEmail.organization_id == quiet.tenant.organization_id)
        )
        assert quiet_rows.all() == []


async def test_an_email_waits_for_an_smtp_server_that_is_away(api: Any, session_factory: Any, tmp_path: Path) -> None:
    port = free_port_pair()
    client = await emailing(api, session_factory, "Patient sender")
    customer = await ok(await client.post("/v1/customers", json={"email": "later@example.com"}), 201)
    async with customer_emails(f"smtp://127.0.0.1:{port}"):
        invoice = await invoiced_by_hand(client, customer)
        await asyncio.sleep(2)  # tried at least once, refused: nothing listens there yet
        with running_smtp_server(port, tmp_path) as mail:
            (message,) = await arrived(mail, "later@example.com", timeout=60)
            assert invoice["number"] in str(message["Subject"])
    async with session_factory() as session:
        rows = (
            await session.scalars(
                select(CustomerEmail).where(CustomerEmail.organization_id == client.tenant.organization_id)
            )
        ).all()
    assert [(row.kind, row.status) for row in rows] == [("invoice_finalized", "sent")]  # the failed try left no claim


async def test_a_card_expiring_within_30_days_is_emailed_once(
    api: Any, session_factory: Any, smtp_server: tuple[str, Path]
) -> None:
    url, mail = smtp_server
    client = await emailing(api, session_factory, "Card keeper")
    customer = await billable_customer(client, session_factory, "pm_succeeds", email="expiring@example.com")
    today = date(2027, 3, 10)  # the card is valid through 31 March: 21 days left
    async with session_factory() as session, session.begin():
        await session.execute(
            update(CustomerPaymentMethod)
            .where(CustomerPaymentMethod.customer_id == customer["id"])
            .values(brand="visa", last4="4242", exp_year=today.year, exp_month=today.month)
        )
    sender = CustomerEmailSender(session_factory, dataclasses.replace(get_settings(), smtp_url=url), asyncio.Event())
    await sender.sweep_cards(today)
    await sender.sweep_cards(today)  # the next hour's sweep: that card was told already
    (message,) = stored(mail, "expiring@example.com")
    assert str(message["Subject"]) == "Your card ending 4242 expires soon"
    assert PORTAL in text_of(message)


async def test_a_claim_left_by_a_stopped_sender_is_marked_failed(api: Any, session_factory: Any) -> None:
    client = TenantClient(api, await new_tenant(session_factory, "Stopped sender"))
    customer = await ok(await client.post("/v1/customers", json={"email": "lost@example.com"}), 201)
    now = datetime.now(UTC)
    async with session_factory() as session, session.begin():
        for key, claimed_at in (("evt_old", now - timedelta(hours=2)), ("evt_recent", now - timedelta(minutes=5))):
            session.add(
                CustomerEmail(
                    id=new_id("customer_email"),
                    organization_id=client.tenant.organization_id,
                    customer_id=customer["id"],
                    kind="invoice_finalized",
                    key=key,
                    recipient="lost@example.com",
                    subject="Your invoice",
                    status="sending",
                    created_at=claimed_at,
                )
            )
    async with session_factory() as session, session.begin():
        assert await fail_stale_claims(session, now) >= 1
    async with session_factory() as session:
        rows = await session.execute(
            select(CustomerEmail.key, CustomerEmail.status, CustomerEmail.error).where(
                CustomerEmail.organization_id == client.tenant.organization_id
            )
        )
        states = {key: (status, error) for key, status, error in rows.all()}
    assert states["evt_old"] == ("failed", STALE_ERROR)
    assert states["evt_recent"] == ("sending", None)  # perhaps still being sent
