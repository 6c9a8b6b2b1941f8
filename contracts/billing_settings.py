"""An organization's billing settings: its plan change rules (when a change of each
direction takes effect and how it is prorated), answered and replaced as a whole."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from contracts.commands import Command
from contracts.common import RequestModel
from contracts.enums import ProrationBehavior
from contracts.json_shapes import ChangeRules


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


class BillingSettings(BaseModel):
    object: Literal["billing_settings"] = "billing_settings"
    organizationId: str
    changeRules: ChangeRules


class BillingSettingsUpdate(Command[BillingSettings]):
    """`PATCH /v1/billing-settings`: `changeRules` replaces the rules as a whole."""

    command_type: ClassVar[str] = "billing_settings.update"

    changeRules: ChangeRulesRequest
