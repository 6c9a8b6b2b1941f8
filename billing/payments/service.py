"""Payment method writes, called by the consumers inside the command's transaction.

Each function takes a tenant session, changes rows and never commits; none calls the
gateway. The API has already talked to Stripe and the command carries its answer
(`contracts.payments`), so applying a command is a few fast database statements.

Rules kept here, in one place:

- a customer has at most one payment method per card: attaching one whose fingerprint the
  customer already has answers the existing method (`AttachResult.created` False);
- a gateway payment method belongs to one of our customers (unique per organization):
  attaching it to another is refused, as Stripe refuses it;
- the customer's default payment method lives in two places that must agree, written only
  by billing.customers.service.record_default_payment_method;
- detaching the default payment method of a customer that has live subscriptions (any
  status but canceled and incomplete_expired), or a method a live subscription names as
  its own default, is refused (`PaymentMethodInUse`): set another default first;
- webhook events (Stripe delivers at least once and in no particular order) never undo a
  newer state: a PaymentMethod detached once is gone for good (Stripe cannot re-attach a
  detached PaymentMethod), and an event older than one already applied to the same
  payment method is recorded but ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.customers.service import record_default_payment_method
from billing.db.sessions import tenant_of
from billing.errors import Conflict, InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.models import Customer, CustomerPaymentMethod
from billing.payments import repository
from contracts.events import (
    PAYMENT_FAILED,
    PAYMENT_METHOD_ATTACHED,
    PAYMENT_METHOD_DETACHED,
    PAYMENT_METHOD_UPDATED,
    PAYMENT_SUCCEEDED,
    SETUP_INTENT_SUCCEEDED,
    DomainEvent,
)
from contracts.payments import (
    DetachPaymentMethodCommand,
    GatewayPaymentMethodData,
    RecordPaymentFailed,
    RecordPaymentSucceeded,
    RecordSetupIntentSucceeded,
    StripeEventFields,
    StripePaymentMethodEvent,
    SyncPaymentMethodAttached,
    SyncPaymentMethodDetached,
    SyncPaymentMethodUpdated,
)
from contracts.resources import CustomerPaymentMethod as PaymentMethodResource

DETACH_COMMANDS = (DetachPaymentMethodCommand.command_type, SyncPaymentMethodDetached.command_type)
SYNC_STATE_COMMANDS = (SyncPaymentMethodAttached.command_type, SyncPaymentMethodUpdated.command_type)


class PaymentMethodInUse(InvalidRequest):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="payment_method_in_use", param=None)


def payment_method_missing(payment_method_id: str) -> ResourceMissing:
    return ResourceMissing("payment_method", payment_method_id, param="paymentMethod")


# ---------------------------------------------------------------------------- helpers


async def _live_customer(session: AsyncSession, customer_id: str) -> Customer:
    customer = await repository.get_live_customer(session, customer_id, for_update=True)
    if customer is None:
        raise ResourceMissing("customer", customer_id, param="customer")
    return customer


def _apply_details(row: CustomerPaymentMethod, method: GatewayPaymentMethodData) -> None:
    row.type = method.type
    row.brand = method.brand
    row.last4 = method.last4
    row.exp_month = method.expMonth
    row.exp_year = method.expYear
    row.country = method.country
    row.fingerprint = method.fingerprint
    row.billing_details = dict(method.billingDetails)
    row.metadata_ = dict(method.metadata)


def _new_row(organization_id: str, customer_id: str, method: GatewayPaymentMethodData) -> CustomerPaymentMethod:
    row = CustomerPaymentMethod(
        id=new_id("payment_method"),
        organization_id=organization_id,
        customer_id=customer_id,
        gateway=method.gateway,
        gateway_payment_method_id=method.gatewayPaymentMethodId,
    )
    _apply_details(row, method)
    return row


async def _forget_as_default(session: AsyncSession, row: CustomerPaymentMethod) -> None:
    """Clear the customer's default when it is `row` (both places it is kept)."""
    owner = await session.get(Customer, row.customer_id, with_for_update=True)
    if owner is not None and _is_default(owner, row):
        record_default_payment_method(owner, None)


def _is_default(customer: Customer, row: CustomerPaymentMethod) -> bool:
    return (
        customer.default_payment_method_id == row.id
        or (customer.invoice_settings or {}).get("defaultPaymentMethod") == row.id
    )


