"""apply_batch against the real test database: dedupe, outcomes, dead letters, tenancy."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select

from billing.customers.service import create_customer
from billing.delivery.outcomes import outcomes_of
from billing.errors import InvalidRequest
from billing.models import Customer, Outbox, ProcessedCommand
from consumers.app import ROUTES
from consumers.pipeline import RawCommand, apply_batch
from consumers.registry import Applied, Route
from contracts.commands import Command
from contracts.customers import CustomerCreate, CustomerDeleteCommand, CustomerUpdateCommand
from contracts.envelopes import Actor, CommandEnvelope, utcnow
from contracts.meters import MeterUpdateCommand
from tests.api.conftest import new_tenant


def record(envelope: CommandEnvelope | bytes, offset: int = 0) -> RawCommand:
    value = envelope if isinstance(envelope, bytes) else envelope.model_dump_json().encode()
    return RawCommand(value, "billing.commands", 0, offset)


def command(organization_id: str, command_type: str, payload: dict, command_id: str | None = None) -> CommandEnvelope:
    return CommandEnvelope(
        commandId=command_id or f"cmd_{uuid.uuid4().hex}",
        type=command_type,
        organizationId=organization_id,
        actor=Actor(type="system", id="test"),
        issuedAt=utcnow(),
        payload=payload,
    )


async def test_a_batch_of_two_tenants_records_every_outcome_once(session_factory) -> None:  # type: ignore[no-untyped-def]
    a = await new_tenant(session_factory, "A")
    b = await new_tenant(session_factory, "B")
    first = command(a.organization_id, CustomerCreate.command_type, {"name": "a1"})
    batch = [
        first,
        command(b.organization_id, CustomerCreate.command_type, {"name": "b1"}),
        command(a.organization_id, CustomerCreate.command_type, {"name": "a2"}),
        first,  # redelivered inside the batch
        command(a.organization_id, "customer.explode", {}),
        command(a.organization_id, CustomerCreate.command_type, {"email": "nope"}),
    ]
    result = await apply_batch(session_factory, ROUTES, [record(e, i) for i, e in enumerate(batch)])
    assert (result.applied, result.duplicates, result.dead_letters) == (5, 1, [])

    async with session_factory() as session:
        processed = {
            row.command_id: row
            for row in (
                await session.scalars(
                    select(ProcessedCommand).where(ProcessedCommand.command_id.in_([e.commandId for e in batch]))
                )
            ).all()
        }
        names = sorted(
            (
                await session.scalars(
                    select(Customer.name).where(Customer.organization_id.in_([a.organization_id, b.organization_id]))
                )
            ).all()
        )
        outbox = (
            await session.scalars(
                select(Outbox).where(Outbox.organization_id.in_([a.organization_id, b.organization_id]))
            )
        ).all()
    assert len(processed) == 5
    assert names == ["a1", "a2", "b1"]
    assert processed[batch[4].commandId].error["code"] == "unknown_command"
    assert processed[batch[5].commandId].error == {
        "type": "invalid_request_error",
        "code": "email_invalid",
        "message": processed[batch[5].commandId].error["message"],
        "param": "email",
        "status": 400,
    }
    by_type: dict[str, int] = {}
    for row in outbox:
        by_type[row.event_type] = by_type.get(row.event_type, 0) + 1
    assert by_type == {"command.succeeded": 4, "command.failed": 2, "customer.created": 3}

    replay = await apply_batch(session_factory, ROUTES, [record(e) for e in batch[:3]])
    assert (replay.applied, replay.duplicates) == (0, 3)
    async with session_factory() as session:
        again = sorted(
            (
                await session.scalars(
                    select(Customer.name).where(Customer.organization_id.in_([a.organization_id, b.organization_id]))
                )
            ).all()
        )
    assert again == names


async def test_unparseable_messages_become_dead_letters_with_reasons(session_factory) -> None:  # type: ignore[no-untyped-def]
    records = [
        record(b"{not json", 1),
        record(b"", 2),
        record(json.dumps({"type": CustomerCreate.command_type}).encode(), 3),
    ]
    result = await apply_batch(session_factory, ROUTES, records)
    assert result.applied == 0
    reasons = [letter.reason for letter in result.dead_letters]
    assert reasons[0].startswith("not JSON")
    assert reasons[1] == "empty message"
    assert reasons[2].startswith("not a command envelope") and "commandId" in reasons[2]
    assert [letter.record.offset for letter in result.dead_letters] == [1, 2, 3]


async def test_a_command_id_of_another_tenant_is_refused_without_its_outcome(session_factory) -> None:  # type: ignore[no-untyped-def]
    a = await new_tenant(session_factory, "Owner")
    b = await new_tenant(session_factory, "Intruder")
    original = command(a.organization_id, CustomerCreate.command_type, {"name": "secret name"})
    await apply_batch(session_factory, ROUTES, [record(original)])
    forged = command(b.organization_id, CustomerCreate.command_type, {"name": "x"}, command_id=original.commandId)
    await apply_batch(session_factory, ROUTES, [record(forged)])
    async with session_factory() as session:
        events = (
            await session.scalars(
                select(Outbox).where(Outbox.organization_id == b.organization_id, Outbox.event_type == "command.failed")
            )
        ).all()
    assert len(events) == 1
    data = events[0].payload["data"]
    assert data["error"]["code"] == "command_id_in_use" and data["result"] is None
    assert "secret name" not in json.dumps(events[0].payload)


class _Name(Command[Any]):
    name: str


async def _write_then_fail(session, payload: _Name) -> Applied:  # type: ignore[no-untyped-def]
    await create_customer(session, CustomerCreate(name=payload.name))
    raise InvalidRequest("refused after writing", code="late_refusal", param="name")


async def test_a_command_failing_after_it_wrote_leaves_nothing_behind(session_factory) -> None:  # type: ignore[no-untyped-def]
    """The fast pass has no savepoints: a late failure makes the batch run again isolated."""
    tenant = await new_tenant(session_factory, "Late failure")
    routes = {**ROUTES, "test.write_then_fail": Route(_Name, _write_then_fail)}
    batch = [
        command(tenant.organization_id, CustomerCreate.command_type, {"name": "before"}),
        command(tenant.organization_id, "test.write_then_fail", {"name": "ghost"}),
        command(
            tenant.organization_id, CustomerUpdateCommand.command_type, {"id": "cus_missing", "changes": {"name": "x"}}
        ),
        command(tenant.organization_id, CustomerCreate.command_type, {"name": "after"}),
    ]
    result = await apply_batch(session_factory, routes, [record(e, i) for i, e in enumerate(batch)])
    assert result.applied == 4
    async with session_factory() as session:
        names = sorted(
            (
                await session.scalars(select(Customer.name).where(Customer.organization_id == tenant.organization_id))
            ).all()
        )
        processed = {
            row.command_id: row
            for row in (
                await session.scalars(
                    select(ProcessedCommand).where(ProcessedCommand.organization_id == tenant.organization_id)
                )
            ).all()
        }
    assert names == ["after", "before"]
    assert processed[batch[1].commandId].error["code"] == "late_refusal"
    assert processed[batch[2].commandId].error["code"] == "resource_missing"
    assert processed[batch[3].commandId].status.value == "succeeded"


async def test_a_batch_sees_its_own_writes_and_keeps_each_commands_result(session_factory) -> None:  # type: ignore[no-untyped-def]
    """Writes go out together at the end of a batch, yet a later command reads an earlier
    one's row, and each outcome shows the state right after its own command."""
    tenant = await new_tenant(session_factory, "Same batch")
    create = command(tenant.organization_id, CustomerCreate.command_type, {"name": "first"})
    result = await apply_batch(session_factory, ROUTES, [record(create)])
    customer_id = (await _outcome_of(session_factory, create.commandId)).result["id"]
    second = command(tenant.organization_id, CustomerCreate.command_type, {"name": "second", "metadata": {"k": "v"}})
    batch = [
        second,
        command(
            tenant.organization_id,
            CustomerUpdateCommand.command_type,
            {"id": customer_id, "changes": {"name": "renamed"}},
        ),
        command(
            tenant.organization_id, CustomerUpdateCommand.command_type, {"id": customer_id, "changes": {"phone": "+44"}}
        ),
        command(tenant.organization_id, CustomerDeleteCommand.command_type, {"id": customer_id}),
        command(
            tenant.organization_id,
            CustomerUpdateCommand.command_type,
            {"id": customer_id, "changes": {"name": "too late"}},
        ),
    ]
    result = await apply_batch(session_factory, ROUTES, [record(e, i) for i, e in enumerate(batch)])
    assert result.applied == 5
    outcomes = [await _outcome_of(session_factory, e.commandId) for e in batch]
    assert outcomes[1].result["name"] == "renamed" and outcomes[1].result["phone"] is None
    assert outcomes[2].result["name"] == "renamed" and outcomes[2].result["phone"] == "+44"
    assert outcomes[3].result["deleted"] is True
    assert outcomes[4].error["code"] == "resource_missing"
    async with session_factory() as session:
        stored = (
            await session.scalars(
                select(Customer).where(Customer.organization_id == tenant.organization_id).order_by(Customer.name)
            )
        ).all()
    assert [(c.name, c.deleted) for c in stored] == [("renamed", True), ("second", False)]
    second_result = outcomes[0].result
    assert second_result["createdAt"] == next(c for c in stored if c.name == "second").created_at.isoformat().replace(
        "+00:00", "Z"
    )


