"""Dunning's rules: each retry that many days after the attempt before it, none once the
schedule is spent, the hard declines never retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.invoices.dunning import HARD_DECLINES, after_last_retry, is_hard_decline, next_retry
from contracts.json_shapes import Dunning

pytestmark = pytest.mark.unit

START = datetime(2027, 3, 1, tzinfo=UTC)


def settings(days: list[int]) -> Dunning:
    return {"retryAfterDays": days, "invoiceAfterLastRetry": "open", "subscriptionAfterLastRetry": "canceled"}


def test_the_default_schedule_retries_after_1_3_5_and_7_days_then_stops() -> None:
    schedule = settings([1, 3, 5, 7])
    failed_at, moments = START, []
    for made in range(5):
        retry = next_retry(schedule, made, failed_at)
        if retry is None:
            break
        moments.append(retry)
        failed_at = retry  # the retry fails as it is made
    assert moments == [START + timedelta(days=d) for d in (1, 4, 9, 16)]
    assert next_retry(schedule, 4, failed_at) is None


@given(
    days=st.lists(st.integers(min_value=0, max_value=60), max_size=10),
    made=st.integers(min_value=0, max_value=12),
    minutes=st.integers(min_value=0, max_value=10**6),
)
def test_any_schedule_retries_exactly_its_days_after_the_last_attempt(days: list[int], made: int, minutes: int) -> None:
    failed_at = START + timedelta(minutes=minutes)
    retry = next_retry(settings(days), made, failed_at)
    if made < len(days):
        assert retry == failed_at + timedelta(days=days[made])
    else:
        assert retry is None


@given(code=st.sampled_from(sorted(HARD_DECLINES)), field=st.sampled_from(["failure", "decline"]))
def test_a_hard_decline_in_either_code_is_hard(code: str, field: str) -> None:
    assert is_hard_decline(code, None) if field == "failure" else is_hard_decline("card_declined", code)


@pytest.mark.parametrize(
    ("failure", "decline"),
    [
        ("card_declined", "insufficient_funds"),
        ("card_declined", "generic_decline"),
        (None, None),
        ("processing_error", None),
    ],
)
def test_soft_declines_are_retried(failure: str | None, decline: str | None) -> None:
    assert not is_hard_decline(failure, decline)


def test_what_comes_after_the_last_retry_is_the_settings() -> None:
    stored: Dunning = {
        "retryAfterDays": [],
        "invoiceAfterLastRetry": "uncollectible",
        "subscriptionAfterLastRetry": "unpaid",
    }
    after = after_last_retry(stored)
    assert (after.subscription, after.invoice) == ("unpaid", "uncollectible")
