"""An organization's billing settings: its plan change rules, dunning, invoicing and customer emails, stored on the organization
(a column its tenant role may read and write). Reads and the update run in a tenant
session; the update never commits."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from billing import clock
from billing.catalog.repository import get_product
from billing.db.sessions import tenant_of
from billing.errors import ResourceMissing
from billing.models import Organization
from billing.organizations.service import own_column
from billing.subscriptions.change_rules import ChangeRule, ChangeRules, ChangeTiming
from contracts.billing_settings import BillingSettings, BillingSettingsUpdate
from contracts.enums import ProrationBehavior
from contracts.json_shapes import ChangeRule as StoredRule
from contracts.json_shapes import ChangeRules as StoredRules


async def get_billing_settings(session: AsyncSession) -> BillingSettings:
    return BillingSettings(
        organizationId=tenant_of(session),
        changeRules=await own_column(session, Organization.change_rules),
        dunning=await own_column(session, Organization.dunning),
        invoicing=await own_column(session, Organization.invoicing),
        emails=await own_column(session, Organization.emails),
    )


async def update_billing_settings(session: AsyncSession, command: BillingSettingsUpdate) -> BillingSettings:
    organization_id = tenant_of(session)
    sections: dict[str, object] = {}
    if command.changeRules is not None:
        for index, product_id in enumerate(command.changeRules.creditProducts):
            if await get_product(session, product_id) is None:
                raise ResourceMissing("product", product_id, param=f"changeRules[creditProducts][{index}]")
        sections["change_rules"] = command.changeRules.model_dump(mode="json")
    if command.dunning is not None:
        sections["dunning"] = command.dunning.model_dump(mode="json")
    if command.invoicing is not None:
        sections["invoicing"] = command.invoicing.model_dump(mode="json")
    if command.emails is not None:
        sections["emails"] = command.emails.model_dump(mode="json")
    if sections:
        await session.execute(
            update(Organization).where(Organization.id == organization_id).values(**sections, updated_at=clock.now())
        )
    return await get_billing_settings(session)


def _rule(stored: StoredRule) -> ChangeRule:
    behavior = stored["prorationBehavior"]
    return ChangeRule(ChangeTiming(stored["timing"]), ProrationBehavior(behavior) if behavior else None)


def change_rules(stored: StoredRules) -> tuple[ChangeRules, frozenset[str]]:
    """The rules billing.subscriptions.change_rules decides with, and the credit products."""
    credit_products = frozenset(stored["creditProducts"])
    rules = ChangeRules(
        upgrade=_rule(stored["upgrade"]),
        downgrade=_rule(stored["downgrade"]),
        lateral=_rule(stored["lateral"]),
        no_proration_for_credit_products=bool(credit_products),
    )
    return rules, credit_products
