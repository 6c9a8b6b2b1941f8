"""The OpenAPI spec tells the truth (api/openapi.py): Stripe's error object for every
error answer, the bearer scheme on the operations that authenticate, a request schema for
every body, the schema.prisma `///` comments as field descriptions, and examples that are
valid against their own schemas. (Whether the API answers as documented is what
tests/api/test_schemathesis.py checks against the running API.)"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from litestar.routes import HTTPRoute

from api.app import create_app
from api.openapi import EXAMPLES, SECURITY_SCHEME
from contracts.settings import PROJECT_ROOT, get_settings

pytestmark = pytest.mark.unit

WRITE_METHODS = {"post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(get_settings())  # the lifespan does not run: the spec needs no services


@pytest.fixture(scope="module")
def spec(app: Any) -> dict[str, Any]:
    return app.openapi_schema.to_schema()  # type: ignore[no-any-return]


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in {"get", *WRITE_METHODS}
    ]


def handlers(app: Any) -> dict[tuple[str, str], set[str]]:
    """(method, path) -> the parameters its handler takes."""
    found = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for method, handler in route.route_handler_map.items():
                handler = handler[0] if isinstance(handler, tuple) else handler
                found[(method.lower(), route.path_format)] = set(handler.parsed_fn_signature.parameters)
    return found


def test_every_error_answer_is_the_stripe_error_object(spec: dict[str, Any]) -> None:
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert set(error["properties"]["error"]["required"]) == {"type", "code", "message", "param"}
    seen = 0
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                seen += 1
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                }, (method, path, status)
    assert seen > 300
    assert "status_code" not in json.dumps(spec)  # Litestar's own error body is nowhere


def test_statuses_by_rule(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    assert {"400", "401", "404", "429", "431", "503"} <= set(paths["/v1/customers/{customer_id}"]["get"]["responses"])
    assert {"202", "409", "413"} <= set(paths["/v1/customers"]["post"]["responses"])
    assert "404" in paths["/v1/customers"]["get"]["responses"]  # startingAfter naming nothing
    assert "403" in paths["/v1/exchange-rates"]["post"]["responses"]
    assert {"402", "502"} <= set(paths["/v1/setup-intents"]["post"]["responses"])
    assert "Retry-After" in paths["/v1/customers"]["post"]["responses"]["503"]["headers"]
    assert "Command-Id" in paths["/v1/customers"]["post"]["responses"]["201"]["headers"]


def test_bearer_scheme_on_authenticated_operations_only(app: Any, spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"][SECURITY_SCHEME]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    takes = handlers(app)
    for method, path, operation in operations(spec):
        authenticates = bool(takes[(method, path)] & {"caller", "db"})
        assert operation["security"] == ([{SECURITY_SCHEME: []}] if authenticates else []), (method, path)
        assert ("401" in operation["responses"]) == authenticates, (method, path)
    webhook = spec["paths"]["/v1/webhooks/stripe/{organization_id}"]["post"]
    assert webhook["security"] == [] and any(p["name"] == "Stripe-Signature" for p in webhook["parameters"])
    assert "/health" not in spec["paths"]


def test_every_body_has_a_request_schema(app: Any, spec: dict[str, Any]) -> None:
    takes = handlers(app)
    for method, path, operation in operations(spec):
        handler_takes = takes[(method, path)]
        # a parsed body, or the raw one a write handler reads itself
        if "data" in handler_takes or (method in WRITE_METHODS and "request" in handler_takes):
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert schema, (method, path)
    usage = spec["paths"]["/v1/usage-events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert usage == {
        "anyOf": [{"$ref": "#/components/schemas/UsageEventCreate"}, {"$ref": "#/components/schemas/UsageEventBatch"}]
    }
    event = spec["components"]["schemas"]["UsageEventCreate"]
    assert {"eventName", "customerId", "value", "identifier"} <= set(event["required"])


def test_prisma_comments_are_field_descriptions(spec: dict[str, Any]) -> None:
    dmmf = json.loads((PROJECT_ROOT / "prisma" / "generated" / "dmmf.json").read_text())
    schemas = spec["components"]["schemas"]
    checked = []
    for model in dmmf["models"]:
        if model["name"] not in schemas:
            continue
        properties = schemas[model["name"]]["properties"]
        for field in model["fields"]:
            text = "\n".join(
                line for line in (field.get("documentation") or "").splitlines() if not line.startswith("@")
            )
            if text and field["name"] in properties:
                assert properties[field["name"]].get("description") == text, (model["name"], field["name"])
                checked.append(f"{model['name']}.{field['name']}")
    assert {"ApiKey.prefix", "Customer.balance", "Price.unitAmount"} <= set(checked), checked


def test_examples_are_valid_against_their_schemas(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert {"Customer", "Product", "Price", "Meter", "UsageEventCreate"} <= set(EXAMPLES)
    for name in EXAMPLES:
        assert schemas[name]["examples"] == [EXAMPLES[name]]
        # the whole spec as the root, so the example's $refs resolve to its components
        root = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": f"#/components/schemas/{name}",
            "components": spec["components"],
        }
        jsonschema.Draft202012Validator(root).validate(EXAMPLES[name])
    error = schemas["Error"]
    jsonschema.validate(error["examples"][0], error)
