"""`billing contracts export`: the JSON Schema and AsyncAPI documents accept the messages
the platform really sends and reads, refuse bad ones, and list every command type the
consumer handles."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from billing.errors import ResourceMissing
from cli.main import app
from consumers.app import ROUTES
from consumers.pipeline import BatchRecords, RawCommand, RefusedCommand, dead_letter_message
from consumers.registry import Applied
from contracts import export
from contracts.api_keys import IssueApiKeyCommand, RevokeApiKeyCommand, RollApiKeyCommand
from contracts.commands import all_commands
from contracts.customers import CustomerCreate, CustomerDeleteCommand, CustomerUpdateCommand
from contracts.envelopes import Actor, CommandEnvelope, command_id_for, utcnow
from contracts.events import CUSTOMER_CREATED
from contracts.settings import PROJECT_ROOT
from contracts.usage import UsageEvent, UsageEventCreate
from producers import topics

pytestmark = pytest.mark.unit

PAYLOAD_MODELS = all_commands()
ORG = "org_export_test"


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return export.export_documents(PAYLOAD_MODELS, partitions=dict(topics.PARTITIONS))


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def errors(schema: dict[str, Any], instance: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator(schema).iter_errors(instance)]


def envelope(command_type: str, payload: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    """As api/bus.py builds it and producers/publisher.py puts it on Kafka."""
    model = ROUTES[command_type].command
    built = CommandEnvelope(
        commandId=command_id_for(ORG, key),
        type=command_type,
        organizationId=ORG,
        actor=Actor(type="api_key", id="key_123"),
        issuedAt=utcnow(),
        idempotencyKey=key,
        payload=model.model_validate(payload).model_dump(mode="json", exclude_unset=True),
    )
    return json.loads(built.model_dump_json())


REAL_COMMANDS = [
    (
        CustomerCreate.command_type,
        {
            "email": "jenny@example.com",
            "name": "Jenny",
            "metadata": {"plan": "pro"},
            "address": {"line1": "1 Main St", "country": "US"},
            "balance": -100,
        },
    ),
    (CustomerCreate.command_type, {}),
    (CustomerUpdateCommand.command_type, {"id": "cus_1", "changes": {"name": None, "metadata": {"plan": None}}}),
    (CustomerDeleteCommand.command_type, {"id": "cus_1"}),
    (
        IssueApiKeyCommand.command_type,
        {"id": "key_1", "name": "backend", "secretHash": "a" * 64, "prefix": "sk_live_abc"},
    ),
    (
        RollApiKeyCommand.command_type,
        {
            "oldKeyId": "key_1",
            "expiresInSeconds": 60,
            "newKey": {"id": "key_2", "name": "rolled", "secretHash": "b" * 64, "prefix": "sk_live_def"},
        },
    ),
    (RevokeApiKeyCommand.command_type, {"id": "key_2"}),
]


# --------------------------------------------------------------------------- commands


def test_the_command_schema_has_one_branch_per_registered_command_type(documents: dict[str, Any]) -> None:
    schema = documents["commands.schema.json"]
    branches = [schema["$defs"][ref["$ref"].rsplit("/", 1)[-1]] for ref in schema["oneOf"]]
    by_type = {b["properties"]["type"]["const"]: b for b in branches}
    assert set(by_type) == set(ROUTES) and len(branches) == len(ROUTES)
    for command_type, branch in by_type.items():
        payload = schema["$defs"][branch["properties"]["payload"]["$ref"].rsplit("/", 1)[-1]]
        assert payload["title"] == ROUTES[command_type].command.__name__, command_type
        assert branch["additionalProperties"] is False
        assert set(branch["required"]) >= {"commandId", "type", "organizationId", "actor", "issuedAt", "payload"}


@pytest.mark.parametrize(("command_type", "payload"), REAL_COMMANDS, ids=[c for c, _ in REAL_COMMANDS])
def test_real_command_envelopes_are_valid(
    documents: dict[str, Any], command_type: str, payload: dict[str, Any]
) -> None:
    message = envelope(command_type, payload, key="idem-1")
    assert errors(documents["commands.schema.json"], message) == []


def _bad_commands() -> list[tuple[str, dict[str, Any]]]:
    good = envelope(CustomerCreate.command_type, {"email": "a@example.com"})

    def edit(**changes: Any) -> dict[str, Any]:
        return {**json.loads(json.dumps(good)), **changes}

    return [
        ("unknown command type", edit(type="customer.obliterate")),
        ("payload field of the wrong type", edit(payload={"balance": "lots"})),
        ("unknown payload field", edit(payload={"nickname": "x"})),
        ("over-long payload string", edit(payload={"name": "x" * 300})),
        ("another command's payload", edit(type=CustomerDeleteCommand.command_type)),
        ("no commandId", {k: v for k, v in good.items() if k != "commandId"}),
        ("unknown envelope field", edit(priority=1)),
        ("bad actor", edit(actor={"type": "robot", "id": "x"})),
        ("wrong schema version", edit(schemaVersion=2)),
    ]


@pytest.mark.parametrize(("case", "message"), _bad_commands(), ids=[c for c, _ in _bad_commands()])
def test_a_bad_command_envelope_is_rejected(documents: dict[str, Any], case: str, message: dict[str, Any]) -> None:
    found = errors(documents["commands.schema.json"], message)
    assert found, f"{case}: accepted"
    # the consumer refuses it too (the envelope, the route, or the payload model)
    with pytest.raises((ValidationError, KeyError)):  # KeyError: no route for the type
        parsed = CommandEnvelope.model_validate(message)
        ROUTES[parsed.type].command.model_validate(parsed.payload)


# ----------------------------------------------------------------------------- events


def _real_events() -> list[dict[str, Any]]:
    records = BatchRecords()
    create = CommandEnvelope.model_validate(envelope(CustomerCreate.command_type, {"name": "Jenny"}))
    customer = {"id": "cus_1", "organizationId": ORG, "name": "Jenny"}
    records.outcome(create, Applied("customer", customer, events=[CUSTOMER_CREATED.of(customer)]), None)
    delete = CommandEnvelope.model_validate(envelope(CustomerDeleteCommand.command_type, {"id": "cus_missing"}))
    records.outcome(delete, None, ResourceMissing("customer", "cus_missing"))
    return [row["payload"] for row in records.events]


def test_real_events_are_valid(documents: dict[str, Any]) -> None:
    events = _real_events()
    assert [e["type"] for e in events] == ["command.succeeded", "customer.created", "command.failed"]
    for event in events:
        assert errors(documents["events.schema.json"], json.loads(json.dumps(event))) == [], event["type"]


def test_a_bad_event_is_rejected(documents: dict[str, Any]) -> None:
    succeeded, created, failed = _real_events()
    schema = documents["events.schema.json"]
    assert errors(schema, {**succeeded, "data": {"status": "succeeded"}})  # not a CommandOutcome
    assert errors(schema, {**failed, "data": {**failed["data"], "status": "succeeded"}})  # status disagrees with type
    assert errors(schema, {**succeeded, "commandId": None})  # an outcome must be correlated
    assert errors(schema, {k: v for k, v in created.items() if k != "eventId"})
    assert errors(schema, {**created, "extra": 1})


# ------------------------------------------------------------------------------ usage


def test_real_usage_events_are_valid_and_bad_ones_rejected(documents: dict[str, Any]) -> None:
    schema = documents["usage.schema.json"]
    event = UsageEventCreate.model_validate(
        {
            "eventName": "api_call",
            "customerId": "cus_1",
            "value": "12.5",
            "identifier": "u-1",
            "properties": {"region": "eu"},
        }
    ).to_event(ORG)
    _, value = event.to_kafka()
    assert errors(schema, json.loads(value)) == []
    # what a trusted publisher may also send: a JSON number and epoch seconds
    raw = {
        "eventName": "api_call",
        "customerId": "cus_1",
        "value": 3,
        "identifier": "u-2",
        "organizationId": ORG,
        "timestamp": int(utcnow().timestamp()),
    }
    UsageEvent.model_validate(raw)
    assert errors(schema, raw) == []
    assert errors(schema, {**raw, "timestamp": "1738324800.250"}) == []
    assert errors(schema, {k: v for k, v in raw.items() if k != "customerId"})
    assert errors(schema, {**raw, "colour": "red"})
    assert errors(schema, {**raw, "value": True})
    assert errors(schema, {**raw, "eventName": ""})


# --------------------------------------------------------------------------- AsyncAPI


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def payload_validator(document: dict[str, Any], message: str) -> jsonschema.Draft202012Validator:
    """The message's payload schema, its refs resolved inside the AsyncAPI document."""
    payload = document["components"]["messages"][message]["payload"]
    return jsonschema.Draft202012Validator({**payload, "components": {"schemas": document["components"]["schemas"]}})


