"""How a customer's invoices are collected, the rules every writer of one shares (a
subscription's first invoice, a one-off invoice, an invoice item). Pure, no I/O.

A customer bills in one currency (Stripe's rule): the first subscription or invoice fixes
it and later ones must match. `daysUntilDue` belongs to send_invoice, and only there.
"""

from __future__ import annotations

from billing.errors import InvalidRequest
from billing.money.currencies import currency_param
from contracts.enums import CollectionMethod


def billing_currency(customer_currency: str | None, asked: str | None, *defaults: str | None, what: str) -> str:
    """The currency of a new `what` (a subscription, an invoice item): as asked, else the
    customer's, else the first of `defaults` given; never other than the customer's."""
    if asked is not None:
        currency = currency_param(asked, "currency")
    else:
        found = next((c for c in (customer_currency, *defaults) if c is not None), None)
        if found is None:
            raise InvalidRequest(
                "currency is required: the customer has no currency yet.", code="parameter_missing", param="currency"
            )
        currency = found
    if customer_currency is not None and customer_currency != currency:
        raise InvalidRequest(
            f"The customer bills in {customer_currency}; {what} in {currency} cannot be added. "
            "A customer's subscriptions and invoices share one currency.",
            code="currency_mismatch",
            param="currency",
        )
    return currency


def check_collection(method: CollectionMethod, days_until_due: int | None) -> None:
    if method is CollectionMethod.send_invoice and days_until_due is None:
        raise InvalidRequest(
            "daysUntilDue is required when collectionMethod is send_invoice.",
            code="parameter_missing",
            param="daysUntilDue",
        )
    if method is CollectionMethod.charge_automatically and days_until_due is not None:
        raise InvalidRequest(
            "daysUntilDue applies only when collectionMethod is send_invoice.",
            code="parameter_invalid",
            param="daysUntilDue",
        )
