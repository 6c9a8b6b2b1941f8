"""billing.payments.service and billing.organizations.stripe_account against the real test
database: the rules of payment methods (one row per card, the default kept in both places,
what may be detached), webhook ordering (through the real pipeline, which records what
was applied), and the Stripe account's secrets at rest."""

from __future__ import annotations

import dataclasses
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from billing.db.sessions import tenant_session
from billing.errors import Conflict, InvalidRequest, ResourceMissing
from billing.ids import new_id
from billing.models import Customer, CustomerPaymentMethod, Organization, ProcessedCommand, Subscription
from billing.organizations import stripe_account
from billing.payments import service
from billing.payments.webhooks import sign_payload, stripe_event_to_command, verify_signature
from billing.secrets.encryption import EncryptionKeyMissing, Keyring, generate_key
from consumers.app import ROUTES
from consumers.pipeline import RawCommand, apply_batch
from contracts.enums import PaymentMethodType, SubscriptionStatus
from contracts.envelopes import Actor, CommandEnvelope, command_id_for, utcnow
from contracts.payments import DetachPaymentMethodCommand, GatewayPaymentMethodData
from contracts.settings import get_settings
from tests.api.conftest import new_tenant


def card(gateway_id: str, fingerprint: str = "fp_one", **fields: Any) -> GatewayPaymentMethodData:
    values: dict[str, Any] = {
        "brand": "visa",
        "last4": "4242",
        "expMonth": 8,
        "expYear": 2030,
        "country": "US",
        **fields,
    }
    return GatewayPaymentMethodData(
        gatewayPaymentMethodId=gateway_id, type=PaymentMethodType.card, fingerprint=fingerprint, **values
    )


async def setup(session_factory: Any, *, gateway_customer: str | None = "cus_gw") -> tuple[str, str]:  # type: ignore[no-untyped-def]
    tenant = await new_tenant(session_factory, "Service")
    customer_id = new_id("customer")
    async with session_factory() as session, session.begin():
        session.add(
            Customer(id=customer_id, organization_id=tenant.organization_id, gateway_customer_id=gateway_customer)
        )
    return tenant.organization_id, customer_id


async def add_customer(session_factory: Any, organization_id: str, gateway_customer: str | None = None) -> str:  # type: ignore[no-untyped-def]
    customer_id = new_id("customer")
    async with session_factory() as session, session.begin():
        session.add(Customer(id=customer_id, organization_id=organization_id, gateway_customer_id=gateway_customer))
    return customer_id


async def add_subscription(
    session_factory: Any,
    organization_id: str,
    customer_id: str,
    status: SubscriptionStatus,  # type: ignore[no-untyped-def]
    payment_method: str | None = None,
) -> str:
    now = datetime.now(UTC)
    subscription_id = new_id("subscription")
    async with session_factory() as session, session.begin():
        session.add(
            Subscription(
                id=subscription_id,
                organization_id=organization_id,
                customer_id=customer_id,
                status=status,
                currency="usd",
                start_date=now,
                billing_cycle_anchor=now,
                current_period_start=now,
                current_period_end=now + timedelta(days=30),
                default_payment_method_id=payment_method,
            )
        )
    return subscription_id


# ---------------------------------------------------------------------------- attach


async def test_attach_dedupes_by_gateway_id_and_fingerprint(session_factory) -> None:  # type: ignore[no-untyped-def]
    org, customer = await setup(session_factory)
    async with tenant_session(session_factory, org) as session, session.begin():
        first = await service.attach_payment_method(session, customer, "cus_gw", card("pm_1"))
        assert first.created and first.method.gateway_payment_method_id == "pm_1"
        again = await service.attach_payment_method(session, customer, "cus_gw", card("pm_1", last4="1111"))
        assert not again.created and again.method.id == first.method.id and again.method.last4 == "1111"
        same_card = await service.attach_payment_method(session, customer, "cus_gw", card("pm_2"))
        assert not same_card.created and same_card.method.id == first.method.id
        other_card = await service.attach_payment_method(
            session, customer, "cus_gw", card("pm_3", fingerprint="fp_two")
        )
        assert other_card.created
        rows = (
            await session.scalars(select(CustomerPaymentMethod).where(CustomerPaymentMethod.customer_id == customer))
        ).all()
    assert sorted(r.gateway_payment_method_id for r in rows) == ["pm_1", "pm_3"]


