"""`paymentBehavior: error_if_incomplete`: what a new subscription's first payment means
for the request that created it. Pure, no I/O; the API waits for the outcome, since the
payment worker charges after the creating command commits.

Paid, the subscription is answered; declined, or needing the customer's authentication
(3-D Secure, which error_if_incomplete does not wait for), the request is refused with
Stripe's 402 card_error and the subscription ended (incomplete_expired, its invoice voided).
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.errors import BillingError
from billing.models import Payment
from contracts.enums import PaymentStatus


class FirstPaymentRefused(BillingError):
    type = "card_error"
    status = 402


@dataclass(frozen=True)
class FirstPaymentOutcome:
    refusal: FirstPaymentRefused | None  # None: paid


def first_payment_outcome(payment: Payment) -> FirstPaymentOutcome | None:
    """What the first payment decided; None while it has no outcome yet."""
    if payment.status is PaymentStatus.succeeded:
        return FirstPaymentOutcome(None)
    if payment.status is PaymentStatus.requires_action:
        return FirstPaymentOutcome(
            FirstPaymentRefused(
                "The first payment needs the customer's authentication (3-D Secure); error_if_incomplete refuses it.",
                code="invoice_payment_intent_requires_action",
            )
        )
    if payment.status is PaymentStatus.failed:
        reason = f" ({payment.decline_code})" if payment.decline_code else ""
        detail = payment.failure_message or payment.failure_code or "declined"
        return FirstPaymentOutcome(
            FirstPaymentRefused(
                f"The first payment failed{reason}: {detail}", code=payment.failure_code or "card_declined"
            )
        )
    return None
