import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.errors import InvalidRequest
from billing.invoices.status import FINAL, TRANSITIONS, InvoiceAction, after, check_deletable
from contracts.enums import InvoiceStatus as I

pytestmark = pytest.mark.unit

A = InvoiceAction

# Stripe's table, written out independently of the module.
ALLOWED = {
    I.draft: {A.edit, A.finalize, A.delete},
    I.open: {A.pay, A.void, A.mark_uncollectible},
    I.uncollectible: {A.pay, A.void},
    I.paid: set(),
    I.void: set(),
}


@pytest.mark.parametrize("status", list(I))
@pytest.mark.parametrize("action", list(A))
def test_stripes_transition_table(status: I, action: InvoiceAction) -> None:
    attempt = check_deletable if action is A.delete else lambda status: after(status, action)
    if action in ALLOWED[status]:
        attempt(status)
    else:
        with pytest.raises(InvalidRequest) as refused:
            attempt(status)
        assert refused.value.code and status in refused.value.message


def test_the_named_refusals() -> None:
    with pytest.raises(InvalidRequest, match="already finalized"):
        after(I.open, A.finalize)
    with pytest.raises(InvalidRequest, match="void and cannot be paid"):
        after(I.void, A.pay)
    with pytest.raises(InvalidRequest, match="paid and cannot be paid"):
        after(I.paid, A.pay)
    assert after(I.uncollectible, A.pay) is I.paid
    with pytest.raises(ValueError):
        after(I.draft, A.delete)


@given(st.lists(st.sampled_from([action for action in A if action is not A.delete]), max_size=20))
def test_once_paid_or_void_every_action_is_refused(actions: list[InvoiceAction]) -> None:
    status = I.draft
    for action in actions:
        was_final = status in FINAL
        try:
            status = after(status, action)
        except InvalidRequest:
            continue
        assert not was_final, (action, status)
    moves = {(status, action) for status, actions in ALLOWED.items() for action in actions if action is not A.delete}
    assert set(TRANSITIONS) == moves
