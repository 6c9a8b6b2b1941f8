"""Tenant-scoped tax rate reads for the API and the services (the tenant session adds the filter)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import Page, PageRequest, paginate
from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.invoices.totals import LineTaxRates, TaxRateTerms
from billing.models import SubscriptionTaxRate, TaxRate


async def get_tax_rate(session: AsyncSession, tax_rate_id: str, *, for_update: bool = False) -> TaxRate | None:
    return await get_one(session, TaxRate, TaxRate.id, tax_rate_id, for_update=for_update)


async def tax_rates_by_id(session: AsyncSession, tax_rate_ids: Sequence[str]) -> dict[str, TaxRate]:
    """{id: rate} for those of `tax_rate_ids` this organization has."""
    tenant_of(session)
    if not tax_rate_ids:
        return {}
    rows = await session.scalars(select(TaxRate).where(TaxRate.id.in_(set(tax_rate_ids))))
    return {rate.id: rate for rate in rows}


async def list_tax_rates(
    session: AsyncSession, page: PageRequest, *, active: bool | None = None, inclusive: bool | None = None
) -> Page[TaxRate]:
    tenant_of(session)
    statement = select(TaxRate)
    if active is not None:
        statement = statement.where(TaxRate.active.is_(active))
    if inclusive is not None:
        statement = statement.where(TaxRate.inclusive.is_(inclusive))
    return await paginate(session, statement, TaxRate, page, "tax_rate")


def terms(rate: TaxRate) -> TaxRateTerms:
    """What the rate charges, for billing.invoices.totals."""
    return TaxRateTerms(rate.id, rate.percentage, rate.inclusive)


async def subscription_tax_rates(session: AsyncSession, subscription_id: str) -> LineTaxRates:
    """The subscription's default tax rates and its items' own, in the order given."""
    tenant_of(session)
    rows = (
        await session.execute(
            select(SubscriptionTaxRate.subscription_item_id, TaxRate)
            .join(TaxRate, TaxRate.id == SubscriptionTaxRate.tax_rate_id)
            .where(SubscriptionTaxRate.subscription_id == subscription_id)
            .order_by(SubscriptionTaxRate.position, SubscriptionTaxRate.id)
        )
    ).all()
    by_item: dict[str, list[TaxRateTerms]] = {}
    defaults: list[TaxRateTerms] = []
    for item_id, rate in rows:
        (defaults if item_id is None else by_item.setdefault(item_id, [])).append(terms(rate))
    return LineTaxRates(tuple(defaults), {item_id: tuple(rates) for item_id, rates in by_item.items()})


async def usable_tax_rates(session: AsyncSession, tax_rate_ids: Sequence[str], param: str) -> list[TaxRate]:
    """The rates `tax_rate_ids` names, in order: this organization's, active, each once;
    the first that is not is refused with its parameter (`defaultTaxRates[1]`)."""
    found = await tax_rates_by_id(session, tax_rate_ids)
    rates: list[TaxRate] = []
    for index, tax_rate_id in enumerate(tax_rate_ids):
        at = f"{param}[{index}]"
        rate = found.get(tax_rate_id)
        if rate is None:
            raise ResourceMissing("tax_rate", tax_rate_id, param=at)
        if not rate.active:
            raise InvalidRequest(
                f"The tax rate {tax_rate_id} is archived (active: false): it taxes no new line.",
                code="tax_rate_inactive",
                param=at,
            )
        if rate in rates:
            raise InvalidRequest(
                f"The tax rate {tax_rate_id} is given twice; a rate applies to a line once.",
                code="parameter_invalid",
                param=at,
            )
        rates.append(rate)
    return rates
