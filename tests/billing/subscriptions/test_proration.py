from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.subscriptions.periods import InvalidPeriod, Period
from billing.subscriptions.proration import ItemAmount, ProrationKind, prorate, proration_lines
from tests.billing.money.test_amounts import half_up_oracle

pytestmark = pytest.mark.unit

APRIL = Period(datetime(2027, 4, 1, tzinfo=UTC), datetime(2027, 5, 1, tzinfo=UTC))  # 30 days

amounts = st.integers(min_value=0, max_value=10**12)
periods = st.builds(
    lambda start, ms: Period(start, start + timedelta(milliseconds=ms)),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
        lambda moment: moment.replace(microsecond=0)
    ),
    st.integers(min_value=1, max_value=3 * 366 * 86_400_000),
)


@st.composite
def period_and_moment(draw: st.DrawFn) -> tuple[Period, datetime]:
    period = draw(periods)
    offset = draw(st.integers(min_value=0, max_value=period.length_ms - 1))
    return period, period.start + timedelta(milliseconds=offset)


def items(prefix: str) -> st.SearchStrategy[list[ItemAmount]]:
    return st.lists(
        st.builds(
            ItemAmount,
            key=st.sampled_from([f"si_{n}" for n in range(4)]),
            price_id=st.sampled_from([f"{prefix}price_{n}" for n in range(3)]),
            quantity=st.integers(min_value=0, max_value=50),
            amount=amounts,
        ),
        max_size=4,
        unique_by=lambda item: item.key,
    )


def test_an_upgrade_ten_days_into_a_thirty_day_month() -> None:
    # $30.00 -> $60.00 on April 11: 20 of 30 days are left.
    before = [ItemAmount("si_1", "price_basic", 1, 3000)]
    after = [ItemAmount("si_1", "price_pro", 1, 6000)]
    lines = proration_lines(before, after, APRIL, datetime(2027, 4, 11, tzinfo=UTC))
    assert [(line.kind, line.price_id, line.amount) for line in lines] == [
        (ProrationKind.credit, "price_basic", -2000),
        (ProrationKind.charge, "price_pro", 4000),
    ]
    assert all(line.period == Period(datetime(2027, 4, 11, tzinfo=UTC), APRIL.end) for line in lines)


def test_each_line_is_rounded_once_half_away_from_zero() -> None:
    # 1000 for a third of the period: 333.33 -> 333; 1001 for half of it: 500.5 -> 501.
    one_third_left = APRIL.start + timedelta(days=20)
    assert prorate(1000, APRIL, one_third_left) == 333
    assert prorate(1001, APRIL, APRIL.start + timedelta(days=15)) == 501
    lines = proration_lines([ItemAmount("si_1", "p", 1, 1001)], [], APRIL, APRIL.start + timedelta(days=15))
    assert lines[0].amount == -501


def test_unchanged_items_get_no_line_and_quantities_count() -> None:
    seat = ItemAmount("si_seat", "price_seat", 3, 3000)
    more_seats = ItemAmount("si_seat", "price_seat", 5, 5000)
    storage = ItemAmount("si_storage", "price_storage", 1, 700)
    lines = proration_lines([seat, storage], [more_seats, storage], APRIL, APRIL.start)
    assert [(line.kind, line.quantity, line.amount) for line in lines] == [
        (ProrationKind.credit, 3, -3000),
        (ProrationKind.charge, 5, 5000),
    ]


def test_a_change_outside_the_period_is_refused() -> None:
    with pytest.raises(InvalidPeriod, match="outside the current period"):
        prorate(1000, APRIL, APRIL.end)
    with pytest.raises(InvalidPeriod, match="outside the current period"):
        proration_lines([], [], APRIL, APRIL.start - timedelta(milliseconds=1))
    with pytest.raises(TypeError):
        ItemAmount("si", "p", 1, 10.5)  # type: ignore[arg-type]


@given(items("old_"), items("new_"), periods)
def test_a_change_at_period_start_charges_the_full_difference(
    before: list[ItemAmount], after: list[ItemAmount], period: Period
) -> None:
    lines = proration_lines(before, after, period, period.start)
    changed_before = [item for item in before if not any(item == other for other in after)]
    changed_after = [item for item in after if not any(item == other for other in before)]
    assert sum(line.amount for line in lines) == sum(i.amount for i in changed_after) - sum(
        i.amount for i in changed_before
    )


@given(items("old_"), items("new_"), period_and_moment())
def test_a_change_and_its_reverse_at_the_same_instant_net_to_zero(
    before: list[ItemAmount], after: list[ItemAmount], where: tuple[Period, datetime]
) -> None:
    period, moment = where
    there = proration_lines(before, after, period, moment)
    back = proration_lines(after, before, period, moment)
    assert sum(line.amount for line in there) + sum(line.amount for line in back) == 0
    assert len(there) == len(back)


@given(amounts, period_and_moment())
def test_a_prorated_line_is_the_exact_share_rounded_once(amount: int, where: tuple[Period, datetime]) -> None:
    period, moment = where
    left = Fraction(int((period.end - moment) / timedelta(milliseconds=1)), period.length_ms)
    assert prorate(amount, period, moment) == half_up_oracle(amount * left)
    assert 0 <= prorate(amount, period, moment) <= amount
