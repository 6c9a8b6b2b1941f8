import pytest

from billing.models import Payment
from billing.subscriptions.payment_behavior import first_payment_outcome
from contracts.enums import PaymentStatus

pytestmark = pytest.mark.unit


def attempt(status: PaymentStatus, **fields: str) -> Payment:
    return Payment(status=status, **fields)


def test_only_a_settled_first_payment_decides() -> None:
    assert first_payment_outcome(attempt(PaymentStatus.pending)) is None
    assert first_payment_outcome(attempt(PaymentStatus.processing)) is None  # a bank debit settling
    paid = first_payment_outcome(attempt(PaymentStatus.succeeded))
    assert paid is not None and paid.refusal is None


def test_a_decline_or_3d_secure_is_stripes_402_card_error() -> None:
    declined = first_payment_outcome(
        attempt(
            PaymentStatus.failed,
            failure_code="card_declined",
            decline_code="insufficient_funds",
            failure_message="Your card has insufficient funds.",
        )
    )
    assert declined is not None and declined.refusal is not None
    refusal = declined.refusal
    assert (refusal.type, refusal.status, refusal.code) == ("card_error", 402, "card_declined")
    assert refusal.message == "The first payment failed (insufficient_funds): Your card has insufficient funds."
    action = first_payment_outcome(attempt(PaymentStatus.requires_action))
    assert action is not None and action.refusal is not None
    assert (action.refusal.status, action.refusal.code) == (402, "invoice_payment_intent_requires_action")