def resource(row: CustomerPaymentMethod) -> dict[str, Any]:
    return PaymentMethodResource.model_validate(row).model_dump(mode="json")


# ---------------------------------------------------------------------------- API commands


async def set_gateway_customer(
    session: AsyncSession, customer_id: str, gateway_customer_id: str
) -> tuple[Customer, bool]:
    """Record the Stripe customer of `customer_id` unless it has one; (customer, changed)."""
    customer = await _live_customer(session, customer_id)
    if customer.gateway_customer_id:
        return customer, False
    customer.gateway_customer_id = gateway_customer_id
    await session.flush()
    return customer, True


@dataclass(frozen=True)
class AttachResult:
    method: CustomerPaymentMethod
    created: bool


def already_attached(gateway_payment_method_id: str, owner_id: str) -> InvalidRequest:
    """A payment method belongs to one customer (Stripe refuses to attach it to a second):
    moving it would silently take it, and its default status, from the first."""
    return InvalidRequest(
        f"The payment method '{gateway_payment_method_id}' is already attached to customer '{owner_id}'. "
        "Detach it from that customer first, or collect a new one for this customer.",
        code="payment_method_already_attached",
        param="paymentMethod",
    )


async def attach_payment_method(
    session: AsyncSession, customer_id: str, gateway_customer_id: str, method: GatewayPaymentMethodData
) -> AttachResult:
    """Store a payment method the API attached at the gateway to `gateway_customer_id`.

    The same gateway payment method again: its details are refreshed. One stored for
    another customer: refused (`already_attached`). Another one with a fingerprint the
    customer already has: the existing method is answered, nothing stored.
    """
    customer = await _live_customer(session, customer_id)
    if customer.gateway_customer_id is None:
        customer.gateway_customer_id = gateway_customer_id
    elif customer.gateway_customer_id != gateway_customer_id:
        raise Conflict(
            f"The payment method was attached to gateway customer '{gateway_customer_id}', but customer "
            f"'{customer_id}' is recorded with '{customer.gateway_customer_id}'. Retry the request.",
            code="gateway_customer_mismatch",
        )
    existing = await repository.find_by_gateway_id(
        session, method.gatewayPaymentMethodId, method.gateway, for_update=True
    )
    if existing is not None:
        if existing.customer_id != customer.id:
            raise already_attached(method.gatewayPaymentMethodId, existing.customer_id)
        _apply_details(existing, method)
        await session.flush()
        return AttachResult(existing, created=False)
    same_card = await repository.find_by_fingerprint(session, customer.id, method.fingerprint, method.gateway)
    if same_card is not None:
        return AttachResult(same_card, created=False)
    row = _new_row(tenant_of(session), customer.id, method)
    session.add(row)
    await session.flush()
    return AttachResult(row, created=True)


async def check_detachable(session: AsyncSession, customer: Customer, method: CustomerPaymentMethod) -> None:
    """Refuse to detach a method live subscriptions depend on (read-only: the API checks
    this before it detaches at the gateway, the consumer again when applying)."""
    own = await repository.live_subscription_ids(session, customer.id, using_payment_method=method.id)
    if own:
        raise PaymentMethodInUse(
            f"The payment method '{method.id}' is the default payment method of the live subscription(s) "
            f"{', '.join(own)}. Give them another payment method or cancel them before detaching it."
        )
    if _is_default(customer, method):
        live = await repository.live_subscription_ids(session, customer.id)
        if live:
            raise PaymentMethodInUse(
                f"The payment method '{method.id}' is the default payment method of customer '{customer.id}', "
                f"which has live subscriptions ({', '.join(live)}). Set another default payment method "
                "(POST /v1/customers/{id}/payment-methods/{pm}/default) or cancel the subscriptions first."
            )


async def detach_payment_method(session: AsyncSession, customer_id: str, payment_method_id: str) -> dict[str, Any]:
    """Forget a payment method the API detached at the gateway; answers it as it was."""
    customer = await _live_customer(session, customer_id)
    row = await repository.get_payment_method(session, customer.id, payment_method_id, for_update=True)
    if row is None:
        raise payment_method_missing(payment_method_id)
    await check_detachable(session, customer, row)
    snapshot = resource(row)
    if _is_default(customer, row):
        record_default_payment_method(customer, None)
    await session.flush()
    await session.delete(row)
    await session.flush()
    _remember(session, DetachPaymentMethodCommand.command_type, row.gateway_payment_method_id, "deleted", None)
    return snapshot


