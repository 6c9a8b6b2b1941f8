"""The API's JSON for an invoice, a subscription and a payment method, made through the
contracts' own models (extra fields forbidden), so the emails read the names the API
really answers with."""

from __future__ import annotations

from typing import Any

from contracts.invoices import InvoiceDetails
from contracts.resources import CustomerPaymentMethod
from contracts.subscriptions import SubscriptionDetails

CREATED = "2026-12-07T09:00:00Z"


def invoice_json(
    *,
    currency: str = "usd",
    lines: list[tuple[str, int, int]] | None = None,  # (description, quantity, amount)
    tax: int = 0,
    number: str = "INV-0001",
    paid: bool = False,
    **changes: Any,
) -> dict[str, Any]:
    lines = lines if lines is not None else [("Analytics seats", 2, 3000)]
    subtotal = sum(amount for _, _, amount in lines)
    total = subtotal + tax
    data: dict[str, Any] = {
        "id": "in_test_1",
        "organizationId": "org_test",
        "customerId": "cus_test",
        "subscriptionId": "sub_test",
        "number": number,
        "status": "paid" if paid else "open",
        "currency": currency,
        "collectionMethod": "send_invoice",
        "billingReason": "subscription_create",
        "periodStart": "2026-12-07T00:00:00Z",
        "periodEnd": "2027-01-07T00:00:00Z",
        "subtotal": subtotal,
        "tax": tax,
        "total": total,
        "amountDue": total,
        "amountPaid": total if paid else 0,
        "amountRemaining": 0 if paid else total,
        "startingBalance": 0,
        "endingBalance": 0,
        "attemptCount": 1,
        "nextPaymentAttempt": None,
        "scheduledRetries": 0,
        "retriesEndedAt": None,
        "dueDate": "2027-01-06T00:00:00Z",
        "automaticallyFinalizesAt": None,
        "finalizedAt": CREATED,
        "paidAt": "2026-12-08T10:30:00Z" if paid else None,
        "voidedAt": None,
        "gatewayPaymentIntentId": None,
        "prePaymentCreditNotesAmount": 0,
        "postPaymentCreditNotesAmount": 0,
        "metadata": {},
        "createdAt": CREATED,
        "updatedAt": CREATED,
        "lines": [
            {
                "id": f"il_test_{position}",
                "organizationId": "org_test",
                "invoiceId": "in_test_1",
                "subscriptionItemId": "si_test",
                "priceId": "price_test",
                "position": position,
                "description": description,
                "quantity": quantity,
                "unitAmountDecimal": None,
                "amount": amount,
                "currency": currency,
                "periodStart": "2026-12-07T00:00:00Z",
                "periodEnd": "2027-01-07T00:00:00Z",
                "proration": False,
                "breakdown": None,
                "taxAmounts": [],
                "metadata": {},
                "createdAt": CREATED,
            }
            for position, (description, quantity, amount) in enumerate(lines)
        ],
    }
    data.update(changes)
    return InvoiceDetails.model_validate(data).model_dump(mode="json")


def subscription_json(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "sub_test",
        "organizationId": "org_test",
        "customerId": "cus_test",
        "status": "trialing",
        "currency": "eur",
        "collectionMethod": "charge_automatically",
        "daysUntilDue": None,
        "defaultPaymentMethodId": "pm_test",
        "startDate": "2026-11-26T00:00:00Z",
        "billingCycleAnchor": "2026-12-10T00:00:00Z",
        "currentPeriodStart": "2026-11-26T00:00:00Z",
        "currentPeriodEnd": "2026-12-10T00:00:00Z",
        "trialStart": "2026-11-26T00:00:00Z",
        "trialEnd": "2026-12-10T00:00:00Z",
        "cancelAt": None,
        "cancelAtPeriodEnd": False,
        "canceledAt": None,
        "cancellationReason": None,
        "endedAt": None,
        "pauseCollection": None,
        "scheduledChange": None,
        "trialSettings": {"endBehavior": {"missingPaymentMethod": "create_invoice"}},
        "metadata": {},
        "createdAt": CREATED,
        "updatedAt": CREATED,
        "items": [],
        "defaultTaxRates": [],
        "latestInvoice": None,
    }
    data.update(changes)
    return SubscriptionDetails.model_validate(data).model_dump(mode="json")


def payment_method_json(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "pm_test",
        "organizationId": "org_test",
        "customerId": "cus_test",
        "gateway": "stripe",
        "gatewayPaymentMethodId": "pm_stripe_test",
        "type": "card",
        "brand": "visa",
        "last4": "4242",
        "expMonth": 12,
        "expYear": 2026,
        "country": "DE",
        "fingerprint": None,
        "billingDetails": {},
        "metadata": {},
        "createdAt": CREATED,
        "updatedAt": CREATED,
    }
    data.update(changes)
    return CustomerPaymentMethod.model_validate(data).model_dump(mode="json")
