"""A poison command (a value Postgres refuses, a handler that crashes) is answered alone
with a Stripe-shaped error while the good commands of its batch, of two organizations,
apply; one that cannot even be answered goes to the dead letters after a bounded number
of tries. Real Postgres; the last test runs a real consumer on real Kafka."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import Field
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

import consumers.app
from billing.customers.service import create_customer
from billing.models import Customer, CustomerPaymentMethod, Outbox, ProcessedCommand
from consumers.app import ROUTES
from consumers.pipeline import ALONE_TRIES, RawCommand, apply_batch, is_transient
from consumers.registry import Applied, CommandRouter, Route
from contracts.commands import Command
from contracts.customers import CustomerCreate
from contracts.envelopes import CommandEnvelope
from contracts.payments import AttachPaymentMethodCommand
from contracts.settings import get_settings
from producers.publisher import publish_command
from producers.topics import BILLING_COMMANDS, BILLING_COMMANDS_DLQ, ensure_topics, topic
from tests.api.conftest import new_tenant
from tests.consumers.test_offsets import _positions, consumer_and_publisher
from tests.consumers.test_pipeline import _outcome_of, command, record

PLACEHOLDER = "__poison__"
test_router = CommandRouter()


class _Crash(Command[Any]):
    command_type: ClassVar[str] = "test.crash"


class _StoreBalance(Command[Any]):
    command_type: ClassVar[str] = "test.store_balance"

    balance: int


class _BreakTransaction(Command[Any]):
    command_type: ClassVar[str] = "test.break_transaction"


@test_router.handles(_Crash)
async def _crash(session: Any, payload: _Crash) -> Applied[Any]:
    raise RuntimeError("a bug in a handler")


@test_router.handles(_StoreBalance)
async def _store_balance(session: Any, payload: _StoreBalance) -> Applied[Any]:
    """A write with no range check of its own: the driver refuses an integer beyond int64."""
    customer = await create_customer(session, CustomerCreate(name="big"))
    customer.balance = payload.balance
    return Applied("customer", {"id": customer.id})


CALLS: list[str] = []


@test_router.handles(_BreakTransaction)
async def _break_transaction(session: Any, payload: _BreakTransaction) -> Applied[Any]:
    """A handler that ends the batch's transaction behind the pipeline's back: not even its
    failure can be recorded, in a batch or alone."""
    CALLS.append("called")
    await session.execute(text("ROLLBACK"))
    raise RuntimeError("a handler that rolled back the transaction")


TEST_ROUTES = {**ROUTES, **test_router.routes}


def raw(envelope: CommandEnvelope, poison: bytes, offset: int) -> RawCommand:
    """The envelope's JSON with `poison` (raw JSON bytes, possibly not UTF-8) in place of
    the placeholder string: what a direct publisher could put on the topic."""
    value = envelope.model_dump_json().encode().replace(json.dumps(PLACEHOLDER).encode(), poison)
    return RawCommand(value, "billing.commands", 0, offset)


@dataclass(frozen=True)
class Poison:
    command_type: str
    payload: Callable[[str], dict[str, Any]]  # of the organization's customer id
    bytes: bytes  # what replaces PLACEHOLDER in the record
    type: str
    code: str
    param: str | None


def _attach(details: dict[str, Any]) -> Callable[[str], dict[str, Any]]:
    def payload(customer_id: str) -> dict[str, Any]:
        method = {"gatewayPaymentMethodId": "pm_poison", "type": "card", "fingerprint": "fp", "billingDetails": details}
        return {"customerId": customer_id, "gatewayCustomerId": "cus_gateway", "method": method}

    return payload


POISONS = {
    # refused at the batch's final write, after the handler returned
    "nul_in_text": Poison(
        CustomerCreate.command_type,
        lambda _: {"name": PLACEHOLDER},
        b'"bad\\u0000name"',
        "invalid_request_error",
        "invalid_characters",
        "name",
    ),
    # the bytes are not UTF-8: read as lone surrogates, refused by Postgres in a free-form field
    "invalid_utf8": Poison(
        AttachPaymentMethodCommand.command_type,
        _attach({"name": PLACEHOLDER}),
        b'"\xff\xfe bytes"',
        "invalid_request_error",
        "invalid_characters",
        "method[billingDetails][name]",
    ),
    "lone_surrogate": Poison(
        AttachPaymentMethodCommand.command_type,
        _attach({"name": PLACEHOLDER}),
        b'"\\ud800"',
        "invalid_request_error",
        "invalid_characters",
        "method[billingDetails][name]",
    ),
    # JSON has no Infinity: Postgres refuses the jsonb
    "number_postgres_refuses": Poison(
        AttachPaymentMethodCommand.command_type,
        _attach({"amount": PLACEHOLDER}),
        b"1e400",
        "invalid_request_error",
        "invalid_value",
        "method[billingDetails][amount]",
    ),
    # the driver refuses it (an InterfaceError that is no connection problem)
    "integer_beyond_int64": Poison(
        _StoreBalance.command_type,
        lambda _: {"balance": PLACEHOLDER},
        str(2**70).encode(),
        "invalid_request_error",
        "invalid_value",
        "balance",
    ),
    "handler_exception": Poison(_Crash.command_type, lambda _: {}, b"", "api_error", "internal_error", None),
}


async def _customer(session_factory: Any, organization_id: str, name: str) -> str:
    create = command(organization_id, CustomerCreate.command_type, {"name": name})
    await apply_batch(session_factory, ROUTES, [record(create)])
    return (await _outcome_of(session_factory, create.commandId)).result["id"]


async def _names(session_factory: Any, organization_id: str) -> list[str]:
    async with session_factory() as session:
        return sorted(
            (await session.scalars(select(Customer.name).where(Customer.organization_id == organization_id))).all()
        )


async def _check_poison(session_factory: Any, kind: str) -> None:
    poison = POISONS[kind]
    a, b = await new_tenant(session_factory, f"{kind} A"), await new_tenant(session_factory, f"{kind} B")
    holder = await _customer(session_factory, a.organization_id, "holder")
    bad = command(a.organization_id, poison.command_type, poison.payload(holder))
    good = [
        command(a.organization_id, CustomerCreate.command_type, {"name": "a1"}),
        command(b.organization_id, CustomerCreate.command_type, {"name": "b1"}),
        command(a.organization_id, CustomerCreate.command_type, {"name": "a2"}),
        command(b.organization_id, CustomerCreate.command_type, {"name": "b2"}),
    ]
    records = [
        record(good[0], 1),
        record(good[1], 2),
        raw(bad, poison.bytes, 3),
        record(good[2], 4),
        record(good[3], 5),
    ]
    result = await apply_batch(session_factory, TEST_ROUTES, records)
    assert (result.applied, result.dead_letters) == (5, [])

    assert await _names(session_factory, a.organization_id) == ["a1", "a2", "holder"]
    assert await _names(session_factory, b.organization_id) == ["b1", "b2"]
    outcome = await _outcome_of(session_factory, bad.commandId)
    assert outcome.status == "failed" and outcome.result is None
    error = outcome.error
    assert set(error) == {"type", "code", "message", "param", "status"}
    assert (error["type"], error["code"], error["param"]) == (poison.type, poison.code, poison.param)
    assert error["status"] == (500 if poison.type == "api_error" else 400)
    async with session_factory() as session:
        events = (
            await session.scalars(select(Outbox).where(Outbox.payload["commandId"].astext == bad.commandId))
        ).all()
        methods = await session.scalar(
            select(func.count()).select_from(CustomerPaymentMethod).where(CustomerPaymentMethod.customer_id == holder)
        )
        stored = (await session.scalars(select(Customer).where(Customer.organization_id == a.organization_id))).all()
    assert [e.event_type for e in events] == ["command.failed"]
    assert events[0].payload["data"]["error"] == error
    assert methods == 0
    assert all(c.name != "big" and (c.gateway_customer_id is None) for c in stored)


async def test_a_nul_in_text_is_answered_alone(session_factory) -> None:  # type: ignore[no-untyped-def]
    await _check_poison(session_factory, "nul_in_text")


async def test_invalid_utf8_bytes_are_answered_alone(session_factory) -> None:  # type: ignore[no-untyped-def]
    await _check_poison(session_factory, "invalid_utf8")


async def test_a_lone_surrogate_is_answered_alone(session_factory) -> None:  # type: ignore[no-untyped-def]
    await _check_poison(session_factory, "lone_surrogate")


async def test_a_number_postgres_refuses_is_answered_alone(session_factory) -> None:  # type: ignore[no-untyped-def]
    await _check_poison(session_factory, "number_postgres_refuses")


async def test_an_integer_the_driver_refuses_is_answered_alone(session_factory) -> None:  # type: ignore[no-untyped-def]
    await _check_poison(session_factory, "integer_beyond_int64")


async def test_an_exception_in_a_handler_is_answered_alone(session_factory) -> None:  # type: ignore[no-untyped-def]
    await _check_poison(session_factory, "handler_exception")


async def test_an_unknown_key_holding_a_nul_is_answered_without_it(session_factory) -> None:  # type: ignore[no-untyped-def]
    """The refusal names the param: its record must not hold what Postgres refuses."""
    tenant = await new_tenant(session_factory, "NUL key")
    bad = command(tenant.organization_id, CustomerCreate.command_type, {"name": "x", PLACEHOLDER: 1})
    good = command(tenant.organization_id, CustomerCreate.command_type, {"name": "good"})
    value = bad.model_dump_json().encode().replace(json.dumps(PLACEHOLDER).encode(), b'"k\\u0000"')
    result = await apply_batch(session_factory, ROUTES, [RawCommand(value, "billing.commands", 0, 0), record(good, 1)])
    assert (result.applied, result.dead_letters) == (2, [])
    error = (await _outcome_of(session_factory, bad.commandId)).error
    assert error["code"] == "parameter_unknown" and "\x00" not in error["message"] and error["param"] is None
    assert await _names(session_factory, tenant.organization_id) == ["good"]


async def test_a_record_nested_too_deep_to_parse_is_a_dead_letter(session_factory) -> None:  # type: ignore[no-untyped-def]
    tenant = await new_tenant(session_factory, "Deep record")
    good = command(tenant.organization_id, CustomerCreate.command_type, {"name": "after the deep one"})
    deep = RawCommand(b"[" * 100_000 + b"]" * 100_000, "billing.commands", 0, 0)
    result = await apply_batch(session_factory, ROUTES, [deep, record(good, 1)])
    assert [(letter.record.offset, letter.reason.startswith("not JSON")) for letter in result.dead_letters] == [
        (0, True)
    ]
    assert await _names(session_factory, tenant.organization_id) == ["after the deep one"]


async def test_a_command_that_fails_even_alone_is_dead_lettered_after_bounded_tries(session_factory) -> None:  # type: ignore[no-untyped-def]
    a, b = await new_tenant(session_factory, "Breaker A"), await new_tenant(session_factory, "Breaker B")
    breaker = command(a.organization_id, _BreakTransaction.command_type, {})
    batch = [
        command(a.organization_id, CustomerCreate.command_type, {"name": "a1"}),
        breaker,
        command(b.organization_id, CustomerCreate.command_type, {"name": "b1"}),
    ]
    CALLS.clear()
    result = await apply_batch(session_factory, TEST_ROUTES, [record(e, i) for i, e in enumerate(batch)])
    assert [letter.record.offset for letter in result.dead_letters] == [1]
    assert f"failed {ALONE_TRIES} times" in result.dead_letters[0].reason
    assert "rolled back the transaction" in result.dead_letters[0].reason
    assert len(CALLS) == 2 + ALONE_TRIES  # the optimistic pass, the isolated pass, then alone
    assert result.applied == 2
    assert await _names(session_factory, a.organization_id) == ["a1"]
    assert await _names(session_factory, b.organization_id) == ["b1"]
    async with session_factory() as session:
        recorded = await session.scalar(
            select(func.count()).select_from(ProcessedCommand).where(ProcessedCommand.command_id == breaker.commandId)
        )
    assert recorded == 0


class _SqlState(Command[Any]):
    sqlstate: str = Field(pattern=r"^[0-9A-Z]{5}$")


FAILED_ONCE: list[str] = []


async def _raise_sqlstate(session: Any, payload: _SqlState) -> Applied:
    """Postgres itself raises the error with that SQLSTATE (a real server error, no fake)."""
    await session.execute(
        text(f"DO $$ BEGIN RAISE EXCEPTION 'raised for the test' USING ERRCODE = '{payload.sqlstate}'; END $$")
    )
    return Applied("customer", {})


async def _fail_once_then_create(session: Any, payload: _SqlState) -> Applied:
    if not FAILED_ONCE:
        FAILED_ONCE.append(payload.sqlstate)
        await _raise_sqlstate(session, payload)
    customer = await create_customer(session, CustomerCreate(name="after a retry"))
    return Applied("customer", {"id": customer.id})


@pytest.mark.parametrize("sqlstate", ["40001", "40P01", "08006", "57P01"])
async def test_a_failure_of_the_moment_is_retried_never_answered(session_factory, sqlstate: str) -> None:  # type: ignore[no-untyped-def]
    """Serialization failure, deadlock, connection failure, shutdown: the batch raises for the
    caller to retry; nothing of it is recorded as the command's outcome."""
    tenant = await new_tenant(session_factory, f"Transient {sqlstate}")
    routes = {**ROUTES, "test.sqlstate": Route(_SqlState, _raise_sqlstate)}
    failing = command(tenant.organization_id, "test.sqlstate", {"sqlstate": sqlstate})
    good = command(tenant.organization_id, CustomerCreate.command_type, {"name": "waits"})
    with pytest.raises(DBAPIError) as raised:
        await apply_batch(session_factory, routes, [record(good, 0), record(failing, 1)])
    assert is_transient(raised.value)
    assert await _names(session_factory, tenant.organization_id) == []
    assert await _outcome_of_or_none(session_factory, failing.commandId) is None


