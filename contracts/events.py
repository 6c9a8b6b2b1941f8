"""Domain events, each type defined once: `CUSTOMER_CREATED.of(resource)` is what a
handler emits, `EVENT_TYPES` every type the consumer may put on `billing.events`.

`EventType[R]` names the resource its data is (the same JSON the API returns for it), so
`Applied[Customer]` and `CUSTOMER_UPDATED` say in one place what a subscriber receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, get_args

from contracts.billing_settings import BillingSettings
from contracts.credit_notes import CreditNoteDetails
from contracts.invoices import InvoiceDetails
from contracts.payments import StripeAccount
from contracts.resources import (
    ApiKey,
    Customer,
    CustomerPaymentMethod,
    ExchangeRate,
    InvoiceItem,
    Meter,
    Payment,
    Price,
    Product,
    ProductAttributeDefinition,
    Refund,
    TaxRate,
    TestClock,
    WebhookEndpoint,
)
from contracts.subscription_schedules import SubscriptionScheduleDetails
from contracts.subscriptions import SubscriptionDetails

DataT = TypeVar("DataT")

EVENT_TYPES: dict[str, EventType[Any]] = {}


class EventType(Generic[DataT]):
    """One kind of fact; `DataT` is the resource its `data` carries."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if name in EVENT_TYPES:
            raise TypeError(f"event type {name} is defined twice")
        self.name = name
        EVENT_TYPES[name] = self

    def of(self, data: dict[str, Any]) -> DomainEvent:
        return DomainEvent(self.name, data)

    def __repr__(self) -> str:
        return f"EventType({self.name!r})"


@dataclass(frozen=True, slots=True)
class DomainEvent:
    type: str
    data: dict[str, Any]


# a command's outcome, correlated by commandId: the API waits for one of these (the
# envelope's schema needs the names as a Literal, so they are spelt there)
OutcomeEventType = Literal["command.succeeded", "command.failed"]
COMMAND_SUCCEEDED: EventType[dict[str, Any]]
COMMAND_FAILED: EventType[dict[str, Any]]
COMMAND_SUCCEEDED, COMMAND_FAILED = (EventType(name) for name in get_args(OutcomeEventType))

CUSTOMER_CREATED: EventType[Customer] = EventType("customer.created")
CUSTOMER_UPDATED: EventType[Customer] = EventType("customer.updated")
CUSTOMER_DELETED: EventType[Customer] = EventType("customer.deleted")

API_KEY_CREATED: EventType[ApiKey] = EventType("api_key.created")
API_KEY_ROLLED: EventType[ApiKey] = EventType("api_key.rolled")
API_KEY_REVOKED: EventType[ApiKey] = EventType("api_key.revoked")
BILLING_SETTINGS_UPDATED: EventType[BillingSettings] = EventType("billing_settings.updated")

METER_CREATED: EventType[Meter] = EventType("meter.created")
METER_UPDATED: EventType[Meter] = EventType("meter.updated")

PRODUCT_ATTRIBUTE_CREATED: EventType[ProductAttributeDefinition] = EventType("product_attribute.created")
PRODUCT_ATTRIBUTE_UPDATED: EventType[ProductAttributeDefinition] = EventType("product_attribute.updated")
PRODUCT_ATTRIBUTE_DELETED: EventType[dict[str, Any]] = EventType("product_attribute.deleted")
PRODUCT_CREATED: EventType[Product] = EventType("product.created")
PRODUCT_UPDATED: EventType[Product] = EventType("product.updated")
PRODUCT_DELETED: EventType[dict[str, Any]] = EventType("product.deleted")
PRICE_CREATED: EventType[Price] = EventType("price.created")
PRICE_UPDATED: EventType[Price] = EventType("price.updated")
PRICE_DELETED: EventType[dict[str, Any]] = EventType("price.deleted")
EXCHANGE_RATE_CREATED: EventType[ExchangeRate] = EventType("exchange_rate.created")

PAYMENT_METHOD_ATTACHED: EventType[CustomerPaymentMethod] = EventType("payment_method.attached")
PAYMENT_METHOD_UPDATED: EventType[CustomerPaymentMethod] = EventType("payment_method.updated")
PAYMENT_METHOD_DETACHED: EventType[CustomerPaymentMethod] = EventType("payment_method.detached")
SETUP_INTENT_SUCCEEDED: EventType[dict[str, Any]] = EventType("setup_intent.succeeded")
PAYMENT_SUCCEEDED: EventType[dict[str, Any]] = EventType("payment.succeeded")
PAYMENT_FAILED: EventType[dict[str, Any]] = EventType("payment.failed")

STRIPE_ACCOUNT_CONNECTED: EventType[StripeAccount] = EventType("stripe_account.connected")
STRIPE_ACCOUNT_DISCONNECTED: EventType[StripeAccount] = EventType("stripe_account.disconnected")

