"""Credit notes through the real stack (API -> Kafka -> consumer -> Postgres; refunds at
stripe-mock): before payment they reduce what is left to pay (and pay the invoice, and
activate its subscription, when nothing is left), after payment they refund and credit
the customer's balance, which the customer's next invoice uses; void undoes one that
refunded nothing. Over-credits, wrong splits and other organizations' invoices are refused
with nothing written."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from billing import clock
from billing.credit_notes.service import issue_credit_note
from billing.db.sessions import tenant_session
from billing.errors import InvalidRequest
from billing.ids import new_id
from billing.models import CreditNote, Outbox, Payment, Refund
from contracts.credit_notes import CreditNoteIssue, GatewayRefund
from contracts.enums import PaymentStatus
from tests.api.conftest import assert_error
from tests.api.test_payment_methods import connected_tenant
from tests.api.test_subscription_payments import (  # noqa: F401  (payment_worker: a fixture)
    billable_customer,
    payment_worker,
    settled_payment,
    subscribe,
)


async def count(session_factory: Any, model: Any, organization_id: str) -> int:
    async with session_factory() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(model).where(model.organization_id == organization_id)
            )
            or 0
        )


async def events(session_factory: Any, organization_id: str, *types: str) -> list[tuple[str, dict[str, Any]]]:
    async with session_factory() as session:
        rows = (
            await session.scalars(
                select(Outbox)
                .where(Outbox.organization_id == organization_id, Outbox.event_type.in_(types))
                .order_by(Outbox.id)
            )
        ).all()
    return [(row.event_type, row.payload["data"]) for row in rows]


async def test_before_payment_a_credit_note_reduces_what_is_due_and_void_gives_it_back(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    org = await connected_tenant(api, session_factory, "Credit before payment")
    client = org.client
    customer = await billable_customer(client, session_factory, "pm_declines")
    declined = await subscribe(client, customer)  # its first payment fails: incomplete, the invoice open
    await settled_payment(session_factory, declined["latestInvoice"])
    invoice = (await client.get(f"/v1/invoices/{declined['latestInvoice']}")).json()
    (line,) = invoice["lines"]
    assert (invoice["status"], invoice["amountRemaining"], line["amount"]) == ("open", 1999, 1999)

    body = {
        "invoice": invoice["id"],
        "lines": [{"type": "invoice_line_item", "invoiceLineItem": line["id"], "amount": 500}],
        "reason": "order_change",
        "memo": "Started a week late",
    }
    response = await client.post("/v1/credit-notes", json=body)
    assert response.status_code == 201, response.text
    first = response.json()
    assert first["id"].startswith("cn_") and first["number"] == f"{invoice['number']}-CN-01"
    assert (first["type"], first["status"], first["currency"], first["total"]) == ("pre_payment", "issued", "eur", 500)
    assert (first["prePaymentAmount"], first["postPaymentAmount"], first["refundId"]) == (500, 0, None)
    assert [(cl["type"], cl["invoiceLineItemId"], cl["amount"]) for cl in first["lines"]] == [
        ("invoice_line_item", line["id"], 500)
    ]
    after_first = (await client.get(f"/v1/invoices/{invoice['id']}")).json()
    assert (after_first["amountDue"], after_first["amountRemaining"], after_first["prePaymentCreditNotesAmount"]) == (
        1499,
        1499,
        500,
    )
    # nothing was paid: no refund or credit; the line has 1499 left; the invoice too
    refusals = [
        ({**body, "refundAmount": 100}, "parameter_invalid", "refundAmount"),
        ({**body, "lines": [{**body["lines"][0], "amount": 1500}]}, "amount_too_large", "lines[0][amount]"),
        ({"invoice": invoice["id"], "amount": 1500}, "amount_too_large", "amount"),
        ({"invoice": invoice["id"]}, "parameter_missing", "lines"),
        ({**body, "amount": 499}, "parameter_invalid", "amount"),
    ]
    for refused_body, code, param in refusals:
        assert_error(await client.post("/v1/credit-notes", json=refused_body), 400, code, param)
    assert await count(session_factory, CreditNote, org.organization_id) == 1

    voided = await client.post(f"/v1/credit-notes/{first['id']}/void")
    assert voided.status_code == 200, voided.text
    assert (voided.json()["status"], voided.json()["voidedAt"] is not None) == ("void", True)
    restored = (await client.get(f"/v1/invoices/{invoice['id']}")).json()
    assert (restored["amountDue"], restored["amountRemaining"], restored["prePaymentCreditNotesAmount"]) == (
        1999,
        1999,
        0,
    )
    assert_error(await client.post(f"/v1/credit-notes/{first['id']}/void"), 400, "credit_note_not_voidable", None)

    # a credit note of all that is due pays the invoice, which activates the subscription
    whole = await client.post("/v1/credit-notes", json={"invoice": invoice["id"], "amount": 1999})
    assert whole.status_code == 201, whole.text
    assert whole.json()["number"] == f"{invoice['number']}-CN-02"  # the void one keeps its number
    paid = (await client.get(f"/v1/invoices/{invoice['id']}")).json()
    assert (paid["status"], paid["amountDue"], paid["amountRemaining"], paid["amountPaid"]) == ("paid", 0, 0, 0)
    subscription = (await client.get(f"/v1/subscriptions/{declined['id']}")).json()
    assert subscription["status"] == "active"
    assert_error(
        await client.post(f"/v1/credit-notes/{whole.json()['id']}/void"), 400, "credit_note_not_voidable", None
    )
    listed = (await client.get("/v1/credit-notes", params={"invoice": invoice["id"]})).json()["data"]
    assert [(n["number"][-5:], n["status"]) for n in listed] == [("CN-02", "issued"), ("CN-01", "void")]
    published = await events(
        session_factory,
        org.organization_id,
        "credit_note.created",
        "credit_note.voided",
        "invoice.updated",
        "invoice.paid",
        "customer.subscription.updated",
    )
    assert [(kind, data.get("amountRemaining", data.get("total"))) for kind, data in published[-3:]] == [
        ("credit_note.created", 1999),
        ("invoice.paid", 0),
        ("customer.subscription.updated", None),
    ]
    assert [kind for kind, _ in published[:4]] == [
        "credit_note.created",
        "invoice.updated",
        "credit_note.voided",
        "invoice.updated",
    ]


async def test_after_payment_a_credit_note_refunds_and_credits_the_balance_the_next_invoice_uses(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    org = await connected_tenant(api, session_factory, "Credit after payment")
    client = org.client
    customer = await billable_customer(client, session_factory, "pm_succeeds")
    created = await subscribe(client, customer)
    payment = await settled_payment(session_factory, created["latestInvoice"])
    invoice = (await client.get(f"/v1/invoices/{created['latestInvoice']}")).json()
    (line,) = invoice["lines"]
    assert (invoice["status"], invoice["amountPaid"]) == ("paid", 1999)

    body = {
        "invoice": invoice["id"],
        "lines": [{"type": "invoice_line_item", "invoiceLineItem": line["id"], "quantity": 1}],
        "refundAmount": 1000,
        "creditAmount": 999,
        "reason": "product_unsatisfactory",
        "metadata": {"ticket": "T-42"},
    }
    unsplit = {**body, "creditAmount": 998}
    assert_error(await client.post("/v1/credit-notes", json=unsplit), 400, "parameter_invalid", "refundAmount")
    # a refund Stripe did not make issues no credit note (the API publishes what Stripe answered)
    declined = GatewayRefund(
        paymentId=payment.id, amount=1000, status="failed", gatewayRefundId="re_declined", failureReason="lost_card"
    )
    async with tenant_session(session_factory, org.organization_id) as session:
        with pytest.raises(InvalidRequest) as refused:
            await issue_credit_note(session, CreditNoteIssue(**body, refund=declined), clock.now())
    assert (refused.value.code, refused.value.param) == ("refund_failed", "refundAmount")
    assert await count(session_factory, CreditNote, org.organization_id) == 0
    key = {"Idempotency-Key": f"credit-{uuid.uuid4()}"}
    response = await client.post("/v1/credit-notes", json=body, headers=key)
    assert response.status_code == 201, response.text
    note = response.json()
    assert (note["type"], note["total"], note["postPaymentAmount"], note["refundAmount"], note["creditAmount"]) == (
        "post_payment",
        1999,
        1999,
        1000,
        999,
    )
    again = await client.post("/v1/credit-notes", json=body, headers=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true" and again.json() == note
    other = await client.post("/v1/credit-notes", json={**body, "refundAmount": 999, "creditAmount": 1000}, headers=key)
    assert_error(other, 400, "idempotency_key_in_use", None, type_="idempotency_error")
    assert await count(session_factory, Refund, org.organization_id) == 1

    refund = (await client.get(f"/v1/refunds/{note['refundId']}")).json()
    assert (refund["amount"], refund["status"], refund["paymentId"], refund["gatewayRefundId"][:3]) == (
        1000,
        "succeeded",
        payment.id,
        "re_",
    )
    credited = (await client.get(f"/v1/invoices/{invoice['id']}")).json()
    assert (credited["status"], credited["amountPaid"], credited["postPaymentCreditNotesAmount"]) == (
        "paid",
        1999,
        1999,
    )
    assert (await client.get(f"/v1/customers/{customer['id']}")).json()["balance"] == -999
    # all of it was given back: nothing more can be credited, and a refund cannot be undone
    assert_error(
        await client.post("/v1/credit-notes", json={"invoice": invoice["id"], "amount": 1, "outOfBandAmount": 1}),
        400,
        "amount_too_large",
        "amount",
    )
    assert_error(await client.post(f"/v1/credit-notes/{note['id']}/void"), 400, "credit_note_not_voidable", None)

    # the credit is applied to the customer's next invoice when it is finalized
    item = await client.post("/v1/invoiceitems", json={"customer": customer["id"], "amount": 1500, "currency": "eur"})
    assert item.status_code == 201, item.text
    draft = (await client.post("/v1/invoices", json={"customer": customer["id"]})).json()
    finalized = (await client.post(f"/v1/invoices/{draft['id']}/finalize")).json()
    assert (finalized["total"], finalized["startingBalance"], finalized["endingBalance"], finalized["amountDue"]) == (
        1500,
        -999,
        0,
        501,
    )


async def test_credit_notes_that_cannot_be_issued_write_nothing(api: Any, session_factory: Any) -> None:
    org = await connected_tenant(api, session_factory, "No credit")
    other = await connected_tenant(api, session_factory, "Other credit")
    client = org.client
    customer = (await client.post("/v1/customers", json={"email": "c@example.com"})).json()
    item = {"customer": customer["id"], "amount": 700, "currency": "usd"}
    assert (await client.post("/v1/invoiceitems", json=item)).status_code == 201
    draft = (await client.post("/v1/invoices", json={"customer": customer["id"]})).json()
    cases = [
        ({"invoice": draft["id"], "amount": 100}, 400, "invoice_not_creditable", "invoice"),
        ({"invoice": "in_missing0000000000000000", "amount": 100}, 404, "resource_missing", "invoice"),
        ({"invoice": draft["id"], "amount": 0}, 400, "parameter_invalid", "amount"),
        ({"invoice": draft["id"], "amount": 100, "reason": "bored"}, 400, "parameter_invalid", "reason"),
        (
            {"invoice": draft["id"], "lines": [{"type": "discount", "amount": 1}]},
            400,
            "parameter_invalid",
            "lines[0][type]",
        ),
    ]
    for body, status, code, param in cases:
        assert_error(await client.post("/v1/credit-notes", json=body), status, code, param)
    opened = (await client.post(f"/v1/invoices/{draft['id']}/finalize")).json()
    assert opened["status"] == "open"
    # while an attempt to collect it is at the gateway, what is left to pay stays as charged
    async with session_factory() as session, session.begin():
        attempt = Payment(
            id=new_id("payment"),
            organization_id=org.organization_id,
            customer_id=customer["id"],
            invoice_id=opened["id"],
            amount=700,
            currency="usd",
            status=PaymentStatus.processing,
            attempt_number=1,
            idempotency_key=f"{opened['id']}:attempt:1",
        )
        session.add(attempt)
    in_flight = await client.post("/v1/credit-notes", json={"invoice": opened["id"], "amount": 100})
    assert_error(in_flight, 400, "invoice_payment_in_progress", "invoice")
    async with session_factory() as session, session.begin():
        (await session.get(Payment, attempt.id)).status = PaymentStatus.failed
    foreign = await other.client.post("/v1/credit-notes", json={"invoice": opened["id"], "amount": 100})
    assert_error(foreign, 404, "resource_missing", "invoice")
    assert_error(await other.client.get("/v1/credit-notes/cn_missing000000000000000000"), 404, "resource_missing", "id")
    assert await count(session_factory, CreditNote, org.organization_id) == 0
    issued = await client.post("/v1/credit-notes", json={"invoice": opened["id"], "amount": 700})
    assert issued.status_code == 201, issued.text
    assert (await other.client.get(f"/v1/credit-notes/{issued.json()['id']}")).status_code == 404
    assert (await other.client.get("/v1/credit-notes")).json()["data"] == []