@pytest.mark.parametrize(
    ("sqlstate", "type", "code"),
    [
        ("22003", "invalid_request_error", "invalid_value"),
        ("22P02", "invalid_request_error", "invalid_value"),
        ("42601", "api_error", "internal_error"),
        ("XX000", "api_error", "internal_error"),
    ],
)
async def test_any_other_database_error_is_answered_as_its_commands_failure(
    session_factory, sqlstate: str, type: str, code: str
) -> None:  # type: ignore[no-untyped-def]
    tenant = await new_tenant(session_factory, f"Refused {sqlstate}")
    routes = {**ROUTES, "test.sqlstate": Route(_SqlState, _raise_sqlstate)}
    failing = command(tenant.organization_id, "test.sqlstate", {"sqlstate": sqlstate})
    good = command(tenant.organization_id, CustomerCreate.command_type, {"name": "applies"})
    result = await apply_batch(session_factory, routes, [record(failing, 0), record(good, 1)])
    assert (result.applied, result.dead_letters) == (2, [])
    error = (await _outcome_of(session_factory, failing.commandId)).error
    assert (error["type"], error["code"]) == (type, code)
    assert await _names(session_factory, tenant.organization_id) == ["applies"]


async def test_the_consumer_retries_a_serialization_failure_and_applies_the_command(
    session_factory, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    tenant = await new_tenant(session_factory, "Retried")
    monkeypatch.setitem(consumers.app.ROUTES, "test.fail_once", Route(_SqlState, _fail_once_then_create))
    FAILED_ONCE.clear()
    once = command(tenant.organization_id, "test.fail_once", {"sqlstate": "40001"})
    result = await consumers.app.apply_with_retries(session_factory, [record(once)])
    assert FAILED_ONCE == ["40001"] and result.applied == 1
    assert (await _outcome_of(session_factory, once.commandId)).status == "succeeded"
    assert await _names(session_factory, tenant.organization_id) == ["after a retry"]


async def _outcome_of_or_none(session_factory: Any, command_id: str) -> Any:
    async with session_factory() as session:
        return await session.scalar(select(ProcessedCommand).where(ProcessedCommand.command_id == command_id))


async def _dead_letters(count: int) -> list[dict[str, Any]]:
    settings = get_settings()
    reader = AIOKafkaConsumer(
        topic(BILLING_COMMANDS_DLQ),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await reader.start()
    letters: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(30):
            while len(letters) < count:
                for batch in (await reader.getmany(timeout_ms=500)).values():
                    letters += [json.loads(message.value) for message in batch]
    finally:
        await reader.stop()
    return letters


async def test_a_real_consumer_answers_poison_and_keeps_its_partition_moving(session_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", get_settings().kafka_topic_prefix + "poison.")
    partition_count = (await ensure_topics(timeout=20))[topic(BILLING_COMMANDS)]
    monkeypatch.setitem(
        consumers.app.ROUTES, _BreakTransaction.command_type, TEST_ROUTES[_BreakTransaction.command_type]
    )
    a, b = await new_tenant(session_factory, "Kafka poison A"), await new_tenant(session_factory, "Kafka poison B")
    nul = command(a.organization_id, CustomerCreate.command_type, {"name": "bad\x00name"})
    breaker = command(a.organization_id, _BreakTransaction.command_type, {})
    good = [
        command(t.organization_id, CustomerCreate.command_type, {"name": f"{(t is a and 'a') or 'b'}{n}"})
        for n in range(10)
        for t in (a, b)
    ]

    async with consumer_and_publisher() as broker:
        for envelope in [nul, breaker, *good]:
            await publish_command(broker, envelope)
        async with asyncio.timeout(60):
            while (
                len(await _names(session_factory, a.organization_id))
                + len(await _names(session_factory, b.organization_id))
                < 20
            ):
                await asyncio.sleep(0.1)
        assert await _names(session_factory, a.organization_id) == sorted(f"a{n}" for n in range(10))
        assert (await _outcome_of(session_factory, nul.commandId)).error["code"] == "invalid_characters"
        letters = await _dead_letters(1)
        assert breaker.commandId in letters[0]["value"] and f"failed {ALONE_TRIES} times" in letters[0]["reason"]
        # every offset committed, the dead-lettered one too: the partition goes on
        ends = await _positions(partition_count, committed=False)
        async with asyncio.timeout(15):
            while await _positions(partition_count, committed=True) != ends:
                await asyncio.sleep(0.1)
