"""/v1/customers/{id}/payment-methods: attach (by Stripe PaymentMethod id), list, get,
detach, and make one the customer's default.

The API talks to Stripe BEFORE it publishes the command, and the command carries Stripe's
answer (brand, last4, expiry, fingerprint...), so the consumer only writes rows. Each
Stripe call that changes something has an idempotency key derived from the command id
(the client's Idempotency-Key, scoped to its organization), so a retried request repeats
the same Stripe request. When Stripe cannot be reached the request fails with 503 and a
Retry-After header before anything is published: nothing is half-written.

Also the helpers the other payment controllers share: the organization's gateway, the
customer's Stripe customer (made on first use), gateway idempotency keys, and the
exception handler that answers gateway errors (Retry-After from Stripe's own).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Caller
from api.bus import CommandBus
from api.errors import error_response
from api.params import IdempotencyKey
from api.responses import command_response, list_response, run_command
from billing.db.pagination import PageRequest
from billing.db.sessions import tenant_of
from billing.errors import InvalidRequest, ResourceMissing
from billing.models import Customer
from billing.organizations import stripe_account
from billing.payments import repository, service
from billing.payments.gateway import (
    GatewayAuthenticationError,
    GatewayError,
    GatewayInvalidRequest,
    GatewayPaymentMethod,
    PaymentGateway,
)
from billing.payments.stripe_gateway import StripeGatewayPool, already_detached
from billing.secrets.encryption import SecretDecryptionError
from contracts.enums import PaymentMethodType
from contracts.envelopes import CommandOutcome, command_id_for
from contracts.payments import (
    AttachPaymentMethodCommand,
    DetachPaymentMethodCommand,
    GatewayPaymentMethodData,
    PaymentMethodAttach,
    SetDefaultPaymentMethodCommand,
    SetGatewayCustomerCommand,
)
from contracts.resources import Customer as ApiCustomer
from contracts.resources import CustomerPaymentMethod

log = logging.getLogger(__name__)

# Stripe's parameter names to ours, for errors Stripe answers about what the client sent.
_PARAMS = {"payment_method": "paymentMethod", "customer": "customer"}


# ---------------------------------------------------------------------------- shared helpers

GATEWAY_LOGGERS = ("stripe", "httpx", "httpcore")


def quiet_gateway_logging() -> None:
    """Keep Stripe's traffic out of the logs: the stripe SDK logs request parameters and
    response bodies at DEBUG (setup intents' client secrets, customer and PaymentMethod
    ids) and each URL at INFO, as httpx does. Those loggers keep warnings and errors only,
    whatever level the process logs at."""
    for name in GATEWAY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET (0) included
            logger.setLevel(logging.WARNING)


def on_gateway_error(request: Request[Any, Any, Any], exc: GatewayError) -> Response[dict[str, Any]]:
    """A gateway error in our shape; 503/429 carry Retry-After (Stripe's, or 1 s)."""
    headers = None
    if exc.status in (429, 503):
        headers = {"Retry-After": str(exc.retry_after or 1)}
    response = error_response(exc, headers)
    if exc.decline_code is not None:
        response.content["error"]["decline_code"] = exc.decline_code
    return response


def ours(error: GatewayError) -> GatewayError:
    """Stripe's param names turned into this API's (``payment_method`` -> ``paymentMethod``)."""
    if error.param in _PARAMS:
        error.param = _PARAMS[error.param]
    return error


async def customer_or_404(db: AsyncSession, customer_id: str, param: str = "customer") -> Customer:
    customer = await repository.get_live_customer(db, customer_id)
    if customer is None:
        raise ResourceMissing("customer", customer_id, param=param)
    return customer


async def organization_gateway(
    sessions: async_sessionmaker[AsyncSession], gateways: StripeGatewayPool, db: AsyncSession
) -> PaymentGateway:
    """The organization's Stripe account (400 gateway_not_configured when not connected)."""
    organization = await stripe_account.organization_with_secrets(sessions, tenant_of(db))
    try:
        return gateways.for_organization(organization)
    except SecretDecryptionError:
        raise GatewayAuthenticationError(
            "The stored Stripe secret key cannot be decrypted with the configured encryption keys. "
            "Connect the Stripe account again (PUT /v1/stripe-account).",
            code="gateway_key_unreadable",
        ) from None


def gateway_key(caller: Caller, idempotency_key: str | None, action: str) -> str:
    """The Stripe idempotency key of one call of a request: from the command id when the
    client sent an Idempotency-Key (a retry makes the same Stripe call), else fresh."""
    if idempotency_key:
        base = command_id_for(caller.organization_id, idempotency_key)
    else:
        base = "req_" + secrets.token_hex(16)
    return f"{base}:{action}"


async def ensure_gateway_customer(bus: CommandBus, caller: Caller, gateway: PaymentGateway, customer: Customer) -> str:
    """The customer's Stripe customer id, creating it (and recording it by a command) on first use.

    Its Stripe idempotency key comes from our customer id and what is sent, so two racing
    first requests make ONE Stripe customer; the first one recorded wins."""
    if customer.gateway_customer_id:
        return customer.gateway_customer_id
    metadata = {"billing_customer_id": customer.id, "billing_organization_id": caller.organization_id}
    digest = hashlib.sha256(json.dumps([customer.email, customer.name, metadata], sort_keys=True).encode()).hexdigest()[
        :16
    ]
    created = await gateway.create_customer(customer.email, customer.name, metadata, f"{customer.id}:customer:{digest}")
    command = SetGatewayCustomerCommand(customerId=customer.id, gatewayCustomerId=created)
    outcome = await bus.execute(caller.organization_id, caller.actor, command, None)
    if isinstance(outcome, CommandOutcome):
        command_response(outcome)  # raises the command's error, if it failed
        recorded = (outcome.result or {}).get("gatewayCustomerId")
        if recorded:
            return str(recorded)
    return created


def method_data(method: GatewayPaymentMethod) -> GatewayPaymentMethodData:
    kind = method.payment_method_type
    if kind is None:
        raise InvalidRequest(
            f"Payment methods of type '{method.type}' are not supported; supported: "
            f"{', '.join(t.value for t in PaymentMethodType)}.",
            code="payment_method_type_unsupported",
            param="paymentMethod",
        )
    return GatewayPaymentMethodData(
        gatewayPaymentMethodId=method.id,
        gatewayCustomerId=method.gateway_customer_id,
        type=kind,
        brand=method.brand,
        last4=method.last4,
        expMonth=method.exp_month,
        expYear=method.exp_year,
        country=method.country,
        fingerprint=method.fingerprint,
        billingDetails=method.billing_details,
    )


def _resource(row: object, status_code: int = 200) -> Response[CustomerPaymentMethod]:
    return Response(CustomerPaymentMethod.model_validate(row), status_code=status_code)


# ---------------------------------------------------------------------------- the controller


class PaymentMethodController(Controller):
    path = "/v1/customers/{customer_id:str}/payment-methods"
    tags = ["payment methods"]

    @post(
        "/",
        summary="Attach a Stripe PaymentMethod (pm_...) to a customer",
        description=(
            "Answers 201 with the stored payment method, or 200 with the customer's existing one when the customer "
            "already has this card (same fingerprint): a card is never attached twice."
        ),
        status_code=201,
    )
    async def attach(
        self,
        customer_id: str,
        data: PaymentMethodAttach,
        caller: Caller,
        bus: CommandBus,
        sessions: async_sessionmaker[AsyncSession],
        gateways: StripeGatewayPool,
        db: AsyncSession,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[CustomerPaymentMethod]:
        customer = await customer_or_404(db, customer_id, param="id")
        # a replay of an applied request repeats the same (idempotent) Stripe calls and is
        # then answered by the command bus with the first outcome; otherwise short cuts:
        earlier = await bus.earlier(caller.organization_id, idempotency_key)
        replay = earlier.outcome is not None
        if not replay:
            known = await repository.find_by_gateway_id(db, data.paymentMethod)
            if known is not None and known.customer_id == customer.id:
                return _resource(known)
            if known is not None:
                raise service.already_attached(data.paymentMethod, known.customer_id)
        gateway = await organization_gateway(sessions, gateways, db)
        try:
            found = await gateway.retrieve_payment_method(data.paymentMethod)
        except GatewayError as error:
            raise ours(error) from None
        method = method_data(found)
        if not replay:
            same_card = await repository.find_by_fingerprint(db, customer.id, method.fingerprint)
            if same_card is not None:
                return _resource(same_card)
        gateway_customer = await ensure_gateway_customer(bus, caller, gateway, customer)
        try:
            attached = await gateway.attach_payment_method(
                data.paymentMethod, gateway_customer, gateway_key(caller, idempotency_key, "attach")
            )
        except GatewayError as error:
            raise ours(error) from None
        command = AttachPaymentMethodCommand(
            customerId=customer.id, gatewayCustomerId=gateway_customer, method=method_data(attached)
        )
        outcome = await bus.execute(caller.organization_id, caller.actor, command, idempotency_key, earlier=earlier)
        response = command_response(outcome, created=True)
        if isinstance(outcome, CommandOutcome) and outcome.result:
            stored = outcome.result.get("gatewayPaymentMethodId")
            # (compared with Stripe's answer: a test token such as pm_card_visa attaches as a new pm_ id)
            if stored != attached.id:
                # a racing request stored the same card first: do not leave a second copy at Stripe
                response.status_code = 200
                await _detach_quietly(gateway, attached.id, gateway_key(caller, idempotency_key, "undo"))
        return response

    @get("/", summary="List a customer's payment methods, newest first")
    async def index(
        self,
        customer_id: str,
        db: AsyncSession,
        page_request: PageRequest,
        type: Annotated[PaymentMethodType | None, Parameter(query="type", required=False)] = None,
    ) -> dict[str, Any]:
        await customer_or_404(db, customer_id, param="id")
        page = await repository.list_payment_methods(db, customer_id, page_request, type=type)
        return list_response(page, CustomerPaymentMethod, f"/v1/customers/{customer_id}/payment-methods")

    @get("/{payment_method_id:str}", summary="Retrieve one of a customer's payment methods")
    async def retrieve(self, customer_id: str, payment_method_id: str, db: AsyncSession) -> CustomerPaymentMethod:
        await customer_or_404(db, customer_id, param="id")
        row = await repository.get_payment_method(db, customer_id, payment_method_id)
        if row is None:
            raise service.payment_method_missing(payment_method_id)
        return CustomerPaymentMethod.model_validate(row)

    @delete(
        "/{payment_method_id:str}",
        summary="Detach a payment method (at Stripe, then here)",
        description=(
            "Refused (400 payment_method_in_use) for the default payment method of a customer with live "
            "subscriptions, and for a method a live subscription uses: set another default first."
        ),
        status_code=200,
    )
    async def detach(
        self,
        customer_id: str,
        payment_method_id: str,
        caller: Caller,
        bus: CommandBus,
        sessions: async_sessionmaker[AsyncSession],
        gateways: StripeGatewayPool,
        db: AsyncSession,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[CustomerPaymentMethod]:
        command = DetachPaymentMethodCommand(customerId=customer_id, paymentMethodId=payment_method_id)
        # looked up once: a replay is answered with the first outcome without calling Stripe
        earlier = await bus.earlier(caller.organization_id, idempotency_key)
        if earlier.outcome is None:
            customer = await customer_or_404(db, customer_id, param="id")
            row = await repository.get_payment_method(db, customer_id, payment_method_id)
            if row is None:
                raise service.payment_method_missing(payment_method_id)
            await service.check_detachable(db, customer, row)  # before Stripe: refuse without detaching there
            gateway = await organization_gateway(sessions, gateways, db)
            try:
                await gateway.detach_payment_method(
                    row.gateway_payment_method_id, gateway_key(caller, idempotency_key, "detach")
                )
            except GatewayInvalidRequest as error:
                if not already_detached(error):
                    raise ours(error) from None
                # Stripe no longer has it attached (or at all): forget it here too
        return await run_command(bus, caller, command, idempotency_key, earlier=earlier)

    @post(
        "/{payment_method_id:str}/default",
        summary="Make a payment method the customer's default (invoiceSettings.defaultPaymentMethod)",
        status_code=200,
    )
    async def make_default(
        self,
        customer_id: str,
        payment_method_id: str,
        caller: Caller,
        bus: CommandBus,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ApiCustomer]:
        command = SetDefaultPaymentMethodCommand(customerId=customer_id, paymentMethodId=payment_method_id)
        return await run_command(bus, caller, command, idempotency_key)


async def _detach_quietly(gateway: PaymentGateway, gateway_pm_id: str, key: str) -> None:
    try:
        await gateway.detach_payment_method(gateway_pm_id, key)
    except GatewayError as error:
        log.warning("could not detach a duplicate payment method at the gateway: %s", error.code)


__all__ = [
    "PaymentMethodController",
    "customer_or_404",
    "ensure_gateway_customer",
    "gateway_key",
    "on_gateway_error",
    "organization_gateway",
    "ours",
    "quiet_gateway_logging",
]
