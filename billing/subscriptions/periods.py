"""Billing periods: calendar arithmetic from a billing cycle anchor. Pure, no I/O.

Every boundary is counted from the anchor, never from the previous boundary, so a month
whose day is missing clamps without drifting: an anchor on Jan 31 gives Feb 28 (29 in a
leap year), then Mar 31, Apr 30, May 31. Days and weeks are exact multiples of 24 hours.
The time of day is the anchor's. All moments are timezone-aware and computed in UTC, as
Stripe computes them.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from contracts.enums import RecurringInterval

# Stripe's limit on a recurring interval: at most three years (3 years, 36 months, 156 weeks, 1095 days).
MAX_INTERVAL: Final = {
    RecurringInterval.day: 1095,
    RecurringInterval.week: 156,
    RecurringInterval.month: 36,
    RecurringInterval.year: 3,
}


class InvalidPeriod(ValueError):
    """An interval, anchor or moment that does not describe a billing period."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A price's recurring interval: `count` days, weeks, months or years."""

    unit: RecurringInterval
    count: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int):
            raise TypeError(f"interval count must be an int, not {type(self.count).__name__}.")
        if not 1 <= self.count <= MAX_INTERVAL[self.unit]:
            raise InvalidPeriod(
                f"interval count must be between 1 and {MAX_INTERVAL[self.unit]} for {self.unit}, got {self.count}."
            )

    @property
    def months(self) -> int | None:
        """The interval in calendar months, or None for days and weeks."""
        if self.unit is RecurringInterval.month:
            return self.count
        if self.unit is RecurringInterval.year:
            return 12 * self.count
        return None

    @property
    def fixed_length(self) -> timedelta | None:
        """The interval's exact length for days and weeks, or None for months and years."""
        if self.unit is RecurringInterval.day:
            return timedelta(days=self.count)
        if self.unit is RecurringInterval.week:
            return timedelta(weeks=self.count)
        return None


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end): a moment belongs to the period that starts at or before it."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if utc(self.end, "end") <= utc(self.start, "start"):
            raise InvalidPeriod(
                f"a period must end after it starts ({self.start.isoformat()} .. {self.end.isoformat()})."
            )

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= utc(moment) < self.end

    @property
    def length_ms(self) -> int:
        return milliseconds_between(self.start, self.end)


def utc(moment: datetime, what: str = "moment") -> datetime:
    """`moment` in UTC; a naive datetime is refused, because its zone would be a guess."""
    if not isinstance(moment, datetime):
        raise TypeError(f"{what} must be a datetime, not {type(moment).__name__}.")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidPeriod(f"{what} must be timezone-aware, got {moment.isoformat()}.")
    return moment.astimezone(UTC)


def milliseconds_between(start: datetime, end: datetime) -> int:
    """end - start in whole milliseconds (the precision of the timestamptz(3) columns)."""
    delta = utc(end, "end") - utc(start, "start")
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def add_months(moment: datetime, months: int, day: int | None = None) -> datetime:
    """`moment` moved by whole calendar months, on `day` (default: moment's own day) clamped
    to the length of the target month."""
    start = utc(moment)
    wanted_day = start.day if day is None else day
    year, month_index = divmod(start.year * 12 + start.month - 1 + months, 12)
    last_day = calendar.monthrange(year, month_index + 1)[1]
    return start.replace(year=year, month=month_index + 1, day=min(wanted_day, last_day))


def boundary(anchor: datetime, interval: Interval, n: int) -> datetime:
    """The n-th period boundary counted from `anchor` (n = 0 is the anchor; n may be negative)."""
    start = utc(anchor, "anchor")
    months = interval.months
    if months is None:
        length = interval.fixed_length
        assert length is not None
        return start + n * length
    return add_months(start, n * months)


def period_index(anchor: datetime, interval: Interval, moment: datetime) -> int:
    """The n for which boundary(n) <= moment < boundary(n + 1)."""
    start, at = utc(anchor, "anchor"), utc(moment)
    months = interval.months
    if months is None:
        length = interval.fixed_length
        assert length is not None
        return (at - start) // length
    # A first guess from the calendar months between the two, corrected by at most one step
    # either way (the clamped day and the time of day can put the moment just before it).
    guess = ((at.year - start.year) * 12 + at.month - start.month) // months
    while boundary(start, interval, guess) > at:
        guess -= 1
    while boundary(start, interval, guess + 1) <= at:
        guess += 1
    return guess


def period_at(anchor: datetime, interval: Interval, moment: datetime) -> Period:
    """The period of the cycle anchored at `anchor` that contains `moment`."""
    n = period_index(anchor, interval, moment)
    return Period(boundary(anchor, interval, n), boundary(anchor, interval, n + 1))


def next_period(period: Period, anchor: datetime, interval: Interval) -> Period:
    """The period after `period` in the cycle anchored at `anchor` (a short first period
    before the anchor is followed by the first full one)."""
    return period_at(anchor, interval, period.end)


def first_period(start: datetime, interval: Interval, anchor: datetime | None = None) -> Period:
    """The first period of a subscription that starts at `start`.

    Without an anchor (or with anchor == start) the cycle is anchored at the start and the
    first period is a full one. A later anchor makes a short first period from the start to
    the anchor (Stripe prorates it); it may be no later than the next natural boundary.
    """
    begin = utc(start, "start")
    if anchor is None or utc(anchor, "anchor") == begin:
        return Period(begin, boundary(begin, interval, 1))
    cycle_anchor = utc(anchor, "anchor")
    if cycle_anchor < begin:
        raise InvalidPeriod("billingCycleAnchor cannot be before the subscription starts.")
    natural_end = boundary(begin, interval, 1)
    if cycle_anchor > natural_end:
        raise InvalidPeriod(
            f"billingCycleAnchor cannot be later than the next natural billing date ({natural_end.isoformat()})."
        )
    return Period(begin, cycle_anchor)
