"""Subscription requests: the API's request bodies and the subscription commands' payloads.

The resource that comes back is `SubscriptionDetails`: the generated `Subscription` with its
items and its latest invoice's id, as Stripe answers a subscription.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, Field, StrictInt

from contracts.commands import Command
from contracts.common import Metadata, MetadataUpdate, RequestModel
from contracts.enums import CollectionMethod, ProrationBehavior
from contracts.resources import Subscription, SubscriptionItem

# Stripe's limits: 20 items on a subscription, trials of at most two years.
MAX_ITEMS = 20
MAX_TRIAL_DAYS = 730
MAX_TAX_RATES = 10  # on a subscription's defaults, and on an item

TaxRateIds = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=MAX_TAX_RATES)]


class SubscriptionItemDetails(SubscriptionItem):
    taxRates: list[str] = Field(description="Tax rates on this item's lines, in place of the defaults")


class SubscriptionDetails(Subscription):
    """A subscription as the API answers it: with its items and its latest invoice."""

    items: list[SubscriptionItemDetails]
    defaultTaxRates: list[str] = Field(description="Tax rates on every line whose item has none of its own")
    latestInvoice: str | None = Field(description="The id of the subscription's most recent invoice")


class SubscriptionItemCreate(RequestModel):
    price: str = Field(max_length=64)
    quantity: StrictInt = Field(default=1, ge=0, le=10**9)
    taxRates: TaxRateIds = Field(default_factory=list, description="In place of the subscription's defaultTaxRates")
    metadata: Metadata = Field(default_factory=dict)


class TrialEndBehavior(RequestModel):
    missingPaymentMethod: Literal["cancel", "create_invoice", "pause"] = "create_invoice"


class TrialSettings(RequestModel):
    endBehavior: TrialEndBehavior = Field(default_factory=TrialEndBehavior)


PaymentBehavior = Literal["allow_incomplete", "default_incomplete", "error_if_incomplete"]


class SubscriptionCreate(Command[SubscriptionDetails]):
    command_type: ClassVar[str] = "subscription.create"

    customer: str = Field(max_length=64)
    items: list[SubscriptionItemCreate] = Field(min_length=1, max_length=MAX_ITEMS)
    currency: str | None = Field(
        default=None, min_length=3, max_length=3, description="Default: the customer's, else the first price's"
    )
    trialPeriodDays: StrictInt | None = Field(default=None, ge=1, le=MAX_TRIAL_DAYS)
    trialEnd: AwareDatetime | None = None
    trialSettings: TrialSettings = Field(default_factory=TrialSettings)
    defaultPaymentMethod: str | None = Field(default=None, max_length=64)
    collectionMethod: CollectionMethod = CollectionMethod.charge_automatically
    daysUntilDue: StrictInt | None = Field(default=None, ge=0, le=365)
    billingCycleAnchor: AwareDatetime | None = None
    cancelAtPeriodEnd: bool = False
    defaultTaxRates: TaxRateIds = Field(default_factory=list, description="Tax rates on every line (Stripe's)")
    paymentBehavior: PaymentBehavior = Field(
        default="allow_incomplete",
        description=(
            "A first invoice to charge: allow_incomplete charges it now (incomplete until paid); "
            "default_incomplete leaves it open for POST /v1/invoices/{id}/pay; error_if_incomplete charges it "
            "now and answers 402 unless it is paid (the subscription then ends incomplete_expired)"
        ),
    )
    metadata: Metadata = Field(default_factory=dict)


class SubscriptionItemChange(RequestModel):
    """One entry of an update's `items`: `{id, quantity}` or `{id, price}` changes an
    item, `{id, deleted: true}` removes it, `{price, quantity}` adds one."""

    id: str | None = Field(default=None, max_length=64)
    price: str | None = Field(default=None, max_length=64)
    quantity: StrictInt | None = Field(default=None, ge=0, le=10**9)
    deleted: bool = False


class SubscriptionItemChanges(RequestModel):
    """What a plan change is made of, for an update and for its preview."""

    items: list[SubscriptionItemChange] | None = Field(default=None, max_length=MAX_ITEMS)
    prorationBehavior: ProrationBehavior | None = Field(default=None, description="Default create_prorations")
    prorationDate: AwareDatetime | None = Field(default=None, description="Default now; inside the current period")


class PauseCollectionRequest(RequestModel):
    behavior: Literal["keep_as_draft", "mark_uncollectible", "void"] = Field(
        description="What happens to the invoices made while paused"
    )
    resumesAt: AwareDatetime | None = Field(default=None, description="In the future; absent: until resumed")


class SubscriptionUpdate(SubscriptionItemChanges):
    """PATCH: a field left out is unchanged. `cancelAtPeriodEnd: false` undoes a pending
    cancel; metadata merges (a key set to null is removed). `items` changes the plan,
    prorated by `prorationBehavior`: create_prorations (credit and charge lines wait for
    the next invoice), always_invoice (they are invoiced and charged now) or none."""

    metadata: MetadataUpdate | None = None
    cancelAtPeriodEnd: bool | None = None
    defaultPaymentMethod: str | None = Field(default=None, max_length=64)
    defaultTaxRates: TaxRateIds | None = Field(
        default=None, description="Replaces the default tax rates for the invoices to come; null or [] clears them"
    )
    pauseCollection: PauseCollectionRequest | None = Field(
        default=None, description="Pause collecting the invoices to come; null resumes"
    )


class SubscriptionUpdateCommand(Command[SubscriptionDetails]):
    command_type: ClassVar[str] = "subscription.update"

    id: str = Field(max_length=64)
    changes: dict[str, Any] = Field(description="Only the fields the client sent (SubscriptionUpdate, exclude_unset)")


class CancellationFeedback(StrEnum):
    """Stripe's eight reasons a customer gives."""

    customer_service = "customer_service"
    low_quality = "low_quality"
    missing_features = "missing_features"
    other = "other"
    switched_service = "switched_service"
    too_complex = "too_complex"
    too_expensive = "too_expensive"
    unused = "unused"