def test_asyncapi_describes_the_topics_and_every_command(documents: dict[str, Any]) -> None:
    doc = documents["asyncapi.json"]
    assert doc["asyncapi"] == "3.0.0" and doc["info"]["title"] and doc["info"]["version"]
    for ref in _refs(doc):
        _resolve(doc, ref)  # every reference points somewhere

    addresses = {c["address"]: c for c in doc["channels"].values()}
    assert set(addresses) == {
        topics.BILLING_COMMANDS,
        topics.BILLING_EVENTS,
        topics.BILLING_COMMANDS_DLQ,
        topics.USAGE_EVENTS,
    }
    for address, channel in addresses.items():
        assert channel["bindings"]["kafka"]["partitions"] == topics.PARTITIONS[address]
    actions = {_resolve(doc, op["channel"]["$ref"])["address"]: op["action"] for op in doc["operations"].values()}
    assert actions == {
        topics.BILLING_COMMANDS: "send",
        topics.USAGE_EVENTS: "send",
        topics.BILLING_EVENTS: "receive",
        topics.BILLING_COMMANDS_DLQ: "receive",
    }
    for operation in doc["operations"].values():
        channel = _resolve(doc, operation["channel"]["$ref"])
        assert [m["$ref"].rsplit("/", 1)[-1] for m in operation["messages"]] == list(channel["messages"])

    commands = [_resolve(doc, m["$ref"]) for m in addresses[topics.BILLING_COMMANDS]["messages"].values()]
    assert sorted(m["name"] for m in commands) == sorted(ROUTES)
    for message in commands:
        assert message["headers"]["properties"]["command-type"]["const"] == message["name"]
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        assert message["correlationId"]["location"] == "$message.payload#/commandId"


