"""Payment requests: the API's request bodies and the payloads of the payment commands.

Card numbers never reach us: a payment method is a gateway token (a Stripe PaymentMethod
id, ``pm_...``) that Stripe.js made on the customer's device. The API calls the gateway
first and the command carries the gateway's answer (brand, last4, expiry, fingerprint...),
so the consumers stay database-only.

The resources that come back are `contracts.resources.CustomerPaymentMethod` and
`contracts.resources.Customer` (generated from Prisma), a setup intent (`SetupIntent`
below: its client secret goes to the browser) and the organization's Stripe account
(`StripeAccount` below: never the secrets, only whether they are set and the key's last 4).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from contracts.commands import Command
from contracts.common import Metadata, RequestModel
from contracts.enums import PaymentMethodType
from contracts.resources import Customer, CustomerPaymentMethod

# A gateway object id: letters, digits, underscores (never anything that changes a URL).
GATEWAY_ID_PATTERN = r"^[A-Za-z0-9_]{1,255}$"
# Stripe secret keys (sk_) and restricted keys (rk_), test or live mode.
STRIPE_SECRET_KEY_PATTERN = r"^(sk|rk)_(test|live)_[A-Za-z0-9]{1,240}$"
STRIPE_WEBHOOK_SECRET_PATTERN = r"^whsec_[A-Za-z0-9+/=_\-]{1,240}$"


# ---------------------------------------------------------------------------- API requests


class SetupIntentCreate(RequestModel):
    """POST /v1/setup-intents: a client secret for Stripe.js to collect a payment method."""

    customer: str = Field(min_length=1, max_length=64, description="Our customer id (cus_...)")
    paymentMethodTypes: list[PaymentMethodType] = Field(
        default_factory=lambda: [PaymentMethodType.card], min_length=1, max_length=4
    )
    usage: Literal["off_session", "on_session"] = "off_session"
    metadata: Metadata = Field(default_factory=dict)


class PaymentMethodAttach(RequestModel):
    """POST /v1/customers/{id}/payment-methods: attach a Stripe PaymentMethod by its id."""

    paymentMethod: str = Field(pattern=GATEWAY_ID_PATTERN, description="The Stripe PaymentMethod id (pm_...)")


class StripeAccountConnect(RequestModel):
    """PUT /v1/stripe-account: the organization's Stripe secret key and webhook signing secret.

    Stored encrypted; never returned."""

    secretKey: str = Field(
        pattern=STRIPE_SECRET_KEY_PATTERN, description="sk_test_..., sk_live_... or a restricted rk_ key"
    )
    webhookSecret: str = Field(
        pattern=STRIPE_WEBHOOK_SECRET_PATTERN, description="The endpoint's signing secret, whsec_..."
    )


# ---------------------------------------------------------------------------- responses (not stored)


class SetupIntent(BaseModel):
    object: Literal["setup_intent"] = "setup_intent"
    id: str
    clientSecret: str | None
    status: str
    customer: str
    gatewayCustomerId: str
    paymentMethodTypes: list[str]
    usage: str | None


class StripeAccount(BaseModel):
    object: Literal["stripe_account"] = "stripe_account"
    connected: bool
    mode: Literal["test", "live"] | None = None
    secretKeyLast4: str | None = None
    webhookSecretConfigured: bool = False
    webhookUrl: str


# ---------------------------------------------------------------------------- command payloads


class GatewayPaymentMethodData(RequestModel):
    """What we keep of a gateway payment method (the gateway's answer, never a number)."""

    gateway: Literal["stripe"] = "stripe"
    gatewayPaymentMethodId: str = Field(pattern=GATEWAY_ID_PATTERN)
    gatewayCustomerId: str | None = Field(default=None, max_length=255)
    type: PaymentMethodType
    brand: str | None = Field(default=None, max_length=32)
    last4: str | None = Field(default=None, max_length=4)
    expMonth: int | None = Field(default=None, ge=1, le=12)
    expYear: int | None = Field(default=None, ge=1970, le=9999)
    country: str | None = Field(default=None, max_length=2)
    fingerprint: str | None = Field(default=None, max_length=64)
    billingDetails: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)


class SetGatewayCustomerCommand(Command[Customer]):
    """Record the Stripe customer made for our customer.

    A customer that already has one keeps it (two racing requests: the first recorded wins)."""

    command_type: ClassVar[str] = "customer.set_gateway_customer"

    customerId: str = Field(max_length=64)
    gatewayCustomerId: str = Field(pattern=GATEWAY_ID_PATTERN)


class AttachPaymentMethodCommand(Command[CustomerPaymentMethod]):
    """The API attached `method` at the gateway; store it."""

    command_type: ClassVar[str] = "payment_method.attach"

    customerId: str = Field(max_length=64)
    gatewayCustomerId: str = Field(pattern=GATEWAY_ID_PATTERN)
    method: GatewayPaymentMethodData


