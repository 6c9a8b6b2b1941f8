"""Tax rate writes, called by the consumers inside the command's transaction; never commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.sessions import tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.models import TaxRate
from billing.requests.patch import merge_metadata, parse_changes
from billing.tax_rates.repository import get_tax_rate
from contracts.tax_rates import TaxRateCreate, TaxRateUpdate

_COLUMNS = {"displayName": "display_name", "taxType": "tax_type"}


async def create_tax_rate(session: AsyncSession, data: TaxRateCreate) -> TaxRate:
    rate = TaxRate(
        id=new_id("tax_rate"),
        organization_id=tenant_of(session),
        display_name=data.displayName,
        description=data.description,
        jurisdiction=data.jurisdiction,
        country=data.country,
        state=data.state,
        tax_type=data.taxType,
        percentage=data.percentage,
        inclusive=data.inclusive,
        active=data.active,
        metadata_=dict(data.metadata),
    )
    session.add(rate)
    await session.flush()
    return rate


async def update_tax_rate(session: AsyncSession, tax_rate_id: str, changes: dict[str, Any]) -> TaxRate:
    """`changes` holds only the fields the client sent; percentage and inclusive are not
    among them (TaxRateUpdate refuses them by name)."""
    update = parse_changes(TaxRateUpdate, changes)
    rate = await get_tax_rate(session, tax_rate_id, for_update=True)
    if rate is None:
        raise ResourceMissing("tax_rate", tax_rate_id)
    for field in update.model_fields_set:
        value = getattr(update, field)
        if field in ("displayName", "active") and value is None:
            raise InvalidRequest(f"{field} cannot be null.", code="parameter_invalid", param=field)
        if field == "metadata":
            rate.metadata_ = merge_metadata(rate.metadata_, value)
        else:
            setattr(rate, _COLUMNS.get(field, field), value)
    await session.flush()
    return rate