async def _outcome_of(session_factory, command_id: str):  # type: ignore[no-untyped-def]
    async with session_factory() as session:
        return (await outcomes_of(session, [command_id]))[command_id][1]


async def _insert_fixed_id(session, payload: _Name) -> Applied:  # type: ignore[no-untyped-def]
    customer = await create_customer(session, CustomerCreate(name="fixed"))
    customer.id = payload.name
    return Applied("customer", {"id": customer.id})


async def test_a_constraint_broken_at_the_batch_write_is_charged_to_its_command(session_factory) -> None:  # type: ignore[no-untyped-def]
    """Rows go out together at the end of the optimistic pass: a duplicate key there rolls
    the batch back, and the isolated pass tells which command it was."""
    tenant = await new_tenant(session_factory, "Duplicate key")
    routes = {**ROUTES, "test.insert_fixed_id": Route(_Name, _insert_fixed_id)}
    fixed = f"cus_fixed_{uuid.uuid4().hex[:8]}"
    batch = [
        command(tenant.organization_id, "test.insert_fixed_id", {"name": fixed}),
        command(tenant.organization_id, CustomerCreate.command_type, {"name": "unrelated"}),
        command(tenant.organization_id, "test.insert_fixed_id", {"name": fixed}),
    ]
    await apply_batch(session_factory, routes, [record(e, i) for i, e in enumerate(batch)])
    outcomes = [await _outcome_of(session_factory, e.commandId) for e in batch]
    assert [o.status for o in outcomes] == ["succeeded", "succeeded", "failed"]
    assert outcomes[2].error["code"] == "resource_conflict" and outcomes[2].error["status"] == 409
    async with session_factory() as session:
        names = sorted(
            (
                await session.scalars(select(Customer.name).where(Customer.organization_id == tenant.organization_id))
            ).all()
        )
    assert names == ["fixed", "unrelated"]