class DetachPaymentMethodCommand(Command[CustomerPaymentMethod]):
    """The API detached it at the gateway; forget it."""

    command_type: ClassVar[str] = "payment_method.detach"

    customerId: str = Field(max_length=64)
    paymentMethodId: str = Field(max_length=64)


class SetDefaultPaymentMethodCommand(Command[Customer]):
    command_type: ClassVar[str] = "payment_method.set_default"

    customerId: str = Field(max_length=64)
    paymentMethodId: str = Field(max_length=64)


class ConnectStripeAccountCommand(Command[StripeAccount]):
    """The secrets arrive ENCRYPTED (by the API, under the key ring); the plaintexts never
    cross Kafka."""

    command_type: ClassVar[str] = "stripe_account.connect"

    secretKeyEncrypted: str = Field(min_length=1, max_length=4096)
    webhookSecretEncrypted: str = Field(min_length=1, max_length=4096)
    secretKeyLast4: str = Field(min_length=1, max_length=4)
    mode: Literal["test", "live"]


class DisconnectStripeAccountCommand(Command[StripeAccount]):
    command_type: ClassVar[str] = "stripe_account.disconnect"


# -- from Stripe webhooks (billing.payments.webhooks.stripe_event_to_command builds these payloads)


class StripeEventFields(RequestModel):
    stripeEventId: str = Field(min_length=1, max_length=64)
    occurredAt: datetime | None = None
    livemode: bool = False
    stripeAccount: str | None = Field(default=None, max_length=255)


class StripePaymentMethodEvent(StripeEventFields, GatewayPaymentMethodData):
    """A payment method as a Stripe event describes it."""


class SyncPaymentMethodAttached(StripePaymentMethodEvent, Command[dict[str, Any]]):
    command_type: ClassVar[str] = "payment_method.sync_attached"


class SyncPaymentMethodUpdated(StripePaymentMethodEvent, Command[dict[str, Any]]):
    """Stripe's payment_method.updated and payment_method.automatically_updated."""

    command_type: ClassVar[str] = "payment_method.sync_updated"


class SyncPaymentMethodDetached(StripePaymentMethodEvent, Command[dict[str, Any]]):
    command_type: ClassVar[str] = "payment_method.sync_detached"


class RecordSetupIntentSucceeded(StripeEventFields, Command[dict[str, Any]]):
    command_type: ClassVar[str] = "setup_intent.record_succeeded"

    gatewaySetupIntentId: str = Field(max_length=255)
    gatewayCustomerId: str | None = Field(default=None, max_length=255)
    gatewayPaymentMethodId: str | None = Field(default=None, max_length=255)
    status: str | None = Field(default=None, max_length=64)
    usage: str | None = Field(default=None, max_length=64)
    metadata: dict[str, str] = Field(default_factory=dict)


class StripePaymentEvent(StripeEventFields):
    """A payment intent as a Stripe event describes it."""

    gatewayPaymentIntentId: str = Field(max_length=255)
    gatewayCustomerId: str | None = Field(default=None, max_length=255)
    gatewayPaymentMethodId: str | None = Field(default=None, max_length=255)
    status: str = Field(max_length=64)
    amount: int
    amountReceived: int | None = None
    currency: str = Field(max_length=3)
    latestChargeId: str | None = Field(default=None, max_length=255)
    metadata: dict[str, str] = Field(default_factory=dict)
    failureCode: str | None = Field(default=None, max_length=255)
    declineCode: str | None = Field(default=None, max_length=255)
    failureMessage: str | None = Field(default=None, max_length=5000)


class RecordPaymentSucceeded(StripePaymentEvent, Command[dict[str, Any]]):
    command_type: ClassVar[str] = "payment.record_succeeded"


class RecordPaymentFailed(StripePaymentEvent, Command[dict[str, Any]]):
    command_type: ClassVar[str] = "payment.record_failed"


__all__ = [
    "GATEWAY_ID_PATTERN",
    "STRIPE_SECRET_KEY_PATTERN",
    "STRIPE_WEBHOOK_SECRET_PATTERN",
    "AttachPaymentMethodCommand",
    "ConnectStripeAccountCommand",
    "DetachPaymentMethodCommand",
    "DisconnectStripeAccountCommand",
    "GatewayPaymentMethodData",
    "PaymentMethodAttach",
    "RecordPaymentFailed",
    "RecordPaymentSucceeded",
    "RecordSetupIntentSucceeded",
    "SetDefaultPaymentMethodCommand",
    "SetGatewayCustomerCommand",
    "SetupIntent",
    "SetupIntentCreate",
    "StripeAccount",
    "StripeAccountConnect",
    "StripeEventFields",
    "StripePaymentEvent",
    "StripePaymentMethodEvent",
    "SyncPaymentMethodAttached",
    "SyncPaymentMethodDetached",
    "SyncPaymentMethodUpdated",
]
