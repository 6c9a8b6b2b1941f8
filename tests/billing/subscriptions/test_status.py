import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.errors import InvalidRequest
from billing.subscriptions.status import (
    INITIAL,
    TERMINAL,
    TRANSITIONS,
    SubscriptionEvent,
    check_update,
    next_status,
)
from contracts.enums import SubscriptionStatus as S

pytestmark = pytest.mark.unit

# Stripe's status graph as its documentation draws it, written here independently of the
# module's table: every step any sequence of events takes must be one of these edges.
STRIPE_EDGES = {
    (S.incomplete, S.active),
    (S.incomplete, S.incomplete_expired),
    (S.trialing, S.active),
    (S.trialing, S.past_due),
    (S.trialing, S.paused),
    (S.trialing, S.canceled),
    (S.active, S.past_due),
    (S.active, S.canceled),
    (S.past_due, S.active),
    (S.past_due, S.unpaid),
    (S.past_due, S.canceled),
    (S.unpaid, S.active),
    (S.unpaid, S.canceled),
    (S.paused, S.active),
    (S.paused, S.canceled),
}


@given(st.sampled_from(sorted(INITIAL)), st.lists(st.sampled_from(SubscriptionEvent), max_size=30))
def test_no_sequence_of_events_reaches_an_illegal_state(start: S, events: list[SubscriptionEvent]) -> None:
    status = start
    for event in events:
        try:
            after = next_status(status, event)
        except InvalidRequest as refused:
            assert refused.code and refused.message  # refused in Stripe's shape, status unchanged
            assert (status, event) not in TRANSITIONS
            continue
        assert after == status or (status, after) in STRIPE_EDGES, (status, event, after)
        status = after


def test_every_stripe_edge_is_taken_by_some_event_and_nothing_leaves_a_terminal_status() -> None:
    taken = {(status, after) for (status, _), after in TRANSITIONS.items() if after != status}
    assert taken == STRIPE_EDGES
    assert not [pair for pair in TRANSITIONS if pair[0] in TERMINAL]
    assert {S.canceled, S.incomplete_expired} == TERMINAL


def test_every_status_is_reachable_from_a_start() -> None:
    reached, frontier = set(INITIAL), list(INITIAL)
    while frontier:
        status = frontier.pop()
        for (source, _), after in TRANSITIONS.items():
            if source == status and after not in reached:
                reached.add(after)
                frontier.append(after)
    assert reached == set(S)


def test_changes_to_a_canceled_subscription_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="canceled and can no longer be changed") as refused:
        next_status(S.canceled, SubscriptionEvent.resumed)
    assert refused.value.code == "subscription_inactive"
    with pytest.raises(InvalidRequest) as refused:
        check_update(S.canceled, frozenset({"metadata"}))
    assert refused.value.code == "subscription_inactive"


def test_an_incomplete_subscription_changes_only_metadata_and_payment_method() -> None:
    check_update(S.incomplete, frozenset({"metadata", "defaultPaymentMethod"}))
    with pytest.raises(InvalidRequest) as refused:
        check_update(S.incomplete, frozenset({"metadata", "items"}))
    assert (refused.value.code, refused.value.param) == ("subscription_incomplete", "items")
    check_update(S.active, frozenset({"items", "cancelAtPeriodEnd"}))


def test_canceling_an_incomplete_subscription_expires_it_and_pausing_is_only_from_a_trial() -> None:
    assert next_status(S.incomplete, SubscriptionEvent.canceled) is S.incomplete_expired
    with pytest.raises(InvalidRequest, match="active cannot be paused") as refused:
        next_status(S.active, SubscriptionEvent.trial_ended_without_payment_method)
    assert refused.value.code == "subscription_status_invalid"
