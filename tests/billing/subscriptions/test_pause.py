from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.subscriptions.pause import PauseBehavior, paused_behavior
from contracts.json_shapes import PauseCollection

pytestmark = pytest.mark.unit

MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(
    st.sampled_from(PauseBehavior),
    MOMENTS,
    st.timedeltas(min_value=timedelta(milliseconds=-(10**12)), max_value=timedelta(milliseconds=10**12)),
)
def test_a_pause_holds_until_its_resumes_at_and_not_a_moment_longer(
    behavior: PauseBehavior, now: datetime, offset: timedelta
) -> None:
    resumes_at = now + offset
    pause = PauseCollection(behavior=behavior.value, resumesAt=resumes_at.isoformat())
    assert paused_behavior(pause, now) == (behavior if resumes_at > now else None)


@given(st.sampled_from(PauseBehavior), MOMENTS)
def test_a_pause_without_an_end_holds_and_no_pause_collects(behavior: PauseBehavior, now: datetime) -> None:
    assert paused_behavior(PauseCollection(behavior=behavior.value, resumesAt=None), now) is behavior
    assert paused_behavior(None, now) is None