def test_asyncapi_payloads_accept_real_messages(documents: dict[str, Any]) -> None:
    doc = documents["asyncapi.json"]
    by_name = {m["name"]: key for key, m in doc["components"]["messages"].items()}
    for command_type, payload in REAL_COMMANDS:
        check = payload_validator(doc, by_name[command_type])
        message = envelope(command_type, payload)
        assert list(check.iter_errors(message)) == [], command_type
        wrong = {**message, "payload": {**message["payload"], "unexpected": 1}}
        assert list(check.iter_errors(wrong)), command_type
    succeeded, created, failed = _real_events()
    assert not list(payload_validator(doc, "CommandOutcome").iter_errors(succeeded))
    assert not list(payload_validator(doc, "CommandOutcome").iter_errors(failed))
    assert list(payload_validator(doc, "CommandOutcome").iter_errors(created))  # not an outcome
    assert not list(payload_validator(doc, "DomainEvent").iter_errors(created))

    letter = dead_letter_message(
        RefusedCommand(RawCommand(b"\xffnot json", "billing.commands", 3, 42), "not JSON: ...")
    )
    assert not list(payload_validator(doc, "CommandDeadLetter").iter_errors(letter))
    assert list(payload_validator(doc, "CommandDeadLetter").iter_errors({**letter, "offset": "42"}))

    _, usage = (
        UsageEventCreate.model_validate(
            {"eventName": "api_call", "customerId": "cus_1", "value": 1, "identifier": "u-1"}
        )
        .to_event(ORG)
        .to_kafka()
    )
    assert not list(payload_validator(doc, "UsageEvent").iter_errors(json.loads(usage)))


# ------------------------------------------------------------------------ CLI, layering


def test_billing_contracts_export_writes_the_four_files(tmp_path: Path, documents: dict[str, Any]) -> None:
    result = CliRunner().invoke(app, ["contracts", "export", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = {p.name: json.loads(p.read_text()) for p in (tmp_path / "out").iterdir()}
    assert set(written) == set(export.FILES)
    assert written == json.loads(json.dumps(documents))


def test_topic_names_agree_with_producers() -> None:
    assert (export.BILLING_COMMANDS, export.BILLING_EVENTS, export.BILLING_COMMANDS_DLQ, export.USAGE_EVENTS) == (
        topics.BILLING_COMMANDS,
        topics.BILLING_EVENTS,
        topics.BILLING_COMMANDS_DLQ,
        topics.USAGE_EVENTS,
    )


def test_contracts_export_imports_only_contracts() -> None:
    tree = ast.parse((PROJECT_ROOT / "contracts" / "export.py").read_text())
    ours = {"api", "analytics", "billing", "cli", "consumers", "producers", "stack", "bench", "tests"}
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not imported & ours, imported & ours
