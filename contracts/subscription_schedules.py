"""Subscription schedule requests and commands (Stripe's /v1/subscription_schedules).

A schedule is a subscription's plan in phases: each phase sets the subscription's items
from its start to its end (an `endDate`, or `iterations` billing periods of its prices).
The resource that comes back is `SubscriptionScheduleDetails`: the generated
`SubscriptionSchedule` with its phases and the current phase's span.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, Field, StrictInt

from contracts.commands import Command
from contracts.common import Metadata, MetadataUpdate, RequestModel
from contracts.enums import CollectionMethod, ProrationBehavior, SubscriptionScheduleEndBehavior
from contracts.resources import SubscriptionSchedule, SubscriptionSchedulePhase
from contracts.subscriptions import MAX_ITEMS

# Stripe's limit on a schedule's phases
MAX_PHASES = 10
# a phase of at most this many billing periods (Stripe's iterations)
MAX_ITERATIONS = 1000

StartDate = AwareDatetime | Literal["now"]


class CurrentPhase(BaseModel):
    startDate: datetime
    endDate: datetime


class SubscriptionScheduleDetails(SubscriptionSchedule):
    """A schedule as the API answers it: with its phases, in order, and the current one's span."""

    phases: list[SubscriptionSchedulePhase]
    currentPhase: CurrentPhase | None = Field(
        description="The span of the phase in effect, while the schedule is active"
    )


class SchedulePhaseItemRequest(RequestModel):
    price: str = Field(max_length=64)
    quantity: StrictInt = Field(default=1, ge=0, le=10**9)


class SchedulePhaseRequest(RequestModel):
    """One phase: its items, and when it ends (an `endDate`, or `iterations` billing periods
    of its prices from its start). Only the first phase has a `startDate` of its own; each
    later one starts where the one before ends (one sent must be that moment)."""

    items: list[SchedulePhaseItemRequest] = Field(min_length=1, max_length=MAX_ITEMS)
    startDate: StartDate | None = None
    endDate: AwareDatetime | None = None
    iterations: StrictInt | None = Field(default=None, ge=1, le=MAX_ITERATIONS)
    trialEnd: AwareDatetime | None = Field(default=None, description="The first phase only")
    trial: bool = Field(default=False, description="The first phase only: a trial for the whole phase")
    prorationBehavior: ProrationBehavior = Field(
        default=ProrationBehavior.create_prorations, description="How the change into this phase is prorated"
    )
    currency: str | None = Field(default=None, min_length=3, max_length=3, description="The first phase only")
    defaultPaymentMethod: str | None = Field(default=None, max_length=64)
    metadata: Metadata = Field(default_factory=dict)


class SubscriptionScheduleCreate(Command[SubscriptionScheduleDetails]):
    """A schedule for `customer` made of `phases`, starting at `startDate` (default: the
    first phase's, else now; a start now creates its subscription at once), or one
    wrapping `fromSubscription` (one phase: its items, to the end of its current period)."""

    command_type: ClassVar[str] = "subscription_schedule.create"

    customer: str | None = Field(default=None, max_length=64)
    fromSubscription: str | None = Field(default=None, max_length=64)
    phases: list[SchedulePhaseRequest] | None = Field(default=None, min_length=1, max_length=MAX_PHASES)
    startDate: StartDate | None = None
    endBehavior: SubscriptionScheduleEndBehavior = SubscriptionScheduleEndBehavior.release
    collectionMethod: CollectionMethod = Field(
        default=CollectionMethod.charge_automatically, description="Stripe's default_settings.collection_method"
    )
    daysUntilDue: StrictInt | None = Field(default=None, ge=0, le=365)
    metadata: Metadata = Field(default_factory=dict)


class SubscriptionScheduleUpdate(RequestModel):
    """POST /{id}: a field left out is unchanged. `phases` replaces the phases: those that
    have ended must be sent as they are, and the current one keeps its startDate."""

    phases: list[SchedulePhaseRequest] | None = Field(default=None, min_length=1, max_length=MAX_PHASES)
    endBehavior: SubscriptionScheduleEndBehavior | None = None
    metadata: MetadataUpdate | None = None


class SubscriptionScheduleUpdateCommand(Command[SubscriptionScheduleDetails]):
    command_type: ClassVar[str] = "subscription_schedule.update"

    id: str = Field(max_length=64)
    changes: dict[str, Any] = Field(description="Only the fields the client sent (SubscriptionScheduleUpdate)")


class SubscriptionScheduleRelease(Command[SubscriptionScheduleDetails]):
    """Stop following the phases; the subscription stays as it is (Stripe's release)."""

    command_type: ClassVar[str] = "subscription_schedule.release"

    id: str = Field(max_length=64)


class SubscriptionScheduleCancel(Command[SubscriptionScheduleDetails]):
    """Cancel the schedule and its subscription now."""

    command_type: ClassVar[str] = "subscription_schedule.cancel"

    id: str = Field(max_length=64)


class SubscriptionScheduleAdvance(Command[SubscriptionScheduleDetails]):
    """The schedule's boundary at `boundary` has come: the first phase starts, the next
    phase begins, or the last one ends (endBehavior). Published once per boundary by the
    scheduler; a repeat finds the schedule past it and changes nothing."""

    command_type: ClassVar[str] = "subscription_schedule.advance"

    id: str = Field(max_length=64)
    boundary: AwareDatetime