async def test_attach_records_the_gateway_customer_and_refuses_another(session_factory) -> None:  # type: ignore[no-untyped-def]
    org, customer = await setup(session_factory, gateway_customer=None)
    async with tenant_session(session_factory, org) as session, session.begin():
        await service.attach_payment_method(session, customer, "cus_first", card("pm_a"))
        assert (await session.get(Customer, customer)).gateway_customer_id == "cus_first"  # type: ignore[union-attr]
        with pytest.raises(Conflict) as raised:
            await service.attach_payment_method(session, customer, "cus_second", card("pm_b", fingerprint="fp_b"))
        assert raised.value.code == "gateway_customer_mismatch"


async def test_a_method_of_one_customer_is_not_attached_to_another(session_factory) -> None:  # type: ignore[no-untyped-def]
    org, first = await setup(session_factory, gateway_customer="cus_1")
    second = await add_customer(session_factory, org, "cus_2")
    async with tenant_session(session_factory, org) as session, session.begin():
        method = (await service.attach_payment_method(session, first, "cus_1", card("pm_taken"))).method
        await service.set_default_payment_method(session, first, method.id)
        with pytest.raises(InvalidRequest) as raised:
            await service.attach_payment_method(session, second, "cus_2", card("pm_taken"))
        assert raised.value.code == "payment_method_already_attached" and raised.value.param == "paymentMethod"
        assert first in raised.value.message
        assert method.customer_id == first
        owner = await session.get(Customer, first)
        assert owner.default_payment_method_id == method.id  # type: ignore[union-attr]


async def test_missing_and_foreign_customers(session_factory) -> None:  # type: ignore[no-untyped-def]
    org, customer = await setup(session_factory)
    other_org, _ = await setup(session_factory)
    async with tenant_session(session_factory, other_org) as session, session.begin():
        with pytest.raises(ResourceMissing):
            await service.attach_payment_method(session, customer, "cus_gw", card("pm_x"))
        with pytest.raises(ResourceMissing):
            await service.set_gateway_customer(session, customer, "cus_other")
    async with tenant_session(session_factory, org) as session, session.begin():
        with pytest.raises(ResourceMissing):
            await service.attach_payment_method(session, "cus_nothere", "cus_gw", card("pm_x"))
        customer_row, changed = await service.set_gateway_customer(session, customer, "cus_other")
        assert not changed and customer_row.gateway_customer_id == "cus_gw"  # the first recorded wins


# ---------------------------------------------------------------------------- default and detach


async def test_default_is_kept_in_both_places_and_detach_clears_it(session_factory) -> None:  # type: ignore[no-untyped-def]
    org, customer = await setup(session_factory)
    async with tenant_session(session_factory, org) as session, session.begin():
        method = (await service.attach_payment_method(session, customer, "cus_gw", card("pm_d"))).method
        row = await service.set_default_payment_method(session, customer, method.id)
        assert row.default_payment_method_id == method.id == row.invoice_settings["defaultPaymentMethod"]
        snapshot = await service.detach_payment_method(session, customer, method.id)
        assert snapshot["id"] == method.id and snapshot["gatewayPaymentMethodId"] == "pm_d"
        row = await session.get(Customer, customer)
        assert row.default_payment_method_id is None and row.invoice_settings == {}  # type: ignore[union-attr]
        with pytest.raises(ResourceMissing) as raised:
            await service.detach_payment_method(session, customer, method.id)
        assert raised.value.param == "paymentMethod"


@pytest.mark.parametrize("status", [s for s in SubscriptionStatus if s not in ("canceled", "incomplete_expired")])
async def test_the_default_of_a_customer_with_live_subscriptions_is_not_detached(session_factory, status) -> None:  # type: ignore[no-untyped-def]
    org, customer = await setup(session_factory)
    async with tenant_session(session_factory, org) as session, session.begin():
        method = (await service.attach_payment_method(session, customer, "cus_gw", card("pm_live"))).method
        await service.set_default_payment_method(session, customer, method.id)
    subscription = await add_subscription(session_factory, org, customer, status)
    async with tenant_session(session_factory, org) as session, session.begin():
        with pytest.raises(service.PaymentMethodInUse) as raised:
            await service.detach_payment_method(session, customer, method.id)
    assert raised.value.code == "payment_method_in_use" and subscription in raised.value.message


