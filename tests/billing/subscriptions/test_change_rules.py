import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.subscriptions.change_rules import (
    ChangeDirection,
    ChangeRule,
    ChangeRules,
    ChangeTiming,
    change_direction,
    decide_change,
)
from contracts.enums import ProrationBehavior

pytestmark = pytest.mark.unit

UPGRADE_NOW_DOWNGRADE_LATER = ChangeRules(
    upgrade=ChangeRule(ChangeTiming.immediately, ProrationBehavior.always_invoice),
    downgrade=ChangeRule(ChangeTiming.period_end),
)


def test_the_direction_is_decided_per_interval_not_per_day() -> None:
    # $10 a month -> $100 a year costs less per day, and is an upgrade: more per billing period.
    assert change_direction(1000, 10000) is ChangeDirection.upgrade
    assert change_direction(10000, 1000) is ChangeDirection.downgrade
    assert change_direction(1000, 1000) is ChangeDirection.lateral


def test_default_rules_are_stripes_apply_now_as_requested() -> None:
    decision = decide_change(ChangeRules(), 1000, 500, None)
    assert (decision.timing, decision.proration_behavior) == (
        ChangeTiming.immediately,
        ProrationBehavior.create_prorations,
    )
    assert decide_change(ChangeRules(), 1000, 500, ProrationBehavior.none).proration_behavior is ProrationBehavior.none


def test_an_organization_upgrades_now_and_downgrades_at_period_end() -> None:
    up = decide_change(UPGRADE_NOW_DOWNGRADE_LATER, 1000, 2000, ProrationBehavior.create_prorations)
    assert (up.direction, up.timing, up.proration_behavior) == (
        ChangeDirection.upgrade,
        ChangeTiming.immediately,
        ProrationBehavior.always_invoice,
    )
    down = decide_change(UPGRADE_NOW_DOWNGRADE_LATER, 2000, 1000, ProrationBehavior.always_invoice)
    assert (down.direction, down.timing, down.proration_behavior) == (
        ChangeDirection.downgrade,
        ChangeTiming.period_end,
        ProrationBehavior.none,
    )


def test_credit_products_are_never_prorated_when_the_organization_says_so() -> None:
    rules = ChangeRules(no_proration_for_credit_products=True)
    assert (
        decide_change(rules, 1000, 2000, None, involves_credit_product=True).proration_behavior
        is ProrationBehavior.none
    )
    assert decide_change(rules, 1000, 2000, None).proration_behavior is ProrationBehavior.create_prorations


rules = st.builds(
    ChangeRules,
    upgrade=st.builds(ChangeRule, st.sampled_from(ChangeTiming), st.none() | st.sampled_from(ProrationBehavior)),
    downgrade=st.builds(ChangeRule, st.sampled_from(ChangeTiming), st.none() | st.sampled_from(ProrationBehavior)),
    lateral=st.builds(ChangeRule, st.sampled_from(ChangeTiming), st.none() | st.sampled_from(ProrationBehavior)),
    no_proration_for_credit_products=st.booleans(),
)


@given(
    rules, st.integers(0, 10**9), st.integers(0, 10**9), st.none() | st.sampled_from(ProrationBehavior), st.booleans()
)
def test_a_deferred_change_is_never_prorated_and_the_rule_of_its_direction_applies(
    rules: ChangeRules, before: int, after: int, requested: ProrationBehavior | None, credit: bool
) -> None:
    decision = decide_change(rules, before, after, requested, involves_credit_product=credit)
    rule = rules.for_direction(decision.direction)
    assert decision.timing is rule.timing
    if decision.timing is ChangeTiming.period_end or (credit and rules.no_proration_for_credit_products):
        assert decision.proration_behavior is ProrationBehavior.none
    else:
        assert decision.proration_behavior is (
            rule.proration_behavior or requested or ProrationBehavior.create_prorations
        )
