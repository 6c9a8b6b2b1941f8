"""The webhook retry schedule and the disable rule, as pure functions over moments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from billing.notifications.schedule import DISABLE_AFTER, RETRY_FOR, next_attempt, retry_delay, should_disable

START = datetime(2026, 12, 7, tzinfo=UTC)


def attempts_until_given_up(scale: float) -> list[datetime]:
    """The moments of every attempt of a delivery that always fails at once."""
    moments = [START]
    while (following := next_attempt(START, len(moments), moments[-1], scale)) is not None:
        moments.append(following)
    return moments


def test_the_schedule_is_at_once_5_s_5_min_30_min_2_h_5_h_10_h_then_every_10_h_for_three_days() -> None:
    moments = attempts_until_given_up(1.0)
    gaps = [later - earlier for earlier, later in pairwise(moments)]
    assert gaps[:6] == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
    ]
    assert set(gaps[6:]) == {timedelta(hours=10)}
    assert moments[-1] - START <= RETRY_FOR < moments[-1] - START + timedelta(hours=10)
    assert len(moments) == 12  # the last at 67 h 35 min


@given(st.sampled_from([1.0, 0.001, 0.00002]))
def test_a_scale_compresses_every_gap_alike(scale: float) -> None:
    assert len(attempts_until_given_up(scale)) == len(attempts_until_given_up(1.0))
    assert retry_delay(3, scale) == timedelta(minutes=30) * scale


@given(st.integers(min_value=0, max_value=10 * 24 * 3600))
def test_an_endpoint_is_disabled_after_five_days_of_failures_and_not_before(seconds: int) -> None:
    now = START + timedelta(seconds=seconds)
    assert should_disable(START, now) == (timedelta(seconds=seconds) >= DISABLE_AFTER)
