"""The OpenAPI spec (/schema/openapi.json) as the API really behaves, by rules rather than
by annotations on every controller.

Litestar documents each handler's success answer and its own default error body. The
answers that come from elsewhere — the middleware every request crosses (api/card_guard.py,
api/input_rules.py, the rate limiter), authentication (api/auth.py), the command bus
(api/bus.py, api/responses.py) and the exception handlers (api/errors.py) — follow from
what a handler takes, so they are added here from facts about each handler:

- every operation: 400 (a refused character, query or header; a card number anywhere),
  429 (the rate limiter) and 431 (a header over the limit);
- one that authenticates (every route not marked public, api/auth.py): the bearer scheme,
  401, and 503 (Postgres out of reach; Kafka too for writes);
- a path parameter, a list cursor, or an authenticated write's body (ids in it): 404 (an
  id of the wrong shape, or one that names nothing);
- a method with a body: 413 (over the route's limit);
- a command (takes an Idempotency-Key): 202 pending while the consumer has not answered
  within the wait, 409 (the state refuses it), and the Command-Id header on its answers;
- a few by what they call: the payment gateway (402, 502), operator-only writes (403).

Every error answer is the Stripe error object of api/errors.py. Besides: the bodies a
handler reads raw get their schema (usage events, Stripe events), the main resources get
examples, creates get OpenAPI links to the operations on what they made (and a pending
answer to its command), a query or header parameter loses Litestar's JSON-null branch, and
Litestar's any-JSON-value oneOf (integer and number both in it) becomes the anyOf it means.
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass, field, fields
from typing import Any

from litestar import Router
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import Components, OpenAPI, SecurityScheme
from litestar.types.internal_types import PathParameterDefinition
from pydantic import TypeAdapter

from api.auth import PUBLIC
from api.responses import COMMAND_ID_HEADER, REPLAYED_HEADER
from billing.payments.webhooks import SIGNATURE_HEADER
from contracts.usage import UsageEventBatch, UsageEventCreate

SECURITY_SCHEME = "bearerAuth"
ERROR_SCHEMA = "Error"
PENDING_SCHEMA = "PendingCommand"
COMMAND_OPERATION = "V1CommandsCommandIdRetrieve"
SCHEMA_REF = "#/components/schemas/{model}"

ERROR_TYPES = [
    "invalid_request_error",
    "authentication_error",
    "rate_limit_error",
    "idempotency_error",
    "card_error",
    "api_error",
]

ERROR = {
    "type": "object",
    "description": "Every error answer: Stripe's error object.",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message", "param"],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "enum": ERROR_TYPES},
                "code": {
                    "type": ["string", "null"],
                    "description": "A short string naming the error, e.g. `resource_missing`.",
                },
                "message": {"type": "string", "description": "A human-readable message."},
                "param": {
                    "type": ["string", "null"],
                    "description": "The parameter the error is about, Stripe-style: `metadata[note]`.",
                },
                "decline_code": {"type": "string", "description": "Card errors from the payment gateway only."},
            },
        }
    },
    "examples": [
        {
            "error": {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": "No such customer: 'cus_0000000000'",
                "param": "id",
            }
        }
    ],
}

PENDING = {
    "type": "object",
    "description": "The command is durable in Kafka and not applied yet: poll statusUrl.",
    "required": ["object", "id", "status", "statusUrl"],
    "properties": {
        "object": {"const": "command"},
        "id": {"type": "string"},
        "status": {"const": "pending"},
        "statusUrl": {"type": "string"},
    },
}

RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "required": True, "schema": {"type": "string"}}
}

ERROR_STATUSES: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("Invalid request: a parameter is missing, malformed or refused (`param` names it).", {}),
    401: ("No API key, or one that is not valid: send `Authorization: Bearer sk_...`.", {}),
    402: ("The payment gateway declined the card.", {}),
    403: ("The API key's organization may not do this.", {}),
    404: ("No such object, or an id of the wrong shape.", {}),
    409: ("The request conflicts with the current state of the object.", {}),
    413: ("The request body is over this endpoint's size limit.", {}),
    429: ("Too many requests for this API key: retry after `Retry-After` seconds.", RETRY_AFTER),
    431: ("A request header is too large.", {}),
    502: ("The payment gateway answered with an error.", {}),
    503: (
        "A dependency (Postgres, Kafka or the payment gateway) is unavailable; nothing was changed. Retry later.",
        RETRY_AFTER,
    ),
}

# list positions that name an object: one that names nothing is 404 (billing/db/pagination.py)
CURSORS = frozenset({"startingAfter", "endingBefore", "page"})
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
# the statuses that follow from the middleware every request crosses (api/app.py)
EVERY_OPERATION = {400, 429, 431}
GUARDED = {401, 503}
COMMAND = {409, 503}
# operations that reach the payment gateway (billing/payments/gateway.py GatewayError)
GATEWAY_TAGS = frozenset({"payment methods", "stripe account"})
GATEWAY = {402, 502, 503}
# what no handler fact says: (method, path) -> its own statuses
OWN_STATUSES: dict[tuple[str, str], set[int]] = {
    ("post", "/v1/exchange-rates"): {403},  # operator organizations only
    ("post", "/v1/webhooks/stripe/{organization_id}"): {
        503
    },  # no API key, yet Postgres and Kafka: Stripe retries later
    ("get", "/v1/analytics/usage"): {404},  # a meter or customer that names nothing
}
# a command that takes no Idempotency-Key (its encrypted payload differs every time)
COMMANDS_WITHOUT_KEY = frozenset({("put", "/v1/stripe-account")})

# bodies a handler reads itself (raw bytes), so Litestar cannot see their shape
RAW_BODIES: dict[tuple[str, str], tuple[str, Any]] = {
    ("post", "/v1/usage-events"): (
        'One usage event, or `{"events": [...]}` of up to 1,000.',
        UsageEventCreate | UsageEventBatch,
    ),
}
STRIPE_EVENT = {
    "type": "object",
    "description": "A Stripe event, exactly as Stripe sends it (the signature covers the raw bytes).",
    "required": ["id", "type", "data"],
    "properties": {"id": {"type": "string"}, "type": {"type": "string"}, "data": {"type": "object"}},
}
RAW_SCHEMAS = {("post", "/v1/webhooks/stripe/{organization_id}"): STRIPE_EVENT}

# examples of the main resources, shown in the reference and sent by schemathesis' example
# phase (tests/api/test_openapi.py checks each against its schema)
_CUSTOMER_ID = "cus_NffrFeUfNV2Hib"
_PRODUCT_ID = "prod_NWjs8kKbJWmuuc"
_TIME = "2026-01-31T12:00:00.000000Z"
EXAMPLES: dict[str, dict[str, Any]] = {
    "CustomerCreate": {"email": "jenny.rosen@example.com", "name": "Jenny Rosen", "metadata": {"plan": "pro"}},
    "Customer": {
        "id": _CUSTOMER_ID,
        "organizationId": "org_3MtwBwLkdIwHu7ix",
        "email": "jenny.rosen@example.com",
        "name": "Jenny Rosen",
        "phone": None,
        "description": None,
        "address": None,
        "shipping": None,
        "metadata": {"plan": "pro"},
        "currency": None,
        "balance": 0,
        "invoicePrefix": None,
        "preferredLocales": ["en-US"],
        "invoiceSettings": {},
        "defaultPaymentMethodId": None,
        "gatewayCustomerId": None,
        "testClockId": None,
        "deleted": False,
        "deletedAt": None,
        "createdAt": _TIME,
        "updatedAt": _TIME,
    },
    "ProductCreate": {"name": "Gold plan", "description": "Everything, billed monthly", "metadata": {}},
    "Product": {
        "id": _PRODUCT_ID,
        "organizationId": "org_3MtwBwLkdIwHu7ix",
        "name": "Gold plan",
        "description": "Everything, billed monthly",
        "active": True,
        "attributes": {},
        "metadata": {},
        "unitLabel": None,
        "createdAt": _TIME,
        "updatedAt": _TIME,
    },
    "PriceCreate": {
        "product": _PRODUCT_ID,
        "currency": "usd",
        "unitAmount": 2000,
        "recurring": {"interval": "month"},
    },
    "Price": {
        "id": "price_1MoBy5LkdIwHu7ix",
        "organizationId": "org_3MtwBwLkdIwHu7ix",
        "productId": _PRODUCT_ID,
        "active": True,
        "type": "recurring",
        "currency": "usd",
        "billingScheme": "per_unit",
        "unitAmount": 2000,
        "unitAmountDecimal": None,
        "tiersMode": None,
        "tiers": None,
        "transformQuantity": None,
        "recurringInterval": "month",
        "recurringIntervalCount": 1,
        "recurringUsageType": "licensed",
        "meterId": None,
        "currencyOptions": {},
        "lookupKey": None,
        "nickname": None,
        "metadata": {},
        "createdAt": _TIME,
        "updatedAt": _TIME,
    },
    "MeterCreate": {
        "displayName": "API tokens",
        "eventName": "tokens_used",
        "aggregation": "sum",
        "valueKey": "tokens",
    },
    "Meter": {
        "id": "mtr_61Q8yWLkdIwHu7ix",
        "organizationId": "org_3MtwBwLkdIwHu7ix",
        "displayName": "API tokens",
        "eventName": "tokens_used",
        "aggregation": "sum",
        "valueKey": "tokens",
        "filters": {},
        "active": True,
        "createdAt": _TIME,
        "updatedAt": _TIME,
    },
    "UsageEventCreate": {
        "eventName": "tokens_used",
        "customerId": _CUSTOMER_ID,
        "value": "1",
        "identifier": "req_8f14e45f",
        "properties": {"tokens": 1200, "model": "small"},
    },
}


SCHEMA_PATH = "/schema"


@dataclass(frozen=True)
class HandlerFacts:
    guarded: bool
    command: bool


def handler_facts(handler: HTTPRouteHandler) -> HandlerFacts:
    """What the handler's parameters say about the answers it can give."""
    takes = set(handler.parsed_fn_signature.parameters)
    # every route needs a key but those marked public (api/auth.py, default deny)
    return HandlerFacts(guarded=not handler.opt.get(PUBLIC), command="idempotency_key" in takes)


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without Litestar's `| None` branch: a query parameter or a
    header is absent or a string, never JSON null."""
    branches = schema.get("oneOf")
    if not branches:
        return schema
    kept = [branch for branch in branches if branch != {"type": "null"}]
    if len(kept) != 1:
        return schema
    rest = {key: value for key, value in schema.items() if key != "oneOf"}
    return {**kept[0], **rest}


def _error_response(status: int) -> dict[str, Any]:
    description, headers = ERROR_STATUSES[status]
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": SCHEMA_REF.format(model=ERROR_SCHEMA)}}},
    }
    if headers:
        response["headers"] = deepcopy(headers)
    return response


def _command_headers() -> dict[str, Any]:
    return {
        COMMAND_ID_HEADER: {
            "description": "The command this write is: GET /v1/commands/{id}.",
            "schema": {"type": "string"},
        },
        REPLAYED_HEADER: {
            "description": "`true` when this is the stored answer of an earlier request with the same Idempotency-Key.",
            "schema": {"type": "string"},
        },
    }


def _raw_body(schemas: dict[str, Any], description: str, model: Any) -> dict[str, Any]:
    adapter: TypeAdapter[Any] = TypeAdapter(model)
    document = adapter.json_schema(by_alias=True, ref_template=SCHEMA_REF)
    for name, definition in document.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    return {"description": description, "required": True, "content": {"application/json": {"schema": document}}}


def document_operation(
    method: str, path: str, operation: dict[str, Any], facts: HandlerFacts | None, schemas: dict[str, Any]
) -> None:
    """Adds to one operation what the rules say it can answer."""
    parameters = operation.get("parameters", [])
    for parameter in parameters:
        if "schema" in parameter:
            parameter["schema"] = _non_null(parameter["schema"])
    guarded = facts is not None and facts.guarded
    command = (facts is not None and facts.command) or (method, path) in COMMANDS_WITHOUT_KEY
    statuses = set(EVERY_OPERATION) | OWN_STATUSES.get((method, path), set())
    if guarded:
        statuses |= GUARDED
        operation["security"] = [{SECURITY_SCHEME: []}]
    else:
        operation["security"] = []  # no API key: the webhook's proof is its signature
    if any(parameter.get("in") == "path" or parameter.get("name") in CURSORS for parameter in parameters):
        statuses.add(404)
    if guarded and method in WRITE_METHODS and "requestBody" in operation:
        statuses.add(404)  # the ids a body names (a price's product, a setup intent's customer)
    if method in WRITE_METHODS:
        statuses.add(413)
    if command:
        statuses |= COMMAND
    if set(operation.get("tags", [])) & GATEWAY_TAGS:
        statuses |= GATEWAY
    if (method, path) in RAW_BODIES:
        operation["requestBody"] = _raw_body(schemas, *RAW_BODIES[(method, path)])
    if (method, path) in RAW_SCHEMAS:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": deepcopy(RAW_SCHEMAS[(method, path)])}},
        }
        parameters.append(
            {
                "name": SIGNATURE_HEADER,
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": "Stripe's signature of the raw body.",
            }
        )
        operation["parameters"] = parameters
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in list(responses):
        if int(status) >= 400:
            del responses[status]  # Litestar's own error body, which the API never sends
    if command:
        for response in responses.values():
            response.setdefault("headers", {}).update(_command_headers())
        responses.setdefault(
            "202",
            {
                "description": "Accepted: not applied within the wait; poll the command.",
                "headers": {
                    **_command_headers(),
                    COMMAND_ID_HEADER: {
                        "description": "The pending command's id.",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    "Location": {"description": "statusUrl", "required": True, "schema": {"type": "string"}},
                },
                "content": {"application/json": {"schema": {"$ref": SCHEMA_REF.format(model=PENDING_SCHEMA)}}},
            },
        )
    for code in sorted(statuses):
        responses[str(code)] = _error_response(code)


def _overlapping_types_any_of(node: Any) -> None:
    """Litestar writes "any JSON value" as a oneOf of every type, integer and number among
    them: an integer matches both, so a oneOf refuses every integer. Such a oneOf is an anyOf."""
    if isinstance(node, list):
        for item in node:
            _overlapping_types_any_of(item)
        return
    if not isinstance(node, dict):
        return
    branches = node.get("oneOf")
    if isinstance(branches, list) and {"type": "integer"} in branches and {"type": "number"} in branches:
        node["anyOf"] = node.pop("oneOf")
    for value in node.values():
        _overlapping_types_any_of(value)


_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


def _link_creates(paths: dict[str, Any]) -> None:
    """OpenAPI links from each create (POST on a collection, 201) to the operations on the
    object it made (`/collection/{id}...` whose only parameter is that id), and from a
    pending answer (202) to its command: what a client does next, and the chains
    schemathesis' stateful phase follows."""
    for path, item in paths.items():
        create = item.get("post", {}).get("responses", {}).get("201")
        if create is not None and not _PATH_PARAMETER.search(path):
            for other, other_item in paths.items():
                names = _PATH_PARAMETER.findall(other)
                if len(names) == 1 and other.startswith(f"{path}/{{{names[0]}}}"):
                    for method, operation in other_item.items():
                        if method in {"get", *WRITE_METHODS}:
                            create.setdefault("links", {})[operation["operationId"]] = {
                                "operationId": operation["operationId"],
                                "parameters": {names[0]: "$response.body#/id"},
                            }
        for operation in item.values():
            pending = operation.get("responses", {}).get("202") if isinstance(operation, dict) else None
            if pending is not None and pending["content"]["application/json"]["schema"].get("$ref", "").endswith(
                PENDING_SCHEMA
            ):
                pending["links"] = {
                    "CommandStatus": {
                        "operationId": COMMAND_OPERATION,
                        "parameters": {"command_id": "$response.body#/id"},
                    }
                }