async def set_default_payment_method(session: AsyncSession, customer_id: str, payment_method_id: str) -> Customer:
    customer = await _live_customer(session, customer_id)
    row = await repository.get_payment_method(session, customer.id, payment_method_id)
    if row is None:
        raise payment_method_missing(payment_method_id)
    record_default_payment_method(customer, row.id)
    await session.flush()
    return customer


# ---------------------------------------------------------------------------- webhook commands


@dataclass(frozen=True)
class EventReceipt:
    """What a webhook command did: the command's result (`receipt`) and its domain events."""

    receipt: dict[str, Any]
    events: list[DomainEvent] = field(default_factory=list)


def _iso(moment: datetime | None) -> str | None:
    aware = _aware(moment)
    return aware.astimezone(UTC).isoformat() if aware else None


def _receipt(command_type: str, event: StripeEventFields, action: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": event.stripeEventId,
        "object": "stripe_event",
        "commandType": command_type,
        "action": action,  # created | updated | deleted | recorded | ignored
        "occurredAt": _iso(event.occurredAt),
        **fields,
    }


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _aware(datetime.fromisoformat(value))
    except ValueError:
        return None


# What this session has applied in the batch being written: the pipeline records processed
# commands only when the batch commits, and Stripe often sends a payment method's events
# together, so the batch's own earlier events are looked at too. A new session per attempt
# (the pipeline's retry of a batch) starts empty.
_BATCH_HISTORY = "payments.gateway_payment_method_history"


@dataclass(frozen=True)
class _Applied:
    organization_id: str
    command_type: str
    gateway_payment_method_id: str
    action: str | None
    occurred_at: datetime | None


def _remember(
    session: AsyncSession,
    command_type: str,
    gateway_payment_method_id: str,
    action: str | None,
    occurred_at: datetime | None,
) -> None:
    history: list[_Applied] = session.info.setdefault(_BATCH_HISTORY, [])
    history.append(_Applied(tenant_of(session), command_type, gateway_payment_method_id, action, _aware(occurred_at)))


async def _history(session: AsyncSession, gateway_payment_method_id: str) -> list[_Applied]:
    organization_id = tenant_of(session)
    recorded = await repository.recorded_gateway_events(
        session, DETACH_COMMANDS + SYNC_STATE_COMMANDS, gateway_payment_method_id
    )
    found = [
        _Applied(
            organization_id,
            row.type,
            gateway_payment_method_id,
            (row.result or {}).get("action"),
            _parse_time((row.result or {}).get("occurredAt")),
        )
        for row in recorded
    ]
    found += [
        entry
        for entry in session.info.get(_BATCH_HISTORY, [])
        if entry.organization_id == organization_id and entry.gateway_payment_method_id == gateway_payment_method_id
    ]
    return found


async def _why_stale(session: AsyncSession, event: StripePaymentMethodEvent) -> str | None:
    """A reason to ignore an attached/updated event, or None to apply it."""
    history = await _history(session, event.gatewayPaymentMethodId)
    if any(entry.command_type in DETACH_COMMANDS for entry in history):
        return "payment_method_detached"
    mine = _aware(event.occurredAt)
    if mine is None:
        return None
    for entry in history:
        if entry.action in ("created", "updated") and entry.occurred_at is not None and entry.occurred_at > mine:
            return "newer_event_applied"
    return None


async def sync_payment_method(
    session: AsyncSession, event: SyncPaymentMethodAttached | SyncPaymentMethodUpdated | SyncPaymentMethodDetached
) -> EventReceipt:
    """Apply a payment_method.attached / updated / detached event from Stripe."""
    outcome = await _sync(session, event.command_type, event)
    _remember(session, event.command_type, event.gatewayPaymentMethodId, outcome.receipt["action"], event.occurredAt)
    return outcome


