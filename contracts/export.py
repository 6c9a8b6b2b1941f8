"""The message contracts as documents other systems can use: JSON Schema of every command
(the envelope with its payload, one branch per command type), of the event envelope and of
usage events, and an AsyncAPI 3.0 document of the Kafka topics. `billing contracts export
--out DIR` writes them.

Pure: builds dicts from the pydantic models, does no I/O. The command classes are an
argument (the CLI passes `contracts.commands.all_commands()`; a test, a subset).

Why not FastStream's AsyncAPI generator: given a broker it documents each subscriber or
publisher with its one payload model, a correlation id in a `correlation_id` header and
no Kafka key; our topics carry one message per command type, are keyed by
organizationId and are correlated by `commandId`. The document is built here instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, Field, TypeAdapter, create_model
from pydantic.json_schema import models_json_schema

from contracts.envelopes import SCHEMA_VERSION, CommandEnvelope, CommandOutcome, EventEnvelope
from contracts.events import OutcomeEventType
from contracts.usage import MAX_EVENT_AGE, MAX_FUTURE_SKEW, VALUE_SCALE, UsageEvent

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"

# The topic names (producers/topics.py holds the same names with their partition counts;
# a test keeps the two equal).
BILLING_COMMANDS = "billing.commands"
BILLING_EVENTS = "billing.events"
BILLING_COMMANDS_DLQ = "billing.commands.dlq"
USAGE_EVENTS = "usage.events"

OUTCOME_EVENT_TYPES = get_args(OutcomeEventType)

FILES = ("commands.schema.json", "events.schema.json", "usage.schema.json", "asyncapi.json")

PayloadModels = Mapping[str, type[BaseModel]]


# ------------------------------------------------------------------------------ models


def envelope_model_name(command_type: str) -> str:
    """customer.create -> CustomerCreateEnvelope (payload models never end in Envelope)."""
    return (
        "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", command_type) if part) + "Envelope"
    )


def command_envelope_models(payload_models: PayloadModels) -> dict[str, type[CommandEnvelope]]:
    """One CommandEnvelope subclass per command type: `type` fixed, `payload` typed."""
    if not payload_models:
        raise ValueError("no command types to export")
    models: dict[str, type[CommandEnvelope]] = {}
    for command_type, payload_model in sorted(payload_models.items()):
        doc = (payload_model.__doc__ or "").strip()
        fixed_type: Any = Literal[command_type]  # a type made at run time, one per command
        models[command_type] = create_model(
            envelope_model_name(command_type),
            __base__=CommandEnvelope,
            __doc__=f"The `{command_type}` command." + (f" Payload: {doc}" if doc else ""),
            type=(fixed_type, Field(description="The command type")),
            payload=(payload_model, ...),
        )
    return models


class OutcomeEvent(EventEnvelope):
    """`command.succeeded` / `command.failed`: a command's outcome, correlated by commandId
    (the API waits for it). `data.result` is the resource the command returned."""

    type: OutcomeEventType
    commandId: str
    data: CommandOutcome  # type: ignore[assignment]  # narrower than the envelope's dict: the schema documents the outcome


class CommandDeadLetter(BaseModel):
    """A message on billing.commands that is not a command envelope at all (not JSON, not
    the envelope's shape), set aside with the reason. A valid envelope whose command fails
    is not a dead letter: its failure is a `command.failed` event."""

    reason: str
    topic: str
    partition: int
    offset: int
    value: str = Field(description="The message value as text (undecodable bytes replaced)")
    receivedAt: str = Field(json_schema_extra={"format": "date-time"})


# ------------------------------------------------------------------------ JSON Schema


def _document(title: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    head = {"$schema": JSON_SCHEMA_DIALECT, "title": title, "description": description}
    schema = {k: v for k, v in schema.items() if k not in ("title", "description")}
    return {**head, **schema}


def commands_json_schema(payload_models: PayloadModels) -> dict[str, Any]:
    """Any command a system may publish to billing.commands: one branch per command type."""
    models = list(command_envelope_models(payload_models).values())
    union: Any = models[0] if len(models) == 1 else Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007
    schema = TypeAdapter(union).json_schema()
    if "oneOf" not in schema:  # a single command type: pydantic gives the model itself
        defs = schema.pop("$defs", {})
        defs[models[0].__name__] = schema
        schema = {"oneOf": [{"$ref": f"#/$defs/{models[0].__name__}"}], "$defs": defs}
    return _document(
        "Billing command",
        f"A command envelope (schemaVersion {SCHEMA_VERSION}) on Kafka `{BILLING_COMMANDS}`, keyed by organizationId. "
        "`type` selects the payload. The consumer checks more than a schema can say (metadata limits, ids that "
        "must exist): a valid envelope can still fail, and that failure is a `command.failed` event.",
        schema,
    )


def events_json_schema() -> dict[str, Any]:
    """Any event on billing.events; outcome events carry a CommandOutcome as data."""
    _, defs = models_json_schema([(EventEnvelope, "validation"), (CommandOutcome, "validation")])
    outcome = {"$ref": "#/$defs/CommandOutcome"}
    by_status = [
        {
            "if": {"properties": {"type": {"const": f"command.{status}"}}, "required": ["type"]},
            "then": {
                "required": ["commandId"],
                "properties": {
                    "commandId": {"type": "string"},
                    "data": {"allOf": [outcome, {"properties": {"status": {"const": status}}}]},
                },
            },
        }
        for status in ("succeeded", "failed")
    ]
    return _document(
        "Billing event",
        f"An event envelope on Kafka `{BILLING_EVENTS}`, keyed by organizationId: a command's outcome "
        f"({', '.join(OUTCOME_EVENT_TYPES)}; data is the CommandOutcome) or a domain event such as "
        "customer.created (data is the resource).",
        {"allOf": [{"$ref": "#/$defs/EventEnvelope"}, *by_status], **defs},
    )


def _usage_timestamp(schema: dict[str, Any]) -> None:
    """The model reads epoch seconds too (its validator runs before the type): say so."""
    schema["properties"]["timestamp"] = {
        "description": (
            "ISO-8601 with a UTC offset (2025-01-31T12:00:00Z) or epoch seconds (a JSON number or a decimal "
            f"string). At most {int(MAX_FUTURE_SKEW.total_seconds())} s in the future and "
            f"{MAX_EVENT_AGE.days} days in the past."
        ),
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "number"},
            {"type": "string", "pattern": r"^\s*[+-]?[0-9]+(\.[0-9]+)?\s*$"},
        ],
    }
    schema["properties"]["value"]["description"] = (
        f"A non-negative decimal: a JSON number or a decimal string, at most {VALUE_SCALE} decimal places, below 1e20."
    )


def usage_json_schema() -> dict[str, Any]:
    schema = UsageEvent.model_json_schema()
    _usage_timestamp(schema)
    return _document(
        "Usage event",
        f"One usage event on Kafka `{USAGE_EVENTS}`, keyed by organizationId. `identifier` is the event's "
        "idempotency key within the organization.",
        schema,
    )


# --------------------------------------------------------------------------- AsyncAPI


def _component_schemas(models: list[type[BaseModel]]) -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, Any]]:
    """{model: its $ref} and the components' schemas, for every model and what it uses."""
    keys, top = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    refs = {model: ref for (model, _), ref in keys.items() if isinstance(model, type) and issubclass(model, BaseModel)}
    schemas = top.get("$defs", {})
    _strip_discriminator_objects(schemas)  # AsyncAPI's `discriminator` is a property name, not OpenAPI's object
    return refs, schemas


def _strip_discriminator_objects(node: Any) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("discriminator"), dict):
            node["discriminator"] = node["discriminator"].get("propertyName")
        for value in node.values():
            _strip_discriminator_objects(value)
    elif isinstance(node, list):
        for value in node:
            _strip_discriminator_objects(value)


