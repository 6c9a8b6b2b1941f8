"""Customer writes, called by the consumers inside the command's transaction.

Each function takes a tenant session, changes rows, and neither flushes nor commits:
the resources they return are complete in memory, and the consumer writes the rows of a
whole batch together.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import now
from billing.customers.repository import get_customer
from billing.db.sessions import get_one, tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.models import Customer, CustomerPaymentMethod, TestClock
from billing.requests.patch import merge_metadata, parse_changes
from contracts.customers import CustomerCreate, CustomerUpdate

# Request fields whose value is kept as JSON.
_JSON_FIELDS = {"address", "shipping", "invoiceSettings"}
_COLUMN_OF = {
    "email": "email",
    "name": "name",
    "phone": "phone",
    "description": "description",
    "address": "address",
    "shipping": "shipping",
    "balance": "balance",
    "invoicePrefix": "invoice_prefix",
    "invoiceSettings": "invoice_settings",
    "preferredLocales": "preferred_locales",
}


def record_default_payment_method(customer: Customer, payment_method_id: str | None) -> None:
    """The one writer of a customer's default payment method. It is kept twice, as the
    foreign key `defaultPaymentMethodId` and, as Stripe shows it, in
    `invoiceSettings.defaultPaymentMethod`; this keeps the two equal."""
    customer.default_payment_method_id = payment_method_id
    settings = dict(customer.invoice_settings or {})
    if payment_method_id is None:
        settings.pop("defaultPaymentMethod", None)
    else:
        settings["defaultPaymentMethod"] = payment_method_id
    customer.invoice_settings = settings  # a new dict: JSONB changes are tracked by assignment


def _json(value: Any) -> Any:
    return value.model_dump(mode="json", exclude_none=True) if hasattr(value, "model_dump") else value


async def _check_default_payment_method(session: AsyncSession, customer_id: str, payment_method_id: str) -> None:
    method = await session.get(CustomerPaymentMethod, payment_method_id)
    if method is None or method.customer_id != customer_id:
        raise InvalidRequest(
            f"The payment method '{payment_method_id}' is not attached to customer '{customer_id}'.",
            code="resource_missing",
            param="invoiceSettings[defaultPaymentMethod]",
        )


async def create_customer(session: AsyncSession, data: CustomerCreate) -> Customer:
    if data.invoiceSettings and data.invoiceSettings.defaultPaymentMethod:
        # a new customer has no payment method yet: Stripe refuses this too
        raise InvalidRequest(
            "A new customer has no attached payment method to make its default.",
            code="resource_missing",
            param="invoiceSettings[defaultPaymentMethod]",
        )
    if data.testClock is not None and await get_one(session, TestClock, TestClock.id, data.testClock) is None:
        raise ResourceMissing("test_clock", data.testClock, param="testClock")
    created = now()
    # every column is given, so the resource is complete without a round trip: the
    # consumer writes a batch's rows together
    customer = Customer(
        id=new_id("customer"),
        organization_id=tenant_of(session),
        email=data.email,
        name=data.name,
        phone=data.phone,
        description=data.description,
        address=_json(data.address),
        shipping=_json(data.shipping),
        metadata_=data.metadata,
        currency=None,
        balance=data.balance,
        invoice_prefix=data.invoicePrefix,
        invoice_settings=_json(data.invoiceSettings) or {},
        preferred_locales=list(data.preferredLocales),
        default_payment_method_id=None,
        gateway_customer_id=None,
        test_clock_id=data.testClock,
        deleted=False,
        deleted_at=None,
        created_at=created,
        updated_at=created,
    )
    session.add(customer)
    return customer


async def _live_customer(session: AsyncSession, customer_id: str) -> Customer:
    customer = await get_customer(session, customer_id, for_update=True)
    if customer is None or customer.deleted:
        raise ResourceMissing("customer", customer_id)
    return customer


async def update_customer(session: AsyncSession, customer_id: str, changes: dict[str, Any]) -> tuple[Customer, bool]:
    """`changes` holds only the fields the client sent; null clears a field. The customer,
    and whether it has a new default payment method (dunning tries it at once)."""
    update = parse_changes(CustomerUpdate, changes)
    customer = await _live_customer(session, customer_id)
    default_before = customer.default_payment_method_id
    for field in update.model_fields_set:
        value = getattr(update, field)
        if field == "metadata":
            customer.metadata_ = merge_metadata(customer.metadata_, value)
        elif field == "invoiceSettings":
            settings = _json(value) or {}
            default = settings.pop("defaultPaymentMethod", None)
            if default:
                await _check_default_payment_method(session, customer.id, default)
            customer.invoice_settings = settings
            record_default_payment_method(customer, default)
        elif field == "preferredLocales":
            customer.preferred_locales = list(value or [])  # null clears: no preference
        elif field == "balance" and value is None:
            raise InvalidRequest("balance cannot be null.", code="parameter_invalid_integer", param="balance")
        else:
            setattr(customer, _COLUMN_OF[field], _json(value) if field in _JSON_FIELDS else value)
    customer.updated_at = now()
    new_default = customer.default_payment_method_id not in (None, default_before)
    return customer, new_default


async def delete_customer(session: AsyncSession, customer_id: str) -> Customer:
    customer = await _live_customer(session, customer_id)
    customer.deleted = True
    customer.deleted_at = customer.updated_at = now()
    return customer
