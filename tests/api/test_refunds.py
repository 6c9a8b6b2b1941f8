"""Refunds through the real stack: a subscription's first invoice charged by the payment
worker (scripted PaymentIntents), then refunded in part and in full through the API, which
calls Stripe (stripe-mock) outside any transaction and records its answer by a command;
a retry with the same Idempotency-Key answers the first refund; more than what is left,
an unpaid invoice and another organization's payment are refused with nothing written."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from billing.db.sessions import tenant_session
from billing.models import Refund
from billing.payments.refunds import record_refund
from contracts.refunds import RefundRecord
from tests.api.conftest import assert_error
from tests.api.test_payment_methods import connected_tenant
from tests.api.test_subscription_payments import (  # noqa: F401  (payment_worker: a fixture)
    billable_customer,
    payment_worker,
    settled_payment,
    subscribe,
)


async def refund_count(session_factory: Any, organization_id: str) -> int:
    async with session_factory() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(Refund).where(Refund.organization_id == organization_id)
            )
            or 0
        )


async def test_a_paid_invoice_refunded_in_part_then_in_full(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    org = await connected_tenant(api, session_factory, "Refunds")
    client = org.client
    customer = await billable_customer(client, session_factory, "pm_succeeds")
    created = await subscribe(client, customer)
    payment = await settled_payment(session_factory, created["latestInvoice"])
    invoice = created["latestInvoice"]

    key = {"Idempotency-Key": f"refund-{uuid.uuid4()}"}
    body = {"invoice": invoice, "amount": 500, "reason": "requested_by_customer", "metadata": {"ticket": "T-9"}}
    part = await client.post("/v1/refunds", json=body, headers=key)
    assert part.status_code == 201, part.text
    refund = part.json()
    assert refund["id"].startswith("rfd_") and refund["gatewayRefundId"].startswith("re_")
    assert (refund["amount"], refund["currency"], refund["status"], refund["paymentId"], refund["invoiceId"]) == (
        500,
        "eur",
        "succeeded",
        payment.id,
        invoice,
    )
    assert (refund["reason"], refund["metadata"]) == ("requested_by_customer", {"ticket": "T-9"})
    again = await client.post("/v1/refunds", json=body, headers=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true" and again.json() == refund
    assert await refund_count(session_factory, org.organization_id) == 1
    # the key names that request: another amount, or a key of another write, is refused
    other_amount = await client.post("/v1/refunds", json={**body, "amount": 400}, headers=key)
    assert_error(other_amount, 400, "idempotency_key_in_use", None, type_="idempotency_error")
    customer_key = {"Idempotency-Key": f"customer-{uuid.uuid4()}"}
    assert (await client.post("/v1/customers", json={"name": "K"}, headers=customer_key)).status_code == 201
    reused = await client.post("/v1/refunds", json=body, headers=customer_key)
    assert_error(reused, 400, "idempotency_key_in_use", None, type_="idempotency_error")
    assert await refund_count(session_factory, org.organization_id) == 1

    too_much = await client.post("/v1/refunds", json={"payment": payment.id, "amount": 1500})
    error = assert_error(too_much, 400, "amount_too_large", "amount")
    assert "1499" in error["message"]  # 1999 paid, 500 refunded
    rest = await client.post("/v1/refunds", json={"payment": payment.id})  # all that is left
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount"] == 1499
    assert_error(await client.post("/v1/refunds", json={"invoice": invoice}), 400, "charge_already_refunded", "payment")

    # Stripe's answer recorded again (a redelivered command, another key): nothing changes
    repeat = RefundRecord(
        paymentId=payment.id, amount=500, status="succeeded", gatewayRefundId=refund["gatewayRefundId"]
    )
    async with tenant_session(session_factory, org.organization_id) as session:
        again_recorded, again_payment, recorded = await record_refund(session, repeat)
        assert (again_recorded.id, recorded, again_payment.amount_refunded) == (refund["id"], False, 1999)

    listed = (await client.get("/v1/refunds", params={"invoice": invoice})).json()["data"]
    assert [r["amount"] for r in listed] == [1499, 500]  # newest first
    assert (await client.get(f"/v1/refunds/{refund['id']}")).json() == refund
    assert await refund_count(session_factory, org.organization_id) == 2


async def test_refunds_that_cannot_be_made_are_refused_and_write_nothing(
    api: Any, session_factory: Any, payment_worker: None
) -> None:
    org = await connected_tenant(api, session_factory, "No refunds")
    other = await connected_tenant(api, session_factory, "Other refunds")
    client = org.client
    customer = await billable_customer(client, session_factory, "pm_succeeds")
    paid = await subscribe(client, customer)
    payment = await settled_payment(session_factory, paid["latestInvoice"])
    unpaid = (
        await client.post(
            "/v1/subscriptions",
            json={
                "customer": customer["id"],
                "items": [{"price": paid["items"][0]["priceId"]}],
                "collectionMethod": "send_invoice",
                "daysUntilDue": 30,
            },
        )
    ).json()
    cases = [
        ({}, 400, "parameter_missing", "invoice"),
        ({"invoice": paid["latestInvoice"], "payment": payment.id}, 400, "parameter_invalid", "invoice"),
        ({"invoice": unpaid["latestInvoice"]}, 400, "charge_not_refundable", "invoice"),
        ({"invoice": "in_missing0000000000000000"}, 404, "resource_missing", "invoice"),
        ({"payment": payment.id, "amount": 0}, 400, "parameter_invalid", "amount"),
        ({"payment": payment.id, "reason": "bored"}, 400, "parameter_invalid", "reason"),
    ]
    for body, status, code, param in cases:
        assert_error(await client.post("/v1/refunds", json=body), status, code, param)
    foreign = await other.client.post("/v1/refunds", json={"payment": payment.id})
    assert_error(foreign, 404, "resource_missing", "payment")
    assert await refund_count(session_factory, org.organization_id) == 0