SUBSCRIPTION_CREATED: EventType[SubscriptionDetails] = EventType("customer.subscription.created")
SUBSCRIPTION_UPDATED: EventType[SubscriptionDetails] = EventType("customer.subscription.updated")
SUBSCRIPTION_DELETED: EventType[SubscriptionDetails] = EventType("customer.subscription.deleted")
SUBSCRIPTION_PAUSED: EventType[SubscriptionDetails] = EventType("customer.subscription.paused")
SUBSCRIPTION_RESUMED: EventType[SubscriptionDetails] = EventType("customer.subscription.resumed")
SUBSCRIPTION_TRIAL_WILL_END: EventType[SubscriptionDetails] = EventType("customer.subscription.trial_will_end")

# Stripe's names: test clocks are test helpers
TEST_CLOCK_CREATED: EventType[TestClock] = EventType("test_helpers.test_clock.created")
TEST_CLOCK_ADVANCING: EventType[TestClock] = EventType("test_helpers.test_clock.advancing")
TEST_CLOCK_READY: EventType[TestClock] = EventType("test_helpers.test_clock.ready")
TEST_CLOCK_DELETED: EventType[TestClock] = EventType("test_helpers.test_clock.deleted")

SUBSCRIPTION_SCHEDULE_CREATED: EventType[SubscriptionScheduleDetails] = EventType("subscription_schedule.created")
SUBSCRIPTION_SCHEDULE_UPDATED: EventType[SubscriptionScheduleDetails] = EventType("subscription_schedule.updated")
SUBSCRIPTION_SCHEDULE_RELEASED: EventType[SubscriptionScheduleDetails] = EventType("subscription_schedule.released")
SUBSCRIPTION_SCHEDULE_CANCELED: EventType[SubscriptionScheduleDetails] = EventType("subscription_schedule.canceled")
# the last phase ended; endBehavior then released the subscription or canceled it
SUBSCRIPTION_SCHEDULE_COMPLETED: EventType[SubscriptionScheduleDetails] = EventType("subscription_schedule.completed")

WEBHOOK_ENDPOINT_CREATED: EventType[WebhookEndpoint] = EventType("webhook_endpoint.created")
WEBHOOK_ENDPOINT_UPDATED: EventType[WebhookEndpoint] = EventType("webhook_endpoint.updated")
WEBHOOK_ENDPOINT_DELETED: EventType[WebhookEndpoint] = EventType("webhook_endpoint.deleted")
# every delivery failed for five days (billing/notifications/schedule.py): sent once
WEBHOOK_ENDPOINT_DISABLED: EventType[WebhookEndpoint] = EventType("webhook_endpoint.disabled")

TAX_RATE_CREATED: EventType[TaxRate] = EventType("tax_rate.created")
TAX_RATE_UPDATED: EventType[TaxRate] = EventType("tax_rate.updated")

INVOICE_CREATED: EventType[InvoiceDetails] = EventType("invoice.created")
INVOICE_FINALIZED: EventType[InvoiceDetails] = EventType("invoice.finalized")
INVOICE_PAID: EventType[InvoiceDetails] = EventType("invoice.paid")
INVOICE_VOIDED: EventType[InvoiceDetails] = EventType("invoice.voided")
INVOICE_PAYMENT_FAILED: EventType[InvoiceDetails] = EventType("invoice.payment_failed")
INVOICE_PAYMENT_ACTION_REQUIRED: EventType[InvoiceDetails] = EventType("invoice.payment_action_required")
INVOICE_MARKED_UNCOLLECTIBLE: EventType[InvoiceDetails] = EventType("invoice.marked_uncollectible")
INVOICE_DELETED: EventType[InvoiceDetails] = EventType("invoice.deleted")
# a finalized invoice's amounts changed (a credit note issued or voided)
INVOICE_UPDATED: EventType[InvoiceDetails] = EventType("invoice.updated")
INVOICE_ITEM_CREATED: EventType[InvoiceItem] = EventType("invoiceitem.created")
INVOICE_ITEM_DELETED: EventType[InvoiceItem] = EventType("invoiceitem.deleted")

# an attempt to collect an invoice, recorded before the gateway is called: the payment
# worker acts on payment.created; payment.updated carries the gateway's answer
PAYMENT_CREATED: EventType[Payment] = EventType("payment.created")
PAYMENT_UPDATED: EventType[Payment] = EventType("payment.updated")
# a refund recorded after Stripe made it (its payment's amountRefunded follows in payment.updated)
REFUND_CREATED: EventType[Refund] = EventType("refund.created")
CREDIT_NOTE_CREATED: EventType[CreditNoteDetails] = EventType("credit_note.created")
CREDIT_NOTE_VOIDED: EventType[CreditNoteDetails] = EventType("credit_note.voided")
