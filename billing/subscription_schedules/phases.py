"""A subscription schedule's phases in time: when each starts and ends, which one is
current, where the next boundary is, and what an update may not change. Pure, no I/O.

Phases are contiguous (Stripe's rule): the first starts at the schedule's start, each
later one where the one before ends. A phase ends at its `endDate`, or after `iterations`
billing periods of its prices' interval counted from its start, on the calendar of
billing periods (billing.subscriptions.periods: a month from Jan 31 ends on Feb 28).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from billing.errors import InvalidRequest
from billing.subscriptions.periods import Interval, Period, boundary, utc


@dataclass(frozen=True, slots=True)
class PhaseTiming:
    """What a request says of one phase's time: a start (the first phase's only), and an
    end or a number of its prices' billing periods."""

    start_date: datetime | None
    end_date: datetime | None
    iterations: int | None
    interval: Interval


def phase_spans(timings: Sequence[PhaseTiming], start: datetime) -> list[Period]:
    """Each phase's [start, end), the first from `start` (the first phase's own startDate
    where it has one), each later one from the previous end. Params name the request's
    fields (`phases[1][endDate]`)."""
    if not timings:
        raise InvalidRequest(
            "A subscription schedule needs at least one phase.", code="parameter_missing", param="phases"
        )
    spans: list[Period] = []
    begin = utc(timings[0].start_date or start)
    for index, timing in enumerate(timings):
        param = f"phases[{index}]"
        if index > 0 and timing.start_date is not None and utc(timing.start_date) != begin:
            raise InvalidRequest(
                f"Phases are contiguous: {param}[startDate] must be the end of phases[{index - 1}] "
                f"({begin.isoformat()}), or left out.",
                code="parameter_invalid",
                param=f"{param}[startDate]",
            )
        if (timing.end_date is None) == (timing.iterations is None):
            raise InvalidRequest(
                f"{param} needs exactly one of endDate and iterations.",
                code="parameter_invalid" if timing.end_date is not None else "parameter_missing",
                param=f"{param}[endDate]",
            )
        if timing.end_date is not None:
            end = utc(timing.end_date)
            if end <= begin:
                raise InvalidRequest(
                    f"{param}[endDate] must be after the phase's start ({begin.isoformat()}).",
                    code="parameter_invalid",
                    param=f"{param}[endDate]",
                )
        else:
            assert timing.iterations is not None
            end = boundary(begin, timing.interval, timing.iterations)
        spans.append(Period(begin, end))
        begin = end
    return spans


def phase_at(spans: Sequence[Period], at: datetime) -> int | None:
    """The index of the phase in effect at `at`; None before the first and from the last's end."""
    for index, span in enumerate(spans):
        if at in span:
            return index
    return None


def next_boundary(spans: Sequence[Period], current: int | None) -> datetime:
    """Where the schedule next moves: the first phase's start while it has not started,
    else the current phase's end (the next phase's start, or the schedule's end)."""
    return spans[0].start if current is None else spans[current].end


@dataclass(frozen=True, slots=True)
class PhaseTerms:
    """What a phase is, for comparing a stored phase with an update's."""

    span: Period
    items: tuple[tuple[str, int], ...]  # (price id, quantity), in order
    proration_behavior: str


def check_kept(before: Sequence[PhaseTerms], after: Sequence[PhaseTerms], current: int, now: datetime) -> None:
    """An update of an active schedule whose phase `current` is in effect: the phases
    before it are history and stay as they were, the current phase keeps its start, and
    it must still end after `now` (an end already passed is no boundary to move at)."""
    if len(after) <= current:
        raise InvalidRequest(
            f"The schedule is in phase {current}: the update must keep phases 0..{current}.",
            code="parameter_invalid",
            param="phases",
        )
    for index in range(current):
        if before[index] != after[index]:
            raise InvalidRequest(
                f"phases[{index}] has ended and cannot change: send it as it is.",
                code="parameter_invalid",
                param=f"phases[{index}]",
            )
    if after[current].span.start != before[current].span.start:
        raise InvalidRequest(
            f"phases[{current}] is the current phase: its startDate ({before[current].span.start.isoformat()}) "
            "cannot change.",
            code="parameter_invalid",
            param=f"phases[{current}][startDate]",
        )
    if after[current].span.end <= now:
        raise InvalidRequest(
            f"phases[{current}] is the current phase: it must end in the future.",
            code="parameter_invalid",
            param=f"phases[{current}][endDate]",
        )