class SubscriptionRenew(Command[SubscriptionDetails]):
    """The end of the period that ends at `periodEnd`: the subscription ends (cancel at
    period end), ends its trial, or advances and is invoiced (billing.subscriptions.renewals).
    Published once per period by whatever keeps time; a repeat finds the period advanced
    and changes nothing."""

    command_type: ClassVar[str] = "subscription.renew"

    id: str = Field(max_length=64)
    periodEnd: AwareDatetime


class SubscriptionExpireIncomplete(Command[SubscriptionDetails]):
    """An incomplete subscription whose first invoice is still unpaid 23 hours after its
    creation ends incomplete_expired, the invoice voided (Stripe's rule); one paid since is
    left as it is. Published by whatever keeps time."""

    command_type: ClassVar[str] = "subscription.expire_incomplete"

    id: str = Field(max_length=64)


class SubscriptionNotifyTrialEnding(Command[SubscriptionDetails]):
    """Three days before the trial that ends at `trialEnd` (at once for a shorter trial):
    `customer.subscription.trial_will_end`, Stripe's reminder to add a payment method.
    Changes nothing; one a trial since ended, extended or shortened finds another
    `trialEnd` and tells nothing."""

    command_type: ClassVar[str] = "subscription.notify_trial_ending"

    id: str = Field(max_length=64)
    trialEnd: AwareDatetime


class SubscriptionResume(Command[SubscriptionDetails]):
    """paused -> active (Stripe's POST /v1/subscriptions/{id}/resume): a new cycle from
    now, its first period invoiced and charged. A charge_automatically subscription needs
    a payment method first (a missing one is why a trial's end paused it)."""

    command_type: ClassVar[str] = "subscription.resume"

    id: str = Field(max_length=64)


class SubscriptionCancel(Command[SubscriptionDetails]):
    """Cancel now. `prorate` credits the unused time of the current period on a final
    invoice, finalized at once, whose credit goes to the customer's balance. `invoiceNow`
    invoices what is pending (metered usage, pending invoice items): nothing is pending
    yet until renewals bill usage, so it adds no line today. An incomplete subscription
    ends as incomplete_expired, its open invoice voided."""

    command_type: ClassVar[str] = "subscription.cancel"

    id: str = Field(max_length=64)
    invoiceNow: bool = False
    prorate: bool = False
    feedback: CancellationFeedback | None = None
