"""The upcoming-invoice preview of a plan change equals, line by line and to the minor
unit, the invoice that change then really creates: at once (always_invoice), or at the
next renewal (create_prorations, none). Random flat prices in currencies of 2, 0 and 3
decimals, quantities, tax rates (the subscription's and an item's own), the customer's
balance, the change (a quantity, a price swapped, an item added or removed) and the
instant it is prorated at.

Each step calls what the API or the command consumer calls (the preview, then the
update, then the renewal command's service and the finalization of its draft), on a tenant session of its own, with the
moment it happens at passed in as a test clock would give it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.customers.service import create_customer
from billing.invoices import drafts
from billing.invoices.preview import upcoming_invoice
from billing.invoices.repository import get_invoice
from billing.subscriptions import renewals, service
from billing.subscriptions.periods import Interval, Period, first_period, milliseconds_between
from billing.tax_rates.service import create_tax_rate
from contracts.customers import CustomerCreate
from contracts.enums import ProrationBehavior, RecurringInterval
from contracts.invoices import InvoiceDetails, InvoiceFinalizeDraft, InvoicePreview, UpcomingInvoiceRequest
from contracts.subscriptions import SubscriptionCreate, SubscriptionRenew
from contracts.tax_rates import TaxRateCreate
from tests.api.conftest import new_tenant
from tests.api.test_plan_changes import COMPARED
from tests.billing.catalog.test_service import Org, price, product

MONTH = Interval(RecurringInterval.month, 1)
# what a line must agree on beyond the API tests' COMPARED (its item's id is compared apart:
# an added item's is only made by the change)
LINE_FIELDS = (*COMPARED, "unitAmountDecimal", "taxAmounts")
INVOICE_FIELDS = (
    "currency",
    "billingReason",
    "periodStart",
    "periodEnd",
    "subtotal",
    "tax",
    "total",
    "startingBalance",
    "endingBalance",
    "amountDue",
)
NEW_ITEM = "the item the change adds"


@dataclass(frozen=True)
class ItemCase:
    unit_amount: int
    quantity: int
    tax_rate: TaxRateCreate | None  # the item's own, in place of the subscription's default


@dataclass(frozen=True)
class ChangeCase:
    kind: Literal["quantity", "price", "add", "remove"]
    index: int  # the item changed or removed
    quantity: int  # the changed item's (quantity) or the added one's (add)
    unit_amount: int  # the new price's (price, add)


@dataclass(frozen=True)
class Case:
    currency: str
    items: list[ItemCase]
    default_tax_rate: TaxRateCreate | None
    balance: int  # the customer's, before the first invoice takes from it
    started: datetime
    change: ChangeCase
    at: datetime  # the proration instant, inside the first period
    behavior: ProrationBehavior


unit_amounts = st.integers(1, 10**7)
quantities = st.integers(0, 100)
tax_rates = st.none() | st.builds(
    TaxRateCreate,
    displayName=st.just("VAT"),
    percentage=st.integers(0, 100 * 10**4).map(lambda n: Decimal(n).scaleb(-4)),  # four places, as allowed
    inclusive=st.booleans(),
)
# at the columns' precision (timestamptz(3)), as billing.clock gives it; month ends included
instants = st.integers(0, 3 * 366 * 86_400_000).map(
    lambda ms: datetime(2025, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
)


@st.composite
def changes(draw: st.DrawFn, items: list[ItemCase]) -> ChangeCase:
    kinds: list[Literal["quantity", "price", "add", "remove"]] = ["quantity", "price", "add"]
    if len(items) > 1:  # a subscription keeps one item at least
        kinds.append("remove")
    kind = draw(st.sampled_from(kinds))
    index = draw(st.integers(0, len(items) - 1))
    # a quantity change changes it: another quantity
    quantity = quantities.filter(lambda q: q != items[index].quantity) if kind == "quantity" else quantities
    return ChangeCase(kind, index, draw(quantity), draw(unit_amounts))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    items = draw(st.lists(st.builds(ItemCase, unit_amounts, quantities, tax_rates), min_size=1, max_size=3))
    started = draw(instants)
    period = first_period(started, MONTH)
    at = period.start + timedelta(milliseconds=draw(st.integers(0, milliseconds_between(period.start, period.end) - 1)))
    return Case(
        currency=draw(st.sampled_from(["usd", "jpy", "kwd"])),
        items=items,
        default_tax_rate=draw(tax_rates),
        balance=draw(st.integers(-(10**7), 10**7)),
        started=started,
        change=draw(changes(items)),
        at=at,
        behavior=draw(st.sampled_from(list(ProrationBehavior))),
    )


@pytest.fixture
async def org(session_factory: Any) -> Org:
    tenant = await new_tenant(session_factory, "Preview equals invoice")
    return Org(session_factory, tenant.organization_id)


async def new_price(org: Org, currency: str, unit_amount: int) -> str:
    made = await product(org, name=f"Plan at {unit_amount}")
    return (await price(org, made.id, currency=currency, unitAmount=unit_amount, recurring={"interval": "month"})).id


async def new_tax_rate(org: Org, rate: TaxRateCreate | None) -> list[str]:
    if rate is None:
        return []
    return [(await org.run(lambda s: create_tax_rate(s, rate))).id]


async def subscribe(org: Org, case: Case) -> tuple[str, str, list[str], Period]:
    """The customer, subscription, item ids and first period of the case."""
    customer = await org.run(lambda s: create_customer(s, CustomerCreate(balance=case.balance)))
    items = [
        {
            "price": await new_price(org, case.currency, item.unit_amount),
            "quantity": item.quantity,
            "taxRates": await new_tax_rate(org, item.tax_rate),
        }
        for item in case.items
    ]
    command = SubscriptionCreate.model_validate(
        {
            "customer": customer.id,
            "items": items,
            "collectionMethod": "send_invoice",
            "daysUntilDue": 30,
            "defaultTaxRates": await new_tax_rate(org, case.default_tax_rate),
        }
    )
    created = await org.run(lambda s: service.create_subscription(s, command, case.started))
    period = Period(created.subscription.current_period_start, created.subscription.current_period_end)
    return customer.id, created.subscription.id, [item.id for item in created.items], period


async def item_changes(org: Org, case: Case, item_ids: list[str]) -> list[dict[str, Any]]:
    change = case.change
    if change.kind == "quantity":
        return [{"id": item_ids[change.index], "quantity": change.quantity}]
    if change.kind == "price":
        return [{"id": item_ids[change.index], "price": await new_price(org, case.currency, change.unit_amount)}]
    if change.kind == "add":
        return [{"price": await new_price(org, case.currency, change.unit_amount), "quantity": change.quantity}]
    return [{"id": item_ids[change.index], "deleted": True}]


def as_compared(document: InvoicePreview | InvoiceDetails, item_ids: list[str]) -> dict[str, Any]:
    """What the preview and the invoice must agree on, as the API answers it (JSON)."""
    body = document.model_dump(mode="json")
    lines = [
        {
            **{field: line[field] for field in LINE_FIELDS},
            "subscriptionItemId": line["subscriptionItemId"] if line["subscriptionItemId"] in item_ids else NEW_ITEM,
        }
        for line in body["lines"]
    ]
    return {**{field: body[field] for field in INVOICE_FIELDS}, "lines": lines}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
async def test_the_preview_of_a_change_is_the_invoice_it_creates(org: Org, case: Case) -> None:
    customer_id, subscription_id, item_ids, period = await subscribe(org, case)
    items = await item_changes(org, case, item_ids)
    # as the API sends them: the preview's request, and the update's command payload (JSON)
    request = UpcomingInvoiceRequest.model_validate(
        {
            "customer": customer_id,
            "subscription": subscription_id,
            "subscriptionItems": items,
            "subscriptionProrationBehavior": case.behavior,
            "subscriptionProrationDate": case.at,
        }
    )
    update = {"items": items, "prorationBehavior": case.behavior.value, "prorationDate": case.at.isoformat()}
    preview = await org.run(lambda s: upcoming_invoice(s, request, case.at))

    changed = await org.run(lambda s: service.update_subscription(s, subscription_id, update, case.at))
    if case.behavior is ProrationBehavior.always_invoice:
        invoice = changed.invoice
    else:
        assert changed.invoice is None  # the change waits for the renewal
        renewal = SubscriptionRenew(id=subscription_id, periodEnd=period.end)
        invoice = (await org.run(lambda s: renewals.renew_subscription(s, renewal, period.end))).invoice
        # then its draft period ends and the scheduler's command finalizes it (the balance applied)
        assert invoice is not None and invoice.automatically_finalizes_at is not None
        finalizing = InvoiceFinalizeDraft(id=invoice.id, automaticallyFinalizesAt=invoice.automatically_finalizes_at)
        await org.run(lambda s: drafts.finalize_draft(s, finalizing, finalizing.automaticallyFinalizesAt))
    assert invoice is not None
    invoiced = await org.run(lambda s: get_invoice(s, invoice.id))
    assert invoiced is not None
    assert as_compared(invoiced, item_ids) == as_compared(preview, item_ids), case