async def test_ended_subscriptions_and_non_default_methods_do_not_block(session_factory) -> None:  # type: ignore[no-untyped-def]
    org, customer = await setup(session_factory)
    async with tenant_session(session_factory, org) as session, session.begin():
        default = (await service.attach_payment_method(session, customer, "cus_gw", card("pm_def"))).method
        spare = (
            await service.attach_payment_method(session, customer, "cus_gw", card("pm_spare", fingerprint="fp_s"))
        ).method
        await service.set_default_payment_method(session, customer, default.id)
    await add_subscription(session_factory, org, customer, SubscriptionStatus.active)
    await add_subscription(session_factory, org, customer, SubscriptionStatus.canceled, default.id)
    async with tenant_session(session_factory, org) as session, session.begin():
        await service.detach_payment_method(session, customer, spare.id)  # not the default: fine
    uses_it = await add_subscription(session_factory, org, customer, SubscriptionStatus.past_due, default.id)
    async with tenant_session(session_factory, org) as session, session.begin():
        with pytest.raises(service.PaymentMethodInUse) as raised:
            await service.detach_payment_method(session, customer, default.id)
    assert uses_it in raised.value.message


# ---------------------------------------------------------------------------- webhook commands through the pipeline


def envelope(organization_id: str, event: dict[str, Any]) -> RawCommand:
    mapped = stripe_event_to_command(event)
    assert mapped is not None
    key = f"stripe-event:{event['id']}"
    value = (
        CommandEnvelope(
            commandId=command_id_for(organization_id, key),
            type=mapped.command_type,
            organizationId=organization_id,
            actor=Actor(type="stripe_webhook", id=event["id"]),
            issuedAt=utcnow(),
            idempotencyKey=key,
            payload=mapped.payload(),
        )
        .model_dump_json()
        .encode()
    )
    return RawCommand(value, "billing.commands", 0, 0)