def document(schema: dict[str, Any], facts: dict[str, HandlerFacts]) -> dict[str, Any]:
    """The generated schema with every rule applied (a new dict)."""
    schema = deepcopy(schema)
    _overlapping_types_any_of(schema)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = deepcopy(ERROR)
    schemas[PENDING_SCHEMA] = deepcopy(PENDING)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                document_operation(method, path, operation, facts.get(operation.get("operationId", "")), schemas)
    _link_creates(schema.get("paths", {}))
    for name, example in EXAMPLES.items():
        if name in schemas:
            schemas[name]["examples"] = [deepcopy(example)]
    return schema


@dataclass
class DocumentedOpenAPI(OpenAPI):
    """Litestar's OpenAPI object, whose dict form has the rules of `document` applied."""

    facts: dict[str, HandlerFacts] = field(default_factory=dict)

    def to_schema(self) -> dict[str, Any]:
        generated = super().to_schema()
        generated.pop("facts", None)
        return document(generated, self.facts)


@dataclass
class DocumentedOpenAPIConfig(OpenAPIConfig):
    """Records the facts of each handler as Litestar names its operation, and builds a
    `DocumentedOpenAPI` that applies them."""

    handler_facts: dict[str, HandlerFacts] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        name_operation = self.operation_id_creator

        def creator(handler: HTTPRouteHandler, method: Any, components: list[str | PathParameterDefinition]) -> str:
            operation_id = name_operation(handler, method, components)
            self.handler_facts[operation_id] = handler_facts(handler)
            return operation_id

        self.operation_id_creator = creator

    def to_openapi_schema(self) -> OpenAPI:
        base = super().to_openapi_schema()
        values = {f.name: getattr(base, f.name) for f in fields(OpenAPI)}
        return DocumentedOpenAPI(**values, facts=self.handler_facts)


def openapi_config(render_plugins: list[OpenAPIRenderPlugin]) -> OpenAPIConfig:
    """The API's OpenAPI config: title, the bearer scheme, and the rules above."""
    return DocumentedOpenAPIConfig(
        title="Billing API",
        version="1.0.0",
        description="A self-hosted, Stripe-like billing API. Authenticate with `Authorization: Bearer sk_...`.",
        path=SCHEMA_PATH,
        # the reference is public: the spec and the page that shows it need no key
        openapi_router=Router(SCHEMA_PATH, route_handlers=[], include_in_schema=False, opt={PUBLIC: True}),
        components=Components(
            security_schemes={
                SECURITY_SCHEME: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="A secret API key of the organization: `Authorization: Bearer sk_...`.",
                )
            }
        ),
        render_plugins=render_plugins,
    )


__all__ = ["DocumentedOpenAPIConfig", "HandlerFacts", "document", "handler_facts", "openapi_config"]
