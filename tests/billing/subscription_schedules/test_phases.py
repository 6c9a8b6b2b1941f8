from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.errors import InvalidRequest
from billing.subscription_schedules.phases import (
    PhaseTerms,
    PhaseTiming,
    check_kept,
    next_boundary,
    phase_at,
    phase_spans,
)
from billing.subscriptions.periods import Interval, Period, boundary
from contracts.enums import RecurringInterval

pytestmark = pytest.mark.unit

MONTH = Interval(RecurringInterval.month, 1)
JAN_31 = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)

moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)).map(
    lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000)
)
intervals = st.builds(Interval, st.sampled_from(list(RecurringInterval)), st.integers(min_value=1, max_value=3))


def by_iterations(*counts: int, interval: Interval = MONTH) -> list[PhaseTiming]:
    return [PhaseTiming(None, None, count, interval) for count in counts]


def test_iterations_count_billing_periods_on_the_calendar() -> None:
    # a month from Jan 31 ends on Feb 28 (clamped); each later phase counts from its own start
    spans = phase_spans(by_iterations(1, 2, 1), JAN_31)
    assert [span.end.date().isoformat() for span in spans] == ["2027-02-28", "2027-04-28", "2027-05-28"]
    assert spans[0].start == JAN_31


def test_an_end_date_and_iterations_mix() -> None:
    end = JAN_31 + timedelta(days=15)
    spans = phase_spans([PhaseTiming(None, end, None, MONTH), *by_iterations(2)], JAN_31)
    assert spans == [Period(JAN_31, end), Period(end, boundary(end, MONTH, 2))]


@given(moments, st.lists(st.tuples(st.integers(1, 24), intervals), min_size=1, max_size=10))
def test_phases_are_contiguous_and_each_at_moment_is_in_exactly_one(
    start: datetime, phases: list[tuple[int, Interval]]
) -> None:
    spans = phase_spans([PhaseTiming(None, None, count, interval) for count, interval in phases], start)
    assert spans[0].start == start
    for before, after in pairwise(spans):
        assert before.end == after.start
    for index, span in enumerate(spans):
        assert phase_at(spans, span.start) == index
        assert phase_at(spans, span.end - timedelta(milliseconds=1)) == index
    assert phase_at(spans, start - timedelta(milliseconds=1)) is None
    assert phase_at(spans, spans[-1].end) is None


@given(moments, st.lists(st.integers(1, 12), min_size=1, max_size=10), st.data())
def test_the_next_boundary_is_the_start_then_each_end(start: datetime, counts: list[int], data: st.DataObject) -> None:
    spans = phase_spans(by_iterations(*counts), start)
    assert next_boundary(spans, None) == start
    current = data.draw(st.integers(0, len(spans) - 1))
    assert next_boundary(spans, current) == spans[current].end
    # the boundary is where the next phase starts, or the schedule ends
    assert phase_at(spans, next_boundary(spans, current)) == (current + 1 if current + 1 < len(spans) else None)


@pytest.mark.parametrize(
    ("timings", "param", "code"),
    [
        ([], "phases", "parameter_missing"),
        ([PhaseTiming(None, None, None, MONTH)], "phases[0][endDate]", "parameter_missing"),
        ([PhaseTiming(None, JAN_31 + timedelta(days=1), 1, MONTH)], "phases[0][endDate]", "parameter_invalid"),
        ([PhaseTiming(None, JAN_31, None, MONTH)], "phases[0][endDate]", "parameter_invalid"),
        (
            [*by_iterations(1), PhaseTiming(JAN_31 + timedelta(days=3), None, 1, MONTH)],
            "phases[1][startDate]",
            "parameter_invalid",
        ),
    ],
)
def test_bad_timings_name_their_field(timings: list[PhaseTiming], param: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        phase_spans(timings, JAN_31)
    assert (raised.value.param, raised.value.code) == (param, code)


def test_a_later_start_date_equal_to_the_previous_end_is_accepted() -> None:
    first_end = boundary(JAN_31, MONTH, 1)
    spans = phase_spans([*by_iterations(1), PhaseTiming(first_end, None, 1, MONTH)], JAN_31)
    assert spans[1].start == first_end


def terms(spans: list[Period], *items: tuple[str, int]) -> list[PhaseTerms]:
    return [PhaseTerms(span, (items[index % len(items)],), "create_prorations") for index, span in enumerate(spans)]


def test_an_update_keeps_history_and_the_current_start() -> None:
    spans = phase_spans(by_iterations(1, 1, 1), JAN_31)
    now = spans[1].start + timedelta(days=3)
    before = terms(spans, ("price_a", 1))
    # the current phase's items and end may change, the next phases anything
    longer = [*before[:1], PhaseTerms(Period(spans[1].start, spans[2].end), (("price_b", 2),), "none")]
    check_kept(before, longer, 1, now)
    with pytest.raises(InvalidRequest) as past:
        check_kept(before, [PhaseTerms(spans[0], (("price_b", 1),), "none"), *before[1:]], 1, now)
    assert past.value.param == "phases[0]"
    moved = Period(spans[1].start + timedelta(days=1), spans[1].end)
    with pytest.raises(InvalidRequest) as current:
        check_kept(before, [before[0], PhaseTerms(moved, before[1].items, "none")], 1, now)
    assert current.value.param == "phases[1][startDate]"
    with pytest.raises(InvalidRequest) as ended:
        check_kept(before, [before[0], PhaseTerms(Period(spans[1].start, now), before[1].items, "none")], 1, now)
    assert ended.value.param == "phases[1][endDate]"
    with pytest.raises(InvalidRequest) as dropped:
        check_kept(before, before[:1], 1, now)
    assert dropped.value.param == "phases"
