"""/v1/setup-intents: a Stripe SetupIntent for one of our customers.

The frontend hands the answer's `clientSecret` to Stripe.js (`stripe.confirmSetup`), which
collects the card on the customer's device; Stripe then attaches the PaymentMethod to the
customer and tells us by webhook (payment_method.attached, setup_intent.succeeded), or the
organization's backend attaches it with POST /v1/customers/{id}/payment-methods.

The customer's Stripe customer is created on first use and recorded (gatewayCustomerId)
by a command. The SetupIntent itself is not stored: Stripe keeps it.
"""

from __future__ import annotations

from litestar import Controller, post
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Caller
from api.bus import CommandBus
from api.controllers.payment_methods import (
    customer_or_404,
    ensure_gateway_customer,
    gateway_key,
    organization_gateway,
    ours,
)
from api.params import IdempotencyKey
from billing.payments.gateway import GatewayError
from billing.payments.stripe_gateway import StripeGatewayPool
from contracts.payments import SetupIntent, SetupIntentCreate


class SetupIntentController(Controller):
    path = "/v1/setup-intents"
    tags = ["payment methods"]

    @post(
        "/", summary="Create a setup intent: a client secret for Stripe.js to collect a payment method", status_code=201
    )
    async def create(
        self,
        data: SetupIntentCreate,
        caller: Caller,
        bus: CommandBus,
        sessions: async_sessionmaker[AsyncSession],
        gateways: StripeGatewayPool,
        db: AsyncSession,
        idempotency_key: IdempotencyKey = None,
    ) -> SetupIntent:
        customer = await customer_or_404(db, data.customer, param="customer")
        gateway = await organization_gateway(sessions, gateways, db)
        gateway_customer = await ensure_gateway_customer(bus, caller, gateway, customer)
        metadata = {**data.metadata, "billing_customer_id": customer.id}
        try:
            intent = await gateway.create_setup_intent(
                gateway_customer,
                [t.value for t in data.paymentMethodTypes],
                gateway_key(caller, idempotency_key, "setup_intent"),
                usage=data.usage,
                metadata=metadata,
            )
        except GatewayError as error:
            raise ours(error) from None
        return SetupIntent(
            id=intent.id,
            clientSecret=intent.client_secret,
            status=intent.status,
            customer=customer.id,
            gatewayCustomerId=gateway_customer,
            paymentMethodTypes=[t.value for t in data.paymentMethodTypes],
            usage=intent.usage or data.usage,
        )
