"""An organization's billing settings: its plan change rules (when a change of each
direction takes effect and how it is prorated), its dunning (when a failed subscription
payment is retried, and what happens after the last retry), its invoicing (how long a
renewal's invoice stays a draft) and its customer emails (which, from whom). Each section is answered whole and replaced whole by the
PATCH that gives it."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, EmailStr, Field

from contracts.commands import Command
from contracts.common import RequestModel
from contracts.enums import ProrationBehavior
from contracts.json_shapes import ChangeRules, Dunning, Emails, Invoicing


class ChangeRuleRequest(RequestModel):
    timing: Literal["immediately", "period_end"] = "immediately"
    prorationBehavior: ProrationBehavior | None = Field(
        default=None, description="Default: the one the request asks for (Stripe's default create_prorations)"
    )


class ChangeRulesRequest(RequestModel):
    """Stripe's behaviour when left out: every change at once, prorated as asked."""

    upgrade: ChangeRuleRequest = Field(default_factory=ChangeRuleRequest)
    downgrade: ChangeRuleRequest = Field(default_factory=ChangeRuleRequest)
    lateral: ChangeRuleRequest = Field(default_factory=ChangeRuleRequest, description="The same amount per interval")
    creditProducts: list[str] = Field(
        default_factory=list, max_length=100, description="Products (prepaid credits) whose changes are never prorated"
    )


class DunningRequest(RequestModel):
    """Stripe's custom retry schedule and its "if all retries fail" settings; the defaults
    are the organization's to begin with."""

    retryAfterDays: list[Annotated[int, Field(ge=0, le=60)]] = Field(
        default_factory=lambda: [1, 3, 5, 7],
        max_length=10,
        description="Each retry, in days after the attempt before it (an empty list: no retries)",
    )
    invoiceAfterLastRetry: Literal["open", "uncollectible"] = "open"
    subscriptionAfterLastRetry: Literal["canceled", "unpaid", "past_due"] = "canceled"


# Stripe's draft period is about an hour; three days is the longest a renewal may wait unbilled
MAX_RENEWAL_DRAFT_MINUTES = 3 * 24 * 60


class InvoicingRequest(RequestModel):
    renewalDraftMinutes: int = Field(
        default=60,
        ge=0,
        le=MAX_RENEWAL_DRAFT_MINUTES,
        description="How long a renewal's invoice stays a draft before it is finalized and charged (Stripe: about "
        "an hour; 0: at once, except for metered items, finalized by the scheduler's next pass). Usage events of the "
        "ended period that reach ClickHouse by then are billed; later ones are not.",
    )


class EmailsRequest(RequestModel):
    """Which customer emails are sent (none until enabled), from whom, and where the
    customers manage their billing (linked from the emails)."""

    fromAddress: EmailStr | None = Field(
        default=None, description="The sender's address; null: the platform's (BILLING_EMAIL_FROM)"
    )
    replyTo: EmailStr | None = Field(default=None, description="Where replies go; null: to the sender")
    portalUrl: Annotated[str, Field(max_length=2048, pattern=r"^https?://\S+$")] | None = Field(
        default=None, description="Where customers update their card and see invoices; null: the emails link nowhere"
    )
    invoiceFinalized: bool = Field(default=False, description="An invoice to pay by hand (send_invoice), PDF attached")
    paymentReceipt: bool = Field(default=False, description="A paid invoice's receipt, PDF attached")
    paymentFailed: bool = Field(default=False, description="A failed payment, with the portal link to update the card")
    trialWillEnd: bool = Field(default=False, description="A trial ends in three days")
    cardExpiring: bool = Field(default=False, description="A card expires within 30 days")


class BillingSettings(BaseModel):
    object: Literal["billing_settings"] = "billing_settings"
    organizationId: str
    changeRules: ChangeRules
    dunning: Dunning
    invoicing: Invoicing
    emails: Emails


class BillingSettingsUpdate(Command[BillingSettings]):
    """`PATCH /v1/billing-settings`: each section given replaces that section as a whole;
    one left out is unchanged."""

    command_type: ClassVar[str] = "billing_settings.update"

    changeRules: ChangeRulesRequest | None = None
    dunning: DunningRequest | None = None
    invoicing: InvoicingRequest | None = None
    emails: EmailsRequest | None = None