async def _sync(session: AsyncSession, command_type: str, event: StripePaymentMethodEvent) -> EventReceipt:
    ids = {"gatewayPaymentMethodId": event.gatewayPaymentMethodId, "gatewayCustomerId": event.gatewayCustomerId}
    if command_type == SyncPaymentMethodDetached.command_type:
        row = await repository.find_by_gateway_id(session, event.gatewayPaymentMethodId, event.gateway, for_update=True)
        if row is None:
            return EventReceipt(_receipt(command_type, event, "ignored", reason="unknown_payment_method", **ids))
        # Stripe has detached it: reflect that even when subscriptions relied on it
        await _forget_as_default(session, row)
        await session.flush()
        snapshot = resource(row)
        await session.delete(row)
        await session.flush()
        receipt = _receipt(
            command_type, event, "deleted", paymentMethodId=snapshot["id"], customerId=snapshot["customerId"], **ids
        )
        return EventReceipt(receipt, [PAYMENT_METHOD_DETACHED.of(snapshot)])

    stale = await _why_stale(session, event)
    if stale is not None:
        return EventReceipt(_receipt(command_type, event, "ignored", reason=stale, **ids))
    row = await repository.find_by_gateway_id(session, event.gatewayPaymentMethodId, event.gateway, for_update=True)
    if row is not None:
        _apply_details(row, event)
        await session.flush()
        snapshot = resource(row)
        receipt = _receipt(command_type, event, "updated", paymentMethodId=row.id, customerId=row.customer_id, **ids)
        return EventReceipt(receipt, [PAYMENT_METHOD_UPDATED.of(snapshot)])
    customer = await repository.find_customer_by_gateway_id(session, event.gatewayCustomerId)
    if customer is None:
        # not one of our customers (or an update of a method we never stored)
        return EventReceipt(_receipt(command_type, event, "ignored", reason="unknown_customer", **ids))
    same_card = await repository.find_by_fingerprint(session, customer.id, event.fingerprint, event.gateway)
    if same_card is not None:
        receipt = _receipt(
            command_type,
            event,
            "ignored",
            reason="duplicate_fingerprint",
            paymentMethodId=same_card.id,
            customerId=customer.id,
            **ids,
        )
        return EventReceipt(receipt)
    row = _new_row(tenant_of(session), customer.id, event)
    session.add(row)
    await session.flush()
    snapshot = resource(row)
    receipt = _receipt(command_type, event, "created", paymentMethodId=row.id, customerId=customer.id, **ids)
    return EventReceipt(receipt, [PAYMENT_METHOD_ATTACHED.of(snapshot)])


async def record_setup_intent(session: AsyncSession, event: RecordSetupIntentSucceeded) -> EventReceipt:
    """setup_intent.succeeded: recorded; the payment method itself arrives with payment_method.attached."""
    customer = await repository.find_customer_by_gateway_id(session, event.gatewayCustomerId)
    known = (
        await repository.find_by_gateway_id(session, event.gatewayPaymentMethodId)
        if event.gatewayPaymentMethodId
        else None
    )
    receipt = _receipt(
        event.command_type,
        event,
        "recorded",
        gatewaySetupIntentId=event.gatewaySetupIntentId,
        gatewayCustomerId=event.gatewayCustomerId,
        gatewayPaymentMethodId=event.gatewayPaymentMethodId,
        customerId=customer.id if customer else None,
        paymentMethodId=known.id if known else None,
    )
    return EventReceipt(receipt, [SETUP_INTENT_SUCCEEDED.of(receipt)])


async def record_payment(session: AsyncSession, event: RecordPaymentSucceeded | RecordPaymentFailed) -> EventReceipt:
    """payment_intent.succeeded / payment_failed: recorded and published as payment.succeeded /
    payment.failed domain events (for invoices to settle on)."""
    customer = await repository.find_customer_by_gateway_id(session, event.gatewayCustomerId)
    known = (
        await repository.find_by_gateway_id(session, event.gatewayPaymentMethodId)
        if event.gatewayPaymentMethodId
        else None
    )
    details = event.model_dump(mode="json", exclude={"stripeEventId", "occurredAt", "livemode", "stripeAccount"})
    receipt = _receipt(
        event.command_type,
        event,
        "recorded",
        customerId=customer.id if customer else None,
        paymentMethodId=known.id if known else None,
        **details,
    )
    outcome = PAYMENT_SUCCEEDED if isinstance(event, RecordPaymentSucceeded) else PAYMENT_FAILED
    return EventReceipt(receipt, [outcome.of(receipt)])


__all__ = [
    "AttachResult",
    "EventReceipt",
    "PaymentMethodInUse",
    "already_attached",
    "attach_payment_method",
    "check_detachable",
    "detach_payment_method",
    "payment_method_missing",
    "record_payment",
    "record_setup_intent",
    "resource",
    "set_default_payment_method",
    "set_gateway_customer",
    "sync_payment_method",
]