async def test_a_bad_change_published_straight_to_kafka_is_a_400_naming_the_field(session_factory) -> None:  # type: ignore[no-untyped-def]
    """Direct publishers skip the API's checks: the services check `changes` again."""
    tenant = await new_tenant(session_factory, "Direct publisher")
    create = command(tenant.organization_id, CustomerCreate.command_type, {"name": "x"})
    await apply_batch(session_factory, ROUTES, [record(create)])
    customer_id = (await _outcome_of(session_factory, create.commandId)).result["id"]
    bad = [
        command(
            tenant.organization_id,
            CustomerUpdateCommand.command_type,
            {"id": customer_id, "changes": {"email": "not-an-email"}},
        ),
        command(
            tenant.organization_id,
            CustomerUpdateCommand.command_type,
            {"id": customer_id, "changes": {"colour": "red"}},
        ),
        command(
            tenant.organization_id,
            MeterUpdateCommand.command_type,
            {"id": "mtr_missing", "changes": {"displayName": 5}},
        ),
    ]
    await apply_batch(session_factory, ROUTES, [record(e, i) for i, e in enumerate(bad)])
    errors = [(await _outcome_of(session_factory, e.commandId)).error for e in bad]
    assert [(e["status"], e["code"], e["param"]) for e in errors] == [
        (400, "email_invalid", "email"),
        (400, "parameter_unknown", "colour"),
        (400, "parameter_invalid", "displayName"),
    ]
