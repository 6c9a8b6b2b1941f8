"""The payment worker: charges recorded payment attempts, outside any transaction.

It reads `payment.created` from billing.events (its own consumer group), checks in a short
read that the attempt is still pending, calls the organization's gateway off session
with the attempt's idempotency key, and publishes the answer as a `payment.apply_outcome`
command whose id is derived from the payment: a redelivered event (a crash after the
call, before the offset was committed) calls again, the gateway answers the same
PaymentIntent, and the repeated command is answered as a duplicate. The check for
`pending` keeps an old event from charging again after the gateway's idempotency window.

A gateway that is unreachable is retried with backoff for a bounded time; after that the
attempt stays pending (nothing was charged, or the retry with the same key finds it) and
the message is left for redelivery by not committing it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing import clock
from billing.db.sessions import create_engine, create_session_factory, tenant_session
from billing.models import Customer, CustomerPaymentMethod, Payment
from billing.organizations.stripe_account import organization_with_secrets
from billing.payments.attempts import outcome_of
from billing.payments.gateway import GatewayError, GatewayUnavailable, PaymentResult
from billing.payments.stripe_gateway import StripeGatewayPool
from consumers.subscribers import event_or_none, wait_for_assignment
from contracts.enums import PaymentStatus
from contracts.envelopes import Actor, CommandEnvelope, command_id_for
from contracts.events import PAYMENT_CREATED
from contracts.invoices import PaymentOutcome
from contracts.settings import Settings, get_settings
from producers.publisher import Publisher, create_broker, publish_command, start_broker
from producers.topics import BILLING_EVENTS, topic

log = logging.getLogger(__name__)

PAYMENT_WORKER_GROUP = "billing-payment-worker"
GATEWAY_RETRY_SECONDS = 60.0
ACTOR = Actor(type="system", id="payment-worker")


@dataclass(frozen=True)
class Charge:
    """What the gateway needs for one pending attempt."""

    payment_id: str
    organization_id: str
    gateway_customer_id: str | None
    gateway_payment_method_id: str | None
    amount: int
    currency: str
    idempotency_key: str
    invoice_id: str


def outcome_command_id(organization_id: str, payment_id: str) -> str:
    """The outcome command's id: one per attempt, whoever publishes it."""
    return command_id_for(organization_id, f"payment-outcome:{payment_id}")


async def pending_charge(
    sessions: async_sessionmaker[AsyncSession], organization_id: str, payment_id: str
) -> Charge | None:
    """The attempt's charge if it is still pending (read in a transaction of its own that
    ends before the gateway is called)."""
    async with tenant_session(sessions, organization_id) as session, session.begin():
        payment = await session.get(Payment, payment_id)
        if payment is None or payment.status is not PaymentStatus.pending:
            return None
        customer = await session.get(Customer, payment.customer_id)
        method = (
            await session.get(CustomerPaymentMethod, payment.payment_method_id) if payment.payment_method_id else None
        )
        return Charge(
            payment.id,
            organization_id,
            customer.gateway_customer_id if customer else None,
            method.gateway_payment_method_id if method else None,
            payment.amount,
            payment.currency,
            payment.idempotency_key,
            payment.invoice_id,
        )


def _declined(charge: Charge, error: GatewayError) -> PaymentOutcome:
    return PaymentOutcome(
        payment=charge.payment_id,
        status="failed",
        failureCode=(error.code or "payment_failed")[:100],
        declineCode=error.decline_code,
        gatewayPaymentIntentId=error.payment_intent_id,
        failureMessage=error.message[:1000],
    )


async def charge(
    gateways: StripeGatewayPool, sessions: async_sessionmaker[AsyncSession], charge: Charge
) -> PaymentOutcome:
    """Calls the gateway (no transaction open) and answers the outcome to apply."""
    if charge.gateway_customer_id is None or charge.gateway_payment_method_id is None:
        return PaymentOutcome(
            payment=charge.payment_id,
            status="failed",
            failureCode="payment_method_unavailable",
            failureMessage="The customer has no Stripe customer or payment method to charge.",
        )
    organization = await organization_with_secrets(sessions, charge.organization_id)
    deadline = asyncio.get_running_loop().time() + GATEWAY_RETRY_SECONDS
    backoff = 0.5
    while True:
        try:
            gateway = gateways.for_organization(organization)
            result: PaymentResult = await gateway.charge_off_session(
                charge.gateway_customer_id,
                charge.gateway_payment_method_id,
                charge.amount,
                charge.currency,
                charge.idempotency_key,
                {"invoice": charge.invoice_id, "payment": charge.payment_id},
            )
            return outcome_of(charge.payment_id, result)
        except GatewayUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
        except GatewayError as error:  # a decline without a PaymentIntent, a refused key
            return _declined(charge, error)


def build_payment_worker(
    broker: KafkaBroker,
    publisher: Publisher,
    sessions: async_sessionmaker[AsyncSession],
    gateways: StripeGatewayPool,
    settings: Settings,
) -> Any:
    subscriber = broker.subscriber(
        topic(BILLING_EVENTS),
        group_id=f"{settings.kafka_topic_prefix}{PAYMENT_WORKER_GROUP}",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )

    @subscriber
    async def on_event(message: KafkaMessage) -> None:
        event = event_or_none(message.raw_message)
        if event is None or event.type != PAYMENT_CREATED.name:
            return
        payment_id = str(event.data["id"])
        pending = await pending_charge(sessions, event.organizationId, payment_id)
        if pending is None:
            return  # applied already (or unknown): nothing to charge
        outcome = await charge(gateways, sessions, pending)
        envelope = CommandEnvelope(
            commandId=outcome_command_id(event.organizationId, payment_id),
            type=outcome.command_type,
            organizationId=event.organizationId,
            actor=ACTOR,
            issuedAt=clock.now(),
            payload=outcome.payload(),
        )
        await publish_command(publisher, envelope)
        log.info("payment %s: %s", payment_id, outcome.status)

    return subscriber


async def run_payment_worker(
    stop: asyncio.Event, settings: Settings | None = None, ready: asyncio.Event | None = None
) -> None:
    """Runs until `stop` is set: part of `billing consume` and `billing dev`. `ready` is
    set once the worker holds its partitions."""
    settings = settings or get_settings()
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    broker = create_broker(settings)
    gateways = StripeGatewayPool(settings=settings)
    subscriber = build_payment_worker(broker, Publisher(broker), sessions, gateways, settings)
    if not await start_broker(broker, stop, "the payment worker"):
        await gateways.aclose()
        await engine.dispose()
        return
    try:
        await wait_for_assignment(subscriber)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await subscriber.stop()
        await broker.stop()
        await gateways.aclose()
        await engine.dispose()
