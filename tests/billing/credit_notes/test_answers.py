import pytest

from billing.credit_notes.service import answers
from contracts.credit_notes import CreditNoteCreate

pytestmark = pytest.mark.unit

ISSUED = {
    "invoiceId": "in_1",
    "total": 1999,
    "refundAmount": 1000,
    "creditAmount": 999,
    "outOfBandAmount": 0,
    "reason": "order_change",
    "memo": None,
    "metadata": {"ticket": "T-1"},
}
ASKED = {
    "invoice": "in_1",
    "amount": 1999,
    "refundAmount": 1000,
    "creditAmount": 999,
    "reason": "order_change",
    "metadata": {"ticket": "T-1"},
}


def test_an_idempotency_key_answers_only_the_same_request() -> None:
    assert answers(CreditNoteCreate(**ASKED), ISSUED)
    assert answers(CreditNoteCreate(**{**ASKED, "amount": None}), ISSUED)  # no amount: the lines' total
    for change in (
        {"invoice": "in_2"},
        {"amount": 1998},
        {"refundAmount": 999, "creditAmount": 1000},
        {"outOfBandAmount": 1, "creditAmount": 998},
        {"reason": "duplicate"},
        {"memo": "another"},
        {"metadata": {"ticket": "T-2"}},
    ):
        assert not answers(CreditNoteCreate(**{**ASKED, **change}), ISSUED), change