def _headers(properties: dict[str, dict[str, Any]], description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": properties}


ORGANIZATION_KEY = {
    "kafka": {
        "key": {"type": "string", "description": "organizationId: one organization's messages stay in order"},
        "bindingVersion": KAFKA_BINDING_VERSION,
    }
}


def asyncapi_document(
    payload_models: PayloadModels,
    *,
    partitions: Mapping[str, int] | None = None,
    server: str = "localhost:9092",
    version: str = "1.0.0",
) -> dict[str, Any]:
    """AsyncAPI 3.0 from the point of view of a system that integrates: it sends commands
    and usage events, and receives events and command dead letters."""
    envelopes = command_envelope_models(payload_models)
    refs, schemas = _component_schemas(
        [*envelopes.values(), EventEnvelope, OutcomeEvent, CommandDeadLetter, UsageEvent]
    )
    usage_ref = refs[UsageEvent]["$ref"].rsplit("/", 1)[-1]
    _usage_timestamp(schemas[usage_ref])

    messages: dict[str, Any] = {}
    command_messages: dict[str, Any] = {}
    for command_type, model in envelopes.items():
        name = model.__name__.removesuffix("Envelope") + "Command"
        messages[name] = {
            "name": command_type,
            "title": f"{command_type} command",
            "summary": (model.model_fields["payload"].annotation.__doc__ or "").strip().split("\n\n")[0] or None,
            "contentType": "application/json",
            "payload": refs[model],
            "headers": _headers(
                {
                    "command-type": {"type": "string", "const": command_type},
                    "command-id": {"type": "string", "description": "The envelope's commandId"},
                },
                "Set by the platform's own publisher for readers that route without parsing; the consumer reads "
                "only the envelope.",
            ),
            "correlationId": {"location": "$message.payload#/commandId"},
            "bindings": ORGANIZATION_KEY,
        }
        if messages[name]["summary"] is None:
            del messages[name]["summary"]
        command_messages[name] = {"$ref": f"#/components/messages/{name}"}

    event_headers = _headers(
        {
            "event-type": {"type": "string", "description": "The envelope's type"},
            "command-id": {"type": "string", "description": "The commandId, when the event comes from a command"},
        },
        "Set by the outbox relay, so a reader can skip event types without parsing JSON.",
    )
    messages["CommandOutcome"] = {
        "name": "command.succeeded / command.failed",
        "title": "Command outcome",
        "summary": "A command's outcome; wait for it by commandId.",
        "contentType": "application/json",
        "payload": refs[OutcomeEvent],
        "headers": event_headers,
        "correlationId": {"location": "$message.payload#/commandId"},
        "bindings": ORGANIZATION_KEY,
    }
    messages["DomainEvent"] = {
        "name": "domain event",
        "title": "Domain event",
        "summary": "A fact such as customer.created; data is the resource.",
        "contentType": "application/json",
        "payload": refs[EventEnvelope],
        "headers": event_headers,
        "bindings": ORGANIZATION_KEY,
    }
    messages["CommandDeadLetter"] = {
        "name": "command dead letter",
        "title": "Command dead letter",
        "summary": "A message on billing.commands that was not a command envelope, with the reason.",
        "contentType": "application/json",
        "payload": refs[CommandDeadLetter],
    }
    messages["UsageEvent"] = {
        "name": "usage event",
        "title": "Usage event",
        "summary": "Customer C of organization O used eventName worth value at timestamp.",
        "contentType": "application/json",
        "payload": refs[UsageEvent],
        "bindings": ORGANIZATION_KEY,
    }

    def channel(address: str, description: str, channel_messages: dict[str, Any]) -> dict[str, Any]:
        kafka: dict[str, Any] = {"topic": address, "bindingVersion": KAFKA_BINDING_VERSION}
        if partitions and address in partitions:
            kafka["partitions"] = partitions[address]
        return {
            "address": address,
            "description": description,
            "messages": channel_messages,
            "bindings": {"kafka": kafka},
        }

    channels = {
        "billingCommands": channel(
            BILLING_COMMANDS,
            "Commands: publish one envelope per message, keyed by organizationId. A duplicate commandId is "
            "applied once and answered with the first outcome.",
            command_messages,
        ),
        "billingEvents": channel(
            BILLING_EVENTS,
            "Command outcomes and domain events, published after the Postgres commit (transactional outbox).",
            {
                "CommandOutcome": {"$ref": "#/components/messages/CommandOutcome"},
                "DomainEvent": {"$ref": "#/components/messages/DomainEvent"},
            },
        ),
        "billingCommandsDlq": channel(
            BILLING_COMMANDS_DLQ,
            "Messages of billing.commands that could not be read as a command envelope, with the reason.",
            {"CommandDeadLetter": {"$ref": "#/components/messages/CommandDeadLetter"}},
        ),
        "usageEvents": channel(
            USAGE_EVENTS,
            "Product usage, stored in ClickHouse by the analytics consumer (invalid events are kept as dead "
            "letters there).",
            {"UsageEvent": {"$ref": "#/components/messages/UsageEvent"}},
        ),
    }

    def operation(action: str, channel_id: str, summary: str) -> dict[str, Any]:
        return {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": summary,
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channels[channel_id]["messages"]],
        }

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Billing platform messages",
            "version": version,
            "description": (
                "The Kafka topics of the billing platform, seen from a system that integrates with it: it sends "
                f"commands to `{BILLING_COMMANDS}` and usage to `{USAGE_EVENTS}`, and receives outcomes and domain "
                f"events from `{BILLING_EVENTS}`. Topic names get the deployment's KAFKA_TOPIC_PREFIX, if any. "
                "JSON Schema of the same messages: commands.schema.json, events.schema.json, usage.schema.json."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": server,
                "protocol": "kafka",
                "description": "The brokers of KAFKA_BOOTSTRAP_SERVERS",
            }
        },
        "channels": channels,
        "operations": {
            "sendCommand": operation("send", "billingCommands", "Publish a command"),
            "receiveEvents": operation("receive", "billingEvents", "Read command outcomes and domain events"),
            "receiveCommandDeadLetters": operation("receive", "billingCommandsDlq", "Read commands set aside"),
            "sendUsageEvent": operation("send", "usageEvents", "Publish a usage event"),
        },
        "components": {"messages": messages, "schemas": schemas},
    }


def export_documents(
    payload_models: PayloadModels, *, partitions: Mapping[str, int] | None = None
) -> dict[str, dict[str, Any]]:
    """{file name: document} for every file of FILES."""
    return {
        "commands.schema.json": commands_json_schema(payload_models),
        "events.schema.json": events_json_schema(),
        "usage.schema.json": usage_json_schema(),
        "asyncapi.json": asyncapi_document(payload_models, partitions=partitions),
    }
