import calendar
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.subscriptions.periods import (
    MAX_INTERVAL,
    Interval,
    InvalidPeriod,
    Period,
    boundary,
    first_period,
    milliseconds_between,
    next_period,
    period_at,
    period_index,
)
from contracts.enums import RecurringInterval

pytestmark = pytest.mark.unit

moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2150, 12, 31), timezones=st.just(UTC)).map(
    lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000)
)
intervals = st.sampled_from(list(RecurringInterval)).flatmap(
    lambda unit: st.integers(min_value=1, max_value=MAX_INTERVAL[unit]).map(lambda count: Interval(unit, count))
)
MONTHLY = Interval(RecurringInterval.month)


def at(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def test_a_month_end_anchor_clamps_and_comes_back() -> None:
    anchor = at(2027, 1, 31, 9)
    ends = [boundary(anchor, MONTHLY, n) for n in range(1, 5)]
    assert ends == [at(2027, 2, 28, 9), at(2027, 3, 31, 9), at(2027, 4, 30, 9), at(2027, 5, 31, 9)]
    assert boundary(at(2028, 1, 31), MONTHLY, 1) == at(2028, 2, 29)  # leap year
    assert boundary(at(2028, 2, 29), Interval(RecurringInterval.year), 1) == at(2029, 2, 28)
    assert boundary(at(2028, 2, 29), Interval(RecurringInterval.year), 4) == at(2032, 2, 29)


def test_periods_follow_the_anchor_not_the_previous_end() -> None:
    anchor = at(2027, 1, 31)
    february = period_at(anchor, MONTHLY, at(2027, 2, 15))
    assert (february.start, february.end) == (at(2027, 1, 31), at(2027, 2, 28))
    march = next_period(february, anchor, MONTHLY)
    assert (march.start, march.end) == (at(2027, 2, 28), at(2027, 3, 31))


def test_days_and_weeks_are_exact_and_counts_multiply() -> None:
    anchor = at(2027, 3, 1, 12)
    assert boundary(anchor, Interval(RecurringInterval.day, 10), 3) == anchor + timedelta(days=30)
    assert boundary(anchor, Interval(RecurringInterval.week, 2), 1) == anchor + timedelta(days=14)
    assert boundary(anchor, Interval(RecurringInterval.month, 3), 1) == at(2027, 6, 1, 12)
    assert boundary(anchor, Interval(RecurringInterval.month, 3), -1) == at(2026, 12, 1, 12)


def test_a_later_anchor_makes_a_short_first_period() -> None:
    start = at(2027, 1, 10)
    short = first_period(start, MONTHLY, at(2027, 2, 1))
    assert (short.start, short.end) == (start, at(2027, 2, 1))
    assert next_period(short, at(2027, 2, 1), MONTHLY) == Period(at(2027, 2, 1), at(2027, 3, 1))
    assert first_period(start, MONTHLY) == Period(start, at(2027, 2, 10))
    with pytest.raises(InvalidPeriod, match="next natural billing date"):
        first_period(start, MONTHLY, at(2027, 2, 11))
    with pytest.raises(InvalidPeriod, match="before the subscription starts"):
        first_period(start, MONTHLY, at(2027, 1, 9))


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidPeriod, match="timezone-aware"):
        boundary(datetime(2027, 1, 1), MONTHLY, 1)
    with pytest.raises(InvalidPeriod, match="between 1 and 36"):
        Interval(RecurringInterval.month, 37)
    with pytest.raises(InvalidPeriod):
        Interval(RecurringInterval.day, 0)
    with pytest.raises(TypeError):
        Interval(RecurringInterval.day, True)
    with pytest.raises(InvalidPeriod, match="must end after it starts"):
        Period(at(2027, 1, 2), at(2027, 1, 1))


def test_other_zones_are_read_in_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    anchor = datetime(2027, 2, 1, 3, tzinfo=tokyo)  # Jan 31, 18:00 UTC
    assert boundary(anchor, MONTHLY, 1) == at(2027, 2, 28, 18)


@given(moments, intervals, moments)
def test_every_moment_falls_in_exactly_one_period(anchor: datetime, interval: Interval, moment: datetime) -> None:
    period = period_at(anchor, interval, moment)
    assert moment in period
    assert period.start == boundary(anchor, interval, period_index(anchor, interval, moment))
    following = next_period(period, anchor, interval)
    assert following.start == period.end and period.end not in period


@given(moments, intervals, st.integers(min_value=-40, max_value=40))
def test_boundaries_increase_and_month_days_clamp(anchor: datetime, interval: Interval, n: int) -> None:
    here, there = boundary(anchor, interval, n), boundary(anchor, interval, n + 1)
    assert here < there
    assert (here.hour, here.minute, here.second, here.microsecond) == (
        anchor.hour,
        anchor.minute,
        anchor.second,
        anchor.microsecond,
    )
    if interval.months is not None:
        assert here.day == min(anchor.day, calendar.monthrange(here.year, here.month)[1])
        assert (here.year * 12 + here.month) - (anchor.year * 12 + anchor.month) == n * interval.months
    else:
        assert there - here == interval.fixed_length


def test_milliseconds_between_keeps_milliseconds() -> None:
    start = at(2027, 1, 1)
    assert milliseconds_between(start, start + timedelta(days=1, milliseconds=7)) == 86_400_007
