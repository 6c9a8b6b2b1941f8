"""The usage a renewal's draft is finalized with, measured when the scheduler claims its
finalization: each metered line's meter total for the invoice's customer over the line's
period (the period that ended), as a whole quantity (billing/invoices/lines.billable_quantity).

The totals come from ClickHouse through `MeterTotal` (analytics/queries.meter_total in
the scheduler). A scheduler without ClickHouse (chDB open in another process) cannot
measure: a claim of a draft with metered lines then fails, and is taken again by the next
pass of a scheduler that can (`billing dev`, or any process against a ClickHouse server)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import and_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoices.lines import billable_quantity
from billing.meters.usage import MeterTotal
from billing.models import Invoice, InvoiceLineItem, Meter, Price
from billing.scheduling.service import DueWork
from billing.subscriptions.periods import Period
from contracts.enums import UsageType
from contracts.invoices import InvoiceFinalizeDraft, MeteredUsage
from contracts.resources import Meter as MeterResource


class UsageUnavailable(RuntimeError):
    """A draft with metered lines, and no ClickHouse to measure them with."""


async def measure(session: AsyncSession, works: list[DueWork], meter_total: MeterTotal | None) -> list[DueWork]:
    """`works` with each draft finalization's usage measured (the rest as they are)."""
    drafts = [work for work in works if isinstance(work.command, InvoiceFinalizeDraft)]
    if not drafts:
        return works
    metered = await session.execute(
        select(
            Invoice.organization_id,
            Invoice.id,
            Invoice.customer_id,
            InvoiceLineItem.id,
            InvoiceLineItem.period_start,
            InvoiceLineItem.period_end,
            Meter,
        )
        .join(
            InvoiceLineItem,
            and_(InvoiceLineItem.organization_id == Invoice.organization_id, InvoiceLineItem.invoice_id == Invoice.id),
        )
        .join(
            Price, and_(Price.organization_id == InvoiceLineItem.organization_id, Price.id == InvoiceLineItem.price_id)
        )
        .join(Meter, and_(Meter.organization_id == Price.organization_id, Meter.id == Price.meter_id))
        .where(
            tuple_(Invoice.organization_id, Invoice.id).in_(
                [(work.organization_id, work.subject_id) for work in drafts]
            ),
            Price.recurring_usage_type == UsageType.metered,
        )
        .order_by(InvoiceLineItem.position)
    )
    usage: dict[tuple[str, str], list[MeteredUsage]] = {}
    for organization_id, invoice_id, customer_id, line_id, start, end, meter in metered:
        if meter_total is None:
            raise UsageUnavailable(
                f"invoice {invoice_id} has metered lines and this scheduler cannot read ClickHouse: it is finalized "
                "by a scheduler that can (billing dev, or any process against a ClickHouse server)"
            )
        total = await meter_total(organization_id, MeterResource.model_validate(meter), customer_id, Period(start, end))
        usage.setdefault((organization_id, invoice_id), []).append(
            MeteredUsage(line=line_id, quantity=billable_quantity(total))
        )
    return [
        dataclasses.replace(work, measured=work.command.model_copy(update={"usage": measured}))
        if (measured := usage.get((work.organization_id, work.subject_id)))
        else work
        for work in works
    ]