def pm_event(
    kind: str,
    pm_id: str,
    customer: str | None,
    created: int,
    *,
    exp_year: int = 2030,
    fingerprint: str = "fp_wh",
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    obj = {
        "id": pm_id,
        "object": "payment_method",
        "type": "card",
        "customer": customer,
        "billing_details": {},
        "metadata": {},
        "card": {
            "brand": "visa",
            "last4": "4242",
            "exp_month": 1,
            "exp_year": exp_year,
            "country": "US",
            "fingerprint": fingerprint,
        },
    }
    data: dict[str, Any] = {"object": obj}
    if previous:
        data["previous_attributes"] = previous
    return {
        "id": "evt_" + uuid.uuid4().hex[:20],
        "object": "event",
        "type": kind,
        "created": created,
        "data": data,
        "livemode": False,
    }


async def results(session_factory: Any, organization_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        rows = {
            r.command_id: r
            for r in (
                await session.scalars(
                    select(ProcessedCommand).where(ProcessedCommand.organization_id == organization_id)
                )
            ).all()
        }
    return [rows[command_id_for(organization_id, f"stripe-event:{e['id']}")].result for e in events]


async def test_webhook_order_in_one_batch_and_across_batches(session_factory) -> None:  # type: ignore[no-untyped-def]
    org, customer = await setup(session_factory, gateway_customer="cus_wh")
    t = int(time.time())
    attached = pm_event("payment_method.attached", "pm_w", "cus_wh", t - 100)
    newer = pm_event("payment_method.updated", "pm_w", "cus_wh", t - 50, exp_year=2035)
    older = pm_event("payment_method.updated", "pm_w", "cus_wh", t - 80, exp_year=2031)
    await apply_batch(session_factory, ROUTES, [envelope(org, e) for e in (attached, newer, older)])
    assert [r["action"] for r in await results(session_factory, org, [attached, newer, older])] == [
        "created",
        "updated",
        "ignored",
    ]

    detached = pm_event("payment_method.detached", "pm_w", None, t - 20, previous={"customer": "cus_wh"})
    late = pm_event("payment_method.attached", "pm_w", "cus_wh", t - 90)
    again = pm_event("payment_method.detached", "pm_w", None, t - 10, previous={"customer": "cus_wh"})
    await apply_batch(session_factory, ROUTES, [envelope(org, e) for e in (detached, late, again)])
    got = await results(session_factory, org, [detached, late, again])
    assert [r["action"] for r in got] == ["deleted", "ignored", "ignored"]
    assert got[1]["reason"] == "payment_method_detached" and got[2]["reason"] == "unknown_payment_method"
    async with session_factory() as session:
        assert (
            await session.scalars(select(CustomerPaymentMethod).where(CustomerPaymentMethod.customer_id == customer))
        ).all() == []


async def test_an_api_detach_is_a_tombstone_for_webhooks(session_factory) -> None:  # type: ignore[no-untyped-def]
    org, customer = await setup(session_factory, gateway_customer="cus_t")
    async with tenant_session(session_factory, org) as session, session.begin():
        method = (await service.attach_payment_method(session, customer, "cus_t", card("pm_t"))).method
    detach = CommandEnvelope(
        commandId="cmd_" + uuid.uuid4().hex,
        type=DetachPaymentMethodCommand.command_type,
        organizationId=org,
        actor=Actor(type="system", id="t"),
        issuedAt=utcnow(),
        payload={"customerId": customer, "paymentMethodId": method.id},
    )
    await apply_batch(session_factory, ROUTES, [RawCommand(detach.model_dump_json().encode(), "t", 0, 0)])
    late = pm_event("payment_method.attached", "pm_t", "cus_t", int(time.time()) - 5)
    await apply_batch(session_factory, ROUTES, [envelope(org, late)])
    (result,) = await results(session_factory, org, [late])
    assert result["action"] == "ignored" and result["reason"] == "payment_method_detached"


async def test_webhooks_of_another_tenant_do_not_touch_this_one(session_factory) -> None:  # type: ignore[no-untyped-def]
    _org, customer = await setup(session_factory, gateway_customer="cus_shared")
    other, _ = await setup(session_factory, gateway_customer=None)
    event = pm_event("payment_method.attached", "pm_s", "cus_shared", int(time.time()))
    await apply_batch(session_factory, ROUTES, [envelope(other, event)])
    (result,) = await results(session_factory, other, [event])
    assert result["action"] == "ignored" and result["reason"] == "unknown_customer"
    async with session_factory() as session:
        assert (
            await session.scalars(select(CustomerPaymentMethod).where(CustomerPaymentMethod.customer_id == customer))
        ).all() == []


# ---------------------------------------------------------------------------- the Stripe account's secrets


async def test_connect_stores_only_ciphertexts(session_factory) -> None:  # type: ignore[no-untyped-def]
    tenant = await new_tenant(session_factory, "Secrets")
    keyring = Keyring([generate_key()])
    secret_key, webhook_secret = "sk_live_" + secrets.token_urlsafe(24).replace("-", "a").replace("_", "b"), "whsec_abc"
    command = stripe_account.encrypt_credentials(secret_key, webhook_secret, keyring)
    assert secret_key not in command.model_dump_json() and webhook_secret not in command.model_dump_json()
    assert command.mode == "live" and command.secretKeyLast4 == secret_key[-4:]
    async with tenant_session(session_factory, tenant.organization_id) as session, session.begin():
        await stripe_account.connect(session, command)
    async with session_factory() as session:
        organization = await session.get(Organization, tenant.organization_id)
    assert organization is not None
    view = stripe_account.account_view(organization, keyring)
    assert (
        view.connected
        and view.mode == "live"
        and view.secretKeyLast4 == secret_key[-4:]
        and view.webhookSecretConfigured
    )
    assert secret_key not in view.model_dump_json()
    assert stripe_account.webhook_secret(organization, keyring) == webhook_secret
    body = b'{"id": "evt_1", "object": "event"}'
    assert verify_signature(
        body, sign_payload(body, stripe_account.webhook_secret(organization, keyring) or ""), webhook_secret
    )

    # under a key ring that lost the key: connected, but nothing can be read
    unreadable = stripe_account.account_view(organization, Keyring([generate_key()]))
    assert unreadable.connected and unreadable.secretKeyLast4 is None

    async with tenant_session(session_factory, tenant.organization_id) as session, session.begin():
        await stripe_account.disconnect(session)
    async with session_factory() as session:
        organization = await session.get(Organization, tenant.organization_id)
    assert organization.stripe_secret_key_encrypted is None and organization.stripe_webhook_secret_encrypted is None  # type: ignore[union-attr]
    assert not stripe_account.account_view(organization, keyring).connected  # type: ignore[arg-type]


def test_ensure_keyring_makes_the_dev_key_file_once(tmp_path: Path) -> None:
    settings = dataclasses.replace(get_settings(), data_dir=tmp_path / "data", secret_encryption_keys="")
    ring = stripe_account.ensure_keyring(settings)
    key_file = tmp_path / "data" / "encryption.keys"
    assert key_file.is_file() and (key_file.stat().st_mode & 0o777) == 0o600
    token = ring.encrypt("sk_test_x")
    content = key_file.read_text()
    again = stripe_account.ensure_keyring(settings)  # idempotent: the same key, never overwritten
    assert key_file.read_text() == content and again.decrypt(token) == "sk_test_x"

    from_env = dataclasses.replace(settings, data_dir=tmp_path / "elsewhere", secret_encryption_keys=generate_key())
    stripe_account.ensure_keyring(from_env)
    assert not (tmp_path / "elsewhere").exists()  # the environment's keys: no file made
    with pytest.raises(EncryptionKeyMissing):
        from billing.secrets.encryption import keyring_from_settings

        keyring_from_settings(dataclasses.replace(settings, data_dir=tmp_path / "none"))
