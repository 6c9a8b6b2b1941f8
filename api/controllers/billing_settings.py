"""/v1/billing-settings: the organization's plan change rules, dunning, invoicing and customer emails."""

from __future__ import annotations

from litestar import Controller, Response, get, patch
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.bus import CommandBus
from api.params import IdempotencyKey
from api.responses import run_command
from billing.organizations.billing_settings import get_billing_settings
from contracts.billing_settings import BillingSettings, BillingSettingsUpdate


class BillingSettingsController(Controller):
    path = "/v1/billing-settings"
    tags = ["subscriptions"]

    @get("/", summary="The organization's billing settings (plan change rules, dunning, invoicing, customer emails)")
    async def retrieve(self, db: AsyncSession) -> BillingSettings:
        return await get_billing_settings(db)

    @patch(
        "/",
        summary="Replace the plan change rules, the dunning, invoicing or email settings, or any of them",
        description=(
            "Each section given replaces that section; one left out is unchanged. "
            "A change's direction is decided by the amount per billing interval before and after it. "
            "period_end keeps the change for the next renewal (never prorated); immediately applies it with "
            "the rule's prorationBehavior, else the request's. Changes involving a credit product are never "
            "prorated. Dunning: retryAfterDays is Stripe's custom retry schedule (each retry that many days after "
            "the attempt before it; hard declines are never retried), then the invoice and the subscription become "
            "what invoiceAfterLastRetry and subscriptionAfterLastRetry say. Invoicing: renewalDraftMinutes is how long a "
            "renewal's invoice stays a draft (its metered lines count the ended period's usage until then), then the "
            "scheduler finalizes and charges it. Emails: which customer emails are sent (none until enabled), from "
            "which address, replies to which, and the portal the emails link to."
        ),
    )
    async def update(
        self, data: BillingSettingsUpdate, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[BillingSettings]:
        return await run_command(bus, caller, data, idempotency_key)
