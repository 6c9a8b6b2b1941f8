"""Recorded responses of the real API type-check against the Prisma-generated TypeScript.

Every endpoint is driven through the real API, Kafka and Postgres; each response body is
written into a TypeScript file as an object literal under the type a frontend would use
(`const customer_create: ApiResource<Customer> = {...}`), and `tsc --strict --noEmit`
compiles it against prisma/generated/client (Prisma's model types), prisma/types/api.ts
(the JSON mapping: DateTime -> string, Decimal -> string, BigInt -> number, hidden fields
left out) and prisma/types/responses.ts (errors, search results, command status). Object
literals get TypeScript's excess-property check, so an extra field (a leaked hidden one),
a missing field, a wrong type or an unknown enum string all fail. Json columns that the API
answers in a known shape (a customer's address, a price's tiers, a product's attributes) are
narrowed with `Refine<ApiResource<Model>, ModelJsonFields>`: the JsonFields types are
generated in prisma/generated/json-shapes.ts from prisma/json-shapes.toml, the shapes the
Python resource models validate with too.

To cover a new endpoint: add its TypeScript type to RESPONSE_TYPES, drive it in a
scenario (a function decorated with @scenario below), and take its path off
NOT_YET_COVERED. `test_every_endpoint_is_recorded` fails for any endpoint of the API's
OpenAPI document that is neither recorded with a 2xx nor in NOT_YET_COVERED; GET
endpoints are also called automatically (lists as is, `{id}` paths with a missing id).

The API is the one tests/api/test_usage_events.py serves (`analytics_api`): the same app
beside the command consumer, plus the analytics consumer and the session's one chDB store
(one chDB directory per process), so usage events sent here are counted by /v1/analytics
and the dashboard's data endpoint, and the recorded usage responses carry real data.

Payments talk to Stripe: the stack's STRIPE_API_BASE is stripe-mock (stateless: every
PaymentMethod is the same Visa 4242), and what stripe-mock cannot answer (a declined card
with its decline_code, a key Stripe refuses, Stripe rate-limiting) comes from the scripted
Stripe of tests/api/test_payment_methods.py, behind a second API served for the scenario.
Stripe's webhooks are posted unauthenticated, signed with the organization's webhook
secret (`sign_payload`) over the raw body.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from billing.fx.service import FX_WRITERS_ENV
from billing.models import Payment, Subscription
from billing.payments.webhooks import sign_payload
from contracts.enums import PaymentStatus, SubscriptionStatus
from contracts.envelopes import command_id_for
from contracts.settings import PROJECT_ROOT, get_settings
from tests.api.conftest import Tenant, TenantClient, new_tenant, notifications_running, serve
from tests.api.test_payment_methods import scripted_stripe, stripe_secrets  # noqa: F401  (scripted_stripe: a fixture)
from tests.api.test_usage_events import (  # noqa: F401  (analytics_api: a fixture)
    AnalyticsStack,
    analytics_api,
    event,
    iso,
    wait_usage,
)
from tests.api.webhook_receiver import webhook_receiver
from tests.typescript import type_check

# the stripe SDK posts its form bodies to httpx as `data=` bytes
pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)

# ---------------------------------------------------------------------------------------
# THE REGISTRY: (METHOD, path as in the OpenAPI document) -> the TypeScript type of its
# 2xx body. Other engineers: add your endpoints here (and a @scenario that drives them).
# Any 4xx/5xx body is checked as `ErrorResponse`, any 202 as `CommandAccepted`.
# Names usable here: every model of prisma/generated/client/browser.ts (Customer, Product,
# Price, ...) and every type exported by prisma/types/*.ts (ApiResource, ApiList,
# SearchResult, CommandStatus, WithSecret, ...). Hidden fields (`/// @hidden` in
# schema.prisma) go in ApiResource's second argument, e.g. ApiResource<ApiKey, "secretHash">.
# ---------------------------------------------------------------------------------------
API_KEY = 'ApiResource<ApiKey, "secretHash">'
# Prisma's Json fields narrowed to the shapes the API writes (Refine of prisma/types/responses.ts
# and the generated *JsonFields of prisma/generated/json-shapes.ts: address, tiers, attributes, ...).
CUSTOMER = "Refine<ApiResource<Customer>, CustomerJsonFields>"
ATTRIBUTE = "Refine<ApiResource<ProductAttributeDefinition>, ProductAttributeDefinitionJsonFields>"
PRODUCT = "Refine<ApiResource<Product>, ProductJsonFields>"
PRICE = "Refine<ApiResource<Price>, PriceJsonFields>"
METER = "Refine<ApiResource<Meter>, MeterJsonFields>"
# Payments: stored payment methods are a Prisma model (billingDetails and metadata
# narrowed); the Stripe account, setup intents and the webhook answer are API shapes.
PAYMENT_METHOD = "Refine<ApiResource<CustomerPaymentMethod>, CustomerPaymentMethodJsonFields>"
TAX_RATE = "Refine<ApiResource<TaxRate>, TaxRateJsonFields>"
INVOICE_ITEM = "Refine<ApiResource<InvoiceItem>, InvoiceItemJsonFields>"
REFUND = "Refine<ApiResource<Refund>, RefundJsonFields>"
TEST_CLOCK = "ApiResource<TestClock>"
RESPONSE_TYPES: dict[tuple[str, str], str] = {
    ("POST", "/v1/customers"): CUSTOMER,
    ("GET", "/v1/customers"): f"ApiList<{CUSTOMER}>",
    ("GET", "/v1/customers/search"): f"SearchResult<{CUSTOMER}>",
    ("GET", "/v1/customers/{customer_id}"): CUSTOMER,
    ("PATCH", "/v1/customers/{customer_id}"): CUSTOMER,
    ("DELETE", "/v1/customers/{customer_id}"): CUSTOMER,
    ("GET", "/v1/api-keys"): f"ApiList<{API_KEY}>",
    ("POST", "/v1/api-keys"): f"WithSecret<{API_KEY}>",
    ("POST", "/v1/api-keys/{key_id}/roll"): f"WithSecret<{API_KEY}>",
    ("DELETE", "/v1/api-keys/{key_id}"): API_KEY,
    ("GET", "/v1/commands/{command_id}"): "CommandStatus",
    ("POST", "/v1/product-attributes"): ATTRIBUTE,
    ("GET", "/v1/product-attributes"): f"ApiList<{ATTRIBUTE}>",
    ("GET", "/v1/product-attributes/{definition_id}"): ATTRIBUTE,
    ("PATCH", "/v1/product-attributes/{definition_id}"): ATTRIBUTE,
    ("DELETE", "/v1/product-attributes/{definition_id}"): 'Deleted<ApiResource<ProductAttributeDefinition>, "key">',
    ("POST", "/v1/products"): PRODUCT,
    ("GET", "/v1/products"): f"ApiList<{PRODUCT}>",
    ("GET", "/v1/products/search"): f"SearchResult<{PRODUCT}>",
    ("GET", "/v1/products/{product_id}"): PRODUCT,
    ("PATCH", "/v1/products/{product_id}"): PRODUCT,
    ("DELETE", "/v1/products/{product_id}"): "Deleted<ApiResource<Product>>",
    ("POST", "/v1/prices"): PRICE,
    ("GET", "/v1/prices"): f"ApiList<{PRICE}>",
    ("GET", "/v1/prices/{price_id}"): PRICE,
    ("PATCH", "/v1/prices/{price_id}"): PRICE,
    ("POST", "/v1/prices/{price_id}/quote"): "PriceQuote",
    ("POST", "/v1/exchange-rates"): "ApiResource<ExchangeRate>",
    ("GET", "/v1/exchange-rates"): "ApiList<ApiResource<ExchangeRate>>",
    # analytics: meters are a Prisma model (filters narrowed); the rest are API shapes of
    # prisma/types/responses.ts, with exact decimals as strings (DecimalString)
    ("POST", "/v1/meters"): METER,
    ("GET", "/v1/meters"): f"ApiList<{METER}>",
    ("GET", "/v1/meters/{meter_id}"): METER,
    ("PATCH", "/v1/meters/{meter_id}"): METER,
    ("POST", "/v1/usage-events"): "UsageEventsAccepted",  # a 202: see ANSWERS_202
    ("GET", "/v1/analytics/usage"): "UsageQueryResult",
    ("GET", "/v1/analytics/summary"): "UsageSummary",
    ("POST", "/v1/dashboard/sessions"): "DashboardSessionLink",
    # payments
    ("GET", "/v1/stripe-account"): "StripeAccount",
    ("PUT", "/v1/stripe-account"): "StripeAccount",
    ("DELETE", "/v1/stripe-account"): "StripeAccount",
    ("POST", "/v1/setup-intents"): "SetupIntent",
    ("POST", "/v1/customers/{customer_id}/payment-methods"): PAYMENT_METHOD,
    ("GET", "/v1/customers/{customer_id}/payment-methods"): f"ApiList<{PAYMENT_METHOD}>",
    ("GET", "/v1/customers/{customer_id}/payment-methods/{payment_method_id}"): PAYMENT_METHOD,
    ("DELETE", "/v1/customers/{customer_id}/payment-methods/{payment_method_id}"): PAYMENT_METHOD,
    ("POST", "/v1/customers/{customer_id}/payment-methods/{payment_method_id}/default"): CUSTOMER,
    ("POST", "/v1/webhooks/stripe/{organization_id}"): "StripeWebhookAck",
    # billing
    ("POST", "/v1/subscriptions"): "SubscriptionDetails",
    ("GET", "/v1/subscriptions"): "ApiList<SubscriptionDetails>",
    ("GET", "/v1/subscriptions/search"): "SearchResult<SubscriptionDetails>",
    ("GET", "/v1/subscriptions/{subscription_id}"): "SubscriptionDetails",
    ("PATCH", "/v1/subscriptions/{subscription_id}"): "SubscriptionDetails",
    ("DELETE", "/v1/subscriptions/{subscription_id}"): "SubscriptionDetails",
    ("POST", "/v1/subscriptions/{subscription_id}/resume"): "SubscriptionDetails",
    ("POST", "/v1/subscription-schedules"): "SubscriptionScheduleDetails",
    ("GET", "/v1/subscription-schedules"): "ApiList<SubscriptionScheduleDetails>",
    ("GET", "/v1/subscription-schedules/{subscription_schedule_id}"): "SubscriptionScheduleDetails",
    ("POST", "/v1/subscription-schedules/{subscription_schedule_id}"): "SubscriptionScheduleDetails",
    ("POST", "/v1/subscription-schedules/{subscription_schedule_id}/release"): "SubscriptionScheduleDetails",
    ("POST", "/v1/subscription-schedules/{subscription_schedule_id}/cancel"): "SubscriptionScheduleDetails",
    ("GET", "/v1/invoices"): "ApiList<InvoiceDetails>",
    ("GET", "/v1/invoices/{invoice_id}"): "InvoiceDetails",
    ("POST", "/v1/invoices/{invoice_id}/pay"): "InvoiceDetails",
    ("POST", "/v1/invoices/upcoming"): "InvoicePreview",
    ("POST", "/v1/invoices"): "InvoiceDetails",
    ("POST", "/v1/invoices/{invoice_id}/finalize"): "InvoiceDetails",
    ("POST", "/v1/invoices/{invoice_id}/void"): "InvoiceDetails",
    ("POST", "/v1/invoices/{invoice_id}/mark-uncollectible"): "InvoiceDetails",
    ("DELETE", "/v1/invoices/{invoice_id}"): "InvoiceDetails",
    ("POST", "/v1/invoiceitems"): INVOICE_ITEM,
    ("GET", "/v1/invoiceitems"): f"ApiList<{INVOICE_ITEM}>",
    ("GET", "/v1/invoiceitems/{invoice_item_id}"): INVOICE_ITEM,
    ("DELETE", "/v1/invoiceitems/{invoice_item_id}"): INVOICE_ITEM,
    ("POST", "/v1/refunds"): REFUND,
    ("GET", "/v1/refunds"): f"ApiList<{REFUND}>",
    ("GET", "/v1/refunds/{refund_id}"): REFUND,
    ("GET", "/v1/billing-settings"): "BillingSettings",
    ("PATCH", "/v1/billing-settings"): "BillingSettings",
    ("POST", "/v1/credit-notes"): "CreditNoteDetails",
    ("GET", "/v1/credit-notes"): "ApiList<CreditNoteDetails>",
    ("GET", "/v1/credit-notes/{credit_note_id}"): "CreditNoteDetails",
    ("POST", "/v1/credit-notes/{credit_note_id}/void"): "CreditNoteDetails",
    ("POST", "/v1/tax-rates"): TAX_RATE,
    ("GET", "/v1/tax-rates"): f"ApiList<{TAX_RATE}>",
    ("GET", "/v1/tax-rates/{tax_rate_id}"): TAX_RATE,
    ("PATCH", "/v1/tax-rates/{tax_rate_id}"): TAX_RATE,
    ("POST", "/v1/test-clocks"): TEST_CLOCK,
    ("GET", "/v1/test-clocks"): f"ApiList<{TEST_CLOCK}>",
    ("GET", "/v1/test-clocks/{test_clock_id}"): TEST_CLOCK,
    ("POST", "/v1/test-clocks/{test_clock_id}/advance"): TEST_CLOCK,
    ("DELETE", "/v1/test-clocks/{test_clock_id}"): TEST_CLOCK,
    # notifications
    ("POST", "/v1/webhook-endpoints"): "WithSecret<WebhookEndpointResource>",
    ("GET", "/v1/webhook-endpoints"): "ApiList<WebhookEndpointResource>",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): "WebhookEndpointResource",
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): "WebhookEndpointResource",
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): "WebhookEndpointResource",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): "WithSecret<WebhookEndpointResource>",
    ("GET", "/v1/events"): "ApiList<EventResource>",
    ("GET", "/v1/events/{event_id}"): "EventResource",
    ("GET", "/v1/webhook-deliveries"): "ApiList<WebhookDeliveryDetails>",
    ("GET", "/v1/webhook-deliveries/{delivery_id}"): "WebhookDeliveryDetails",
    ("POST", "/v1/webhook-deliveries/{delivery_id}/redeliver"): "WebhookDeliveryResource",
}

# Endpoints whose success IS 202 Accepted with a body of their own (typed in
# RESPONSE_TYPES); any other 202 is a command that outlasted the timeout (CommandAccepted).
ANSWERS_202: set[tuple[str, str]] = {("POST", "/v1/usage-events")}

# Endpoints (path prefixes of the OpenAPI document) whose owners have not typed them here
# yet. Take yours off when its RESPONSE_TYPES entries and scenario are in. (None now: the
# payments endpoints, the last ones, are driven by the `payments` scenario.)
NOT_YET_COVERED: dict[str, str] = {}

# Not JSON, so never in the registry: the dashboard's HTML pages (/dashboard, the sign-in
# form and its 401 page), the sign-in/out redirects (/dashboard/login, /dashboard/logout:
# 303 + cookie) and /dashboard/static. They are outside the OpenAPI document
# (include_in_schema=False). The one JSON route under /dashboard, /dashboard/api/overview
# (the page's data, cookie session), is recorded by the `dashboard` scenario as
# DashboardOverview although it is not in the document either.
NOT_JSON: dict[str, str] = {
    "/dashboard": "analytics: HTML pages, redirects and static files of the dashboard",
}
# In the OpenAPI document, yet not JSON: documents whose 200 is a PDF (its text is checked by
# tests/api/test_document_pdfs.py); their errors are JSON like any other's.
NOT_JSON_DOCUMENTED: dict[str, str] = {
    "/v1/invoices/{invoice_id}/pdf": "billing: application/pdf",
    "/v1/credit-notes/{credit_note_id}/pdf": "billing: application/pdf",
}

PRISMA = PROJECT_ROOT / "prisma"


# ----------------------------------------------------------------------------- recording


@dataclass
class Recording:
    name: str  # the TypeScript constant
    method: str
    url: str
    path: str | None  # the OpenAPI path it matched (None: no route, e.g. a 404 URL)
    status: int
    body: Any
    ts_type: str


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


@dataclass
class Recorder:
    """Sends requests and keeps every response with the OpenAPI path it matched."""

    templates: list[tuple[str, str]]  # (METHOD, path) of the OpenAPI document
    recordings: list[Recording] = field(default_factory=list)

    def route(self, method: str, url: str) -> str | None:
        path = httpx.URL(url).path
        matches = [t for m, t in self.templates if m == method and _path_pattern(t).match(path)]
        return min(matches, key=lambda t: t.count("{"), default=None)  # a static segment wins

    def _name(self, name: str | None, method: str, path: str | None, status: int) -> str:
        base = name or re.sub(r"\W+", "_", f"{method.lower()} {path or 'unrouted'} {status}").strip("_")
        taken = {r.name for r in self.recordings}
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        return candidate

    async def __call__(
        self,
        client: TenantClient | httpx.AsyncClient,
        method: str,
        url: str,
        *,
        expect: int | None = None,
        name: str | None = None,
        ts_type: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        response = await client.request(method, url, **kwargs)
        if expect is not None:
            assert response.status_code == expect, f"{method} {url}: {response.status_code} {response.text}"
        path = self.route(method, url)
        try:
            body = response.json()
        except ValueError:
            pytest.fail(
                f"{method} {url} answered {response.status_code} with a body that is not JSON: {response.text[:200]!r}"
            )
        if ts_type is None:
            ts_type = self.type_for(method, path, response.status_code)
        self.recordings.append(
            Recording(
                self._name(name, method, path, response.status_code),
                method,
                url,
                path,
                response.status_code,
                body,
                ts_type,
            )
        )
        return response

    @staticmethod
    def type_for(method: str, path: str | None, status: int) -> str:
        if status >= 400:
            return "ErrorResponse"
        if status == 202 and (method, path) not in ANSWERS_202:
            return "CommandAccepted"
        ts_type = RESPONSE_TYPES.get((method, path or ""))
        if ts_type is None:
            pytest.fail(
                f"{method} {path} answered {status} but has no TypeScript type: add it to RESPONSE_TYPES in {__file__}",
                pytrace=False,
            )
        return ts_type


@dataclass
class Context:
    record: Recorder
    client: TenantClient  # this module's own organization
    other: TenantClient  # another organization
    anonymous: httpx.AsyncClient  # no Authorization header
    scripted_stripe: str  # the base URL of a scripted Stripe (declines, refused keys, rate limits)
    sessions: Any  # the test database, for what no endpoint does here (a charge's success)


Scenario = Callable[[Context], Awaitable[None]]
SCENARIOS: list[Scenario] = []


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS.append(fn)
    return fn


# ----------------------------------------------------------------------------- scenarios


@scenario
async def customers(ctx: Context) -> None:
    record, client = ctx.record, ctx.client
    created = (
        await record(
            client,
            "POST",
            "/v1/customers",
            expect=201,
            name="customer_create",
            json={
                "email": "jenny@example.com",
                "name": "Jenny Rosen",
                "phone": "+15555550123",
                "description": "TypeScript contract",
                "address": {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"},
                "shipping": {"name": "Jenny", "address": {"country": "US"}},
                "metadata": {"plan": "pro"},
                "balance": -500,
                "invoicePrefix": "JEN123",
                "invoiceSettings": {"footer": "Thanks"},
            },
        )
    ).json()
    await record(client, "POST", "/v1/customers", expect=201, name="customer_create_minimal", json={})
    url = f"/v1/customers/{created['id']}"
    await record(client, "GET", url, expect=200, name="customer_retrieve")
    await record(client, "PATCH", url, expect=200, name="customer_update", json={"name": "Jenny R.", "email": None})
    await record(client, "GET", "/v1/customers", expect=200, name="customer_list", params={"limit": 3})
    await record(
        client,
        "GET",
        "/v1/customers/search",
        expect=200,
        name="customer_search",
        params={"query": "metadata['plan']:'pro'", "limit": 1},
    )
    await record(client, "DELETE", url, expect=200, name="customer_delete")
    await record(client, "GET", url, expect=200, name="customer_retrieve_deleted")
    # failures of the customer endpoints
    await record(client, "PATCH", url, expect=404, name="error_update_deleted", json={"name": "x"})
    await record(ctx.other, "GET", url, expect=404, name="error_other_organization")
    await record(client, "POST", "/v1/customers", expect=400, name="error_unknown_param", json={"nickname": "x"})
    await record(client, "POST", "/v1/customers", expect=400, name="error_invalid_email", json={"email": "nope"})
    await record(
        client, "POST", "/v1/customers", expect=400, name="error_nested_param", json={"address": {"country": "usa"}}
    )
    await record(
        client,
        "POST",
        "/v1/customers",
        expect=400,
        name="error_invalid_json",
        content=b'{"name": ',
        headers={"Content-Type": "application/json"},
    )
    await record(
        client,
        "POST",
        "/v1/customers",
        expect=413,
        name="error_too_large",
        content=json.dumps({"description": "x" * 300_000}).encode(),
        headers={"Content-Type": "application/json"},
    )
    await record(
        client, "GET", "/v1/customers/search", expect=400, name="error_bad_search", params={"query": "nickname:'x'"}
    )
    await record(client, "GET", "/v1/customers", expect=400, name="error_limit", params={"limit": 1000})
    key = uuid.uuid4().hex
    await record(
        client,
        "POST",
        "/v1/customers",
        expect=201,
        name="customer_create_idempotent",
        json={"name": "Once"},
        headers={"Idempotency-Key": key},
    )
    await record(
        client,
        "POST",
        "/v1/customers",
        expect=400,
        name="error_idempotency_mismatch",
        json={"name": "Twice"},
        headers={"Idempotency-Key": key},
    )


@scenario
async def authentication_and_routing(ctx: Context) -> None:
    record = ctx.record
    await record(ctx.anonymous, "GET", "/v1/customers", expect=401, name="error_no_key")
    await record(
        ctx.anonymous,
        "GET",
        "/v1/customers",
        expect=401,
        name="error_bad_key",
        headers={"Authorization": "Bearer sk_test_nope"},
    )
    await record(ctx.client, "GET", "/v1/no-such-thing", expect=404, name="error_unknown_url")
    await record(ctx.client, "PUT", "/v1/customers", expect=405, name="error_method_not_allowed", json={})


@scenario
async def api_keys(ctx: Context) -> None:
    record, client = ctx.record, ctx.client
    created = (
        await record(client, "POST", "/v1/api-keys", expect=201, name="api_key_create", json={"name": "backend"})
    ).json()
    await record(client, "GET", "/v1/api-keys", expect=200, name="api_key_list")
    rolled = (
        await record(
            client,
            "POST",
            f"/v1/api-keys/{created['id']}/roll",
            expect=201,
            name="api_key_roll",
            json={"expiresInSeconds": 60},
        )
    ).json()
    await record(client, "DELETE", f"/v1/api-keys/{rolled['id']}", expect=200, name="api_key_revoke")
    await record(client, "GET", "/v1/api-keys", expect=200, name="api_key_list_after_roll")
    await record(ctx.other, "DELETE", f"/v1/api-keys/{created['id']}", expect=404, name="error_other_api_key")
    await record(client, "POST", "/v1/api-keys", expect=400, name="error_api_key_name", json={"name": ""})


@scenario
async def commands(ctx: Context) -> None:
    record, client = ctx.record, ctx.client
    org = client.tenant.organization_id
    key = uuid.uuid4().hex
    await record(
        client, "POST", "/v1/customers", expect=201, json={"name": "Tracked"}, headers={"Idempotency-Key": key}
    )
    succeeded = await record(
        client,
        "GET",
        f"/v1/commands/{command_id_for(org, key)}",
        expect=200,
        name="command_succeeded",
        ts_type=f"CommandStatus<{CUSTOMER}>",
    )
    assert succeeded.json()["status"] == "succeeded"
    failing = uuid.uuid4().hex
    await record(
        client,
        "PATCH",
        "/v1/customers/cus_missing",
        expect=404,
        json={"name": "x"},
        headers={"Idempotency-Key": failing},
    )
    failed = await record(
        client, "GET", f"/v1/commands/{command_id_for(org, failing)}", expect=200, name="command_failed"
    )
    assert failed.json()["status"] == "failed"
    # issued to this organization but never sent: pending (a made-up id is 404)
    never_sent = command_id_for(org, f"never-sent-{uuid.uuid4().hex}")
    await record(client, "GET", f"/v1/commands/{never_sent}", expect=200, name="command_pending")
    await record(client, "GET", "/v1/commands/cmd_never_issued", expect=404, name="error_command_never_issued")


@scenario
async def accepted_but_not_applied_in_time(ctx: Context) -> None:
    """A write that outlasts the API's timeout answers 202; the command is applied later."""
    impatient = replace(get_settings(), command_timeout_seconds=0.0)
    async with serve(impatient) as api:
        client = TenantClient(api, ctx.client.tenant)
        for _ in range(20):  # the consumer is fast: it may beat even a zero timeout
            response = await ctx.record(
                client, "POST", "/v1/customers", name="customer_create_accepted", json={"name": "Later"}
            )
            if response.status_code == 202:
                break
            ctx.record.recordings.pop()
    assert response.status_code == 202, response.text
    accepted = ctx.record.recordings[-1]
    for _ in range(200):
        if (await ctx.client.get(accepted.body["statusUrl"])).json()["status"] != "pending":
            break
        await asyncio.sleep(0.05)
    later = await ctx.record(
        ctx.client,
        "GET",
        accepted.body["statusUrl"],
        expect=200,
        name="command_succeeded_later",
        ts_type=f"CommandStatus<{CUSTOMER}>",
    )
    assert later.json()["status"] == "succeeded", later.text


@scenario
async def product_attributes(ctx: Context) -> None:
    record, client = ctx.record, ctx.client
    base = "/v1/product-attributes"
    color = (
        await record(
            client,
            "POST",
            base,
            expect=201,
            name="attribute_create_enum",
            json={
                "key": "color",
                "label": "Color",
                "type": "enum",
                "enumValues": ["red", "blue"],
                "defaultValue": "blue",
            },
        )
    ).json()
    await record(
        client,
        "POST",
        base,
        expect=201,
        name="attribute_create_number",
        json={"key": "weight_kg", "label": "Weight (kg)", "type": "number", "required": True, "defaultValue": 1},
    )
    await record(
        client,
        "POST",
        base,
        expect=201,
        name="attribute_create_boolean",
        json={"key": "fragile", "label": "Fragile", "type": "boolean"},
    )
    await record(
        client,
        "POST",
        base,
        expect=201,
        name="attribute_create_date",
        json={"key": "released", "label": "Released on", "type": "date", "defaultValue": "2025-03-01"},
    )
    legacy = (
        await record(
            client,
            "POST",
            base,
            expect=201,
            name="attribute_create_string",
            json={"key": "legacy_sku", "label": "Legacy SKU", "type": "string"},
        )
    ).json()
    url = f"{base}/{color['id']}"
    await record(client, "GET", url, expect=200, name="attribute_retrieve")
    await record(
        client,
        "PATCH",
        url,
        expect=200,
        name="attribute_update",
        json={"label": "Colour", "enumValues": ["red", "blue", "green"], "defaultValue": None},
    )
    await record(
        client, "PATCH", f"{base}/{legacy['id']}", expect=200, name="attribute_deprecate", json={"deprecated": True}
    )
    await record(client, "GET", base, expect=200, name="attribute_list", params={"limit": 10})
    await record(client, "GET", base, expect=200, name="attribute_list_deprecated", params={"deprecated": "true"})
    await record(client, "DELETE", f"{base}/{legacy['id']}", expect=200, name="attribute_delete")
    await record(client, "GET", f"{base}/{legacy['id']}", expect=404, name="error_attribute_deleted")
    await record(
        client,
        "POST",
        base,
        expect=400,
        name="error_attribute_default_type",
        json={"key": "size", "label": "Size", "type": "number", "defaultValue": "large"},
    )
    await record(
        client,
        "POST",
        base,
        expect=400,
        name="error_attribute_enum_values",
        json={"key": "size", "label": "Size", "type": "enum"},
    )


@scenario
async def products(ctx: Context) -> None:
    """Runs after product_attributes: color, weight_kg, fragile and released are defined."""
    record, client = ctx.record, ctx.client
    created = (
        await record(
            client,
            "POST",
            "/v1/products",
            expect=201,
            name="product_create",
            json={
                "name": "Contract T-shirt",
                "description": "Organic cotton",
                "attributes": {"color": "red", "weight_kg": 0.25, "fragile": False, "released": "2025-01-15"},
                "metadata": {"sku": "T-1"},
                "unitLabel": "shirt",
            },
        )
    ).json()
    await record(
        client, "POST", "/v1/products", expect=201, name="product_create_minimal", json={"name": "Contract mug"}
    )
    url = f"/v1/products/{created['id']}"
    await record(client, "GET", url, expect=200, name="product_retrieve")
    await record(
        client,
        "PATCH",
        url,
        expect=200,
        name="product_update",
        json={
            "name": "Contract tee",
            "description": None,
            "attributes": {"fragile": None, "weight_kg": 3},
            "metadata": {"batch": "7"},
        },
    )
    await record(client, "PATCH", url, expect=200, name="product_archive", json={"active": False})
    await record(client, "GET", "/v1/products", expect=200, name="product_list", params={"limit": 5})
    await record(
        client,
        "GET",
        "/v1/products",
        expect=200,
        name="product_list_filtered",
        params={
            "active": "false",
            "ids": [created["id"], "prod_missing"],
            "attributes[color]": "red",
            "created[gte]": "2000-01-01T00:00:00Z",
        },
    )
    await record(
        client,
        "GET",
        "/v1/products/search",
        expect=200,
        name="product_search",
        params={"query": "name~'contract' AND active:'false'", "limit": 1},
    )
    disposable = (await record(client, "POST", "/v1/products", expect=201, json={"name": "Disposable"})).json()
    await record(
        client, "POST", "/v1/prices", expect=201, json={"product": disposable["id"], "currency": "usd", "unitAmount": 1}
    )
    await record(client, "DELETE", f"/v1/products/{disposable['id']}", expect=200, name="product_delete")
    await record(client, "GET", f"/v1/products/{disposable['id']}", expect=404, name="error_product_deleted")
    await record(
        client,
        "POST",
        "/v1/products",
        expect=400,
        name="error_product_attribute_type",
        json={"name": "Bad", "attributes": {"weight_kg": "heavy"}},
    )
    await record(
        client,
        "POST",
        "/v1/products",
        expect=400,
        name="error_product_attribute_unknown",
        json={"name": "Bad", "attributes": {"flavour": "mint"}},
    )
    await record(ctx.other, "GET", url, expect=404, name="error_product_other_organization")


@scenario
async def prices(ctx: Context) -> None:
    record, client = ctx.record, ctx.client
    product = (await record(client, "POST", "/v1/products", expect=201, json={"name": "Contract API calls"})).json()[
        "id"
    ]
    per_unit = (
        await record(
            client,
            "POST",
            "/v1/prices",
            expect=201,
            name="price_create_per_unit",
            json={
                "product": product,
                "currency": "usd",
                "unitAmount": 1200,
                "nickname": "Monthly",
                "recurring": {"interval": "month"},
                "lookupKey": "contract_monthly",
                "metadata": {"plan": "pro"},
                "currencyOptions": {"eur": {"unitAmount": 1100}, "jpy": {"unitAmountDecimal": "180.5"}},
            },
        )
    ).json()
    await record(
        client,
        "POST",
        "/v1/prices",
        expect=201,
        name="price_create_decimal",
        json={
            "product": product,
            "currency": "usd",
            "unitAmountDecimal": "0.012500",
            "type": "recurring",
            "recurring": {"interval": "day", "intervalCount": 7, "usageType": "metered"},
        },
    )
    tiered = (
        await record(
            client,
            "POST",
            "/v1/prices",
            expect=201,
            name="price_create_tiered",
            json={
                "product": product,
                "currency": "usd",
                "billingScheme": "tiered",
                "tiersMode": "graduated",
                "recurring": {"interval": "year", "usageType": "licensed"},
                "tiers": [
                    {"upTo": 5, "unitAmount": 700, "flatAmount": 1000},
                    {"upTo": 100, "unitAmountDecimal": "650.5"},
                    {"upTo": "inf", "unitAmount": 600, "flatAmountDecimal": "0.5"},
                ],
                "currencyOptions": {
                    "EUR": {"tiers": [{"upTo": 5, "unitAmount": 650}, {"upTo": "inf", "unitAmount": 550}]},
                    "jpy": {"tiers": [{"upTo": 5, "unitAmount": 100}, {"upTo": "inf", "flatAmount": 9000}]},
                },
            },
        )
    ).json()
    await record(
        client,
        "POST",
        "/v1/prices",
        expect=201,
        name="price_create_volume",
        json={
            "product": product,
            "currency": "kwd",
            "billingScheme": "tiered",
            "tiersMode": "volume",
            "tiers": [{"upTo": 10, "unitAmount": 1500}, {"upTo": "inf", "unitAmount": 1250}],
        },
    )
    package = (
        await record(
            client,
            "POST",
            "/v1/prices",
            expect=201,
            name="price_create_package",
            json={
                "product": product,
                "currency": "eur",
                "type": "one_time",
                "unitAmount": 500,
                "transformQuantity": {"divideBy": 10, "round": "up"},
            },
        )
    ).json()
    key = uuid.uuid4().hex
    await record(
        client,
        "POST",
        "/v1/prices",
        expect=201,
        name="price_create_one_time",
        headers={"Idempotency-Key": key},
        json={"product": product, "currency": "jpy", "unitAmount": 5000, "active": False},
    )
    await record(
        client,
        "GET",
        f"/v1/commands/{command_id_for(client.tenant.organization_id, key)}",
        expect=200,
        name="command_price_succeeded",
        ts_type=f"CommandStatus<{PRICE}>",
    )
    url = f"/v1/prices/{tiered['id']}"
    await record(client, "GET", url, expect=200, name="price_retrieve_tiered")
    await record(client, "GET", f"/v1/prices/{per_unit['id']}", expect=200, name="price_retrieve_per_unit")
    await record(
        client,
        "PATCH",
        url,
        expect=200,
        name="price_update",
        json={
            "nickname": "Yearly",
            "metadata": {"tier": "gold"},
            "lookupKey": "contract_monthly",
            "transferLookupKey": True,
        },
    )
    await record(
        client,
        "PATCH",
        f"/v1/prices/{per_unit['id']}",
        expect=200,
        name="price_deactivate",
        json={"active": False, "nickname": None},
    )
    await record(client, "GET", "/v1/prices", expect=200, name="price_list", params={"limit": 10})
    await record(
        client,
        "GET",
        "/v1/prices",
        expect=200,
        name="price_list_filtered",
        params={
            "product": product,
            "type": "recurring",
            "currency": "EUR",
            "recurring[interval]": "year",
            "recurring[usageType]": "licensed",
            "lookupKeys": ["contract_monthly"],
            "active": "true",
        },
    )
    for currency in ("usd", "eur", "jpy"):
        await record(
            client,
            "POST",
            f"{url}/quote",
            expect=200,
            name=f"price_quote_tiered_{currency}",
            json={"quantity": 120, "currency": currency},
        )
    await record(
        client,
        "POST",
        f"/v1/prices/{per_unit['id']}/quote",
        expect=200,
        name="price_quote_per_unit",
        json={"quantity": 3},
    )
    await record(
        client,
        "POST",
        f"/v1/prices/{package['id']}/quote",
        expect=200,
        name="price_quote_package",
        json={"quantity": 31},
    )
    # failures of the price endpoints
    await record(
        client, "POST", f"{url}/quote", expect=400, name="error_quote_currency", json={"quantity": 1, "currency": "gbp"}
    )
    await record(
        client,
        "POST",
        "/v1/prices",
        expect=400,
        name="error_price_tiers_order",
        json={
            "product": product,
            "currency": "usd",
            "billingScheme": "tiered",
            "tiersMode": "volume",
            "tiers": [{"upTo": 10, "unitAmount": 1}, {"upTo": 5, "unitAmount": 1}, {"upTo": "inf", "unitAmount": 1}],
        },
    )
    await record(
        client,
        "POST",
        "/v1/prices",
        expect=400,
        name="error_price_float_amount",
        json={"product": product, "currency": "usd", "unitAmount": 12.5},
    )
    await record(client, "PATCH", url, expect=400, name="error_price_amounts_immutable", json={"unitAmount": 1})


@scenario
async def exchange_rates(ctx: Context) -> None:
    """Only BILLING_FX_WRITER_ORGANIZATIONS write rates; the API and the consumer (this
    process) read the setting on every command."""
    record, client = ctx.record, ctx.client
    source = f"contract-{uuid.uuid4().hex[:8]}"
    rate = {"base": "EUR", "quote": "USD", "rate": "1.0842", "source": source, "asOf": "2025-01-02T16:00:00Z"}
    previous = os.environ.get(FX_WRITERS_ENV)
    os.environ[FX_WRITERS_ENV] = client.tenant.organization_id
    try:
        await record(client, "POST", "/v1/exchange-rates", expect=201, name="exchange_rate_create", json=rate)
        await record(
            client,
            "POST",
            "/v1/exchange-rates",
            expect=201,
            name="exchange_rate_create_jpy",
            json={**rate, "base": "usd", "quote": "jpy", "rate": "157.25", "asOf": "2025-01-02T17:00:00+01:00"},
        )
        await record(
            ctx.other, "POST", "/v1/exchange-rates", expect=403, name="error_exchange_rate_not_writer", json=rate
        )
        await record(
            client,
            "POST",
            "/v1/exchange-rates",
            expect=409,
            name="error_exchange_rate_exists",
            json={**rate, "rate": "1.09"},
        )
    finally:
        if previous is None:
            os.environ.pop(FX_WRITERS_ENV, None)
        else:
            os.environ[FX_WRITERS_ENV] = previous
    await record(
        ctx.other, "GET", "/v1/exchange-rates", expect=200, name="exchange_rate_list", params={"source": source}
    )
    await record(
        client,
        "GET",
        "/v1/exchange-rates",
        expect=200,
        name="exchange_rate_list_filtered",
        params={"base": "usd", "quote": "JPY", "source": source, "limit": 1},
    )
    await record(
        client, "GET", "/v1/exchange-rates", expect=400, name="error_exchange_rate_currency", params={"base": "eux"}
    )


@scenario
async def meters(ctx: Context) -> None:
    record, client = ctx.record, ctx.client
    tokens = (
        await record(
            client,
            "POST",
            "/v1/meters",
            expect=201,
            name="meter_create",
            json={"displayName": "Tokens", "eventName": "contract.tokens"},
        )
    ).json()
    await record(
        client,
        "POST",
        "/v1/meters",
        expect=201,
        name="meter_create_filtered",
        json={
            "displayName": "EU latency",
            "eventName": "contract.latency",
            "aggregation": "max",
            "valueKey": "ms",
            "filters": {"region": "eu"},
        },
    )
    legacy = (
        await record(
            client,
            "POST",
            "/v1/meters",
            expect=201,
            name="meter_create_unique_count",
            json={
                "displayName": "Seats",
                "eventName": "contract.seats",
                "aggregation": "unique_count",
                "valueKey": "user",
            },
        )
    ).json()
    url = f"/v1/meters/{tokens['id']}"
    await record(client, "GET", url, expect=200, name="meter_retrieve")
    await record(client, "PATCH", url, expect=200, name="meter_update", json={"displayName": "LLM tokens"})
    await record(
        client, "PATCH", f"/v1/meters/{legacy['id']}", expect=200, name="meter_deactivate", json={"active": False}
    )
    await record(client, "GET", "/v1/meters", expect=200, name="meter_list", params={"limit": 10})
    await record(client, "GET", "/v1/meters", expect=200, name="meter_list_inactive", params={"active": "false"})
    # failures of the meter endpoints
    await record(
        client,
        "POST",
        "/v1/meters",
        expect=400,
        name="error_meter_event_name_taken",
        json={"displayName": "Again", "eventName": "contract.tokens"},
    )
    await record(
        client,
        "POST",
        "/v1/meters",
        expect=400,
        name="error_meter_aggregation",
        json={"displayName": "Mean", "eventName": "contract.mean", "aggregation": "avg"},
    )
    await record(client, "PATCH", url, expect=400, name="error_meter_immutable", json={"eventName": "contract.other"})
    await record(ctx.other, "GET", url, expect=404, name="error_meter_other_organization")


@scenario
async def usage(ctx: Context) -> None:
    """Runs after meters: contract.tokens (sum), contract.latency (max of property ms over
    region=eu) and contract.seats (inactive). Events go API -> Kafka -> the analytics
    consumer -> chDB, and are read back through /v1/analytics once counted."""
    record, client = ctx.record, ctx.client
    meters = {m["eventName"]: m for m in (await client.get("/v1/meters", params={"limit": 10})).json()["data"]}
    tokens, latency = meters["contract.tokens"]["id"], meters["contract.latency"]["id"]
    alice = (await record(client, "POST", "/v1/customers", expect=201, json={"name": "Usage Alice"})).json()["id"]
    bob = (await record(client, "POST", "/v1/customers", expect=201, json={"email": "bob@example.com"})).json()["id"]
    now = datetime.now(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    t1, t2, t3 = (
        day + timedelta(hours=10, minutes=15),
        day + timedelta(hours=10, minutes=45),
        day + timedelta(days=1, hours=3),
    )
    await record(
        client,
        "POST",
        "/v1/usage-events",
        expect=202,
        name="usage_event_accepted",
        json=event("contract.tokens", bob, "0.000000000001", timestamp=iso(t1)),
    )
    await record(
        client,
        "POST",
        "/v1/usage-events",
        expect=202,
        name="usage_events_accepted_batch",
        json={
            "events": [
                event("contract.tokens", alice, "1.25", timestamp=iso(t1), properties={"model": "large"}),
                event("contract.tokens", alice, 2, timestamp=iso(t2), properties={"model": "small", "cached": True}),
                event("contract.tokens", bob, "0.5", timestamp=int(t3.timestamp())),
                event("contract.latency", alice, 1, timestamp=iso(t2), properties={"region": "eu", "ms": 120}),
                event("contract.latency", bob, 1, timestamp=iso(t3), properties={"region": "eu", "ms": "87.5"}),
                event("contract.latency", bob, 1, timestamp=iso(t3), properties={"region": "us", "ms": 900}),
            ]
        },
    )
    # failures of the usage-events endpoint: nothing is published
    await record(
        client,
        "POST",
        "/v1/usage-events",
        expect=400,
        name="error_usage_unknown_event_name",
        json=event("contract.nothing", alice),
    )
    await record(
        client,
        "POST",
        "/v1/usage-events",
        expect=400,
        name="error_usage_meter_inactive",
        json=event("contract.seats", alice),
    )
    await record(
        client,
        "POST",
        "/v1/usage-events",
        expect=400,
        name="error_usage_duplicate_identifier",
        json={
            "events": [
                event("contract.tokens", alice, identifier="same"),
                event("contract.tokens", bob, identifier="same"),
            ]
        },
    )
    await record(
        client,
        "POST",
        "/v1/usage-events",
        expect=400,
        name="error_usage_negative_value",
        json=event("contract.tokens", alice, "-1"),
    )
    await record(
        ctx.other,
        "POST",
        "/v1/usage-events",
        expect=400,
        name="error_usage_other_organization_customer",
        json=event("contract.tokens", alice),
    )

    window = {"from": iso(day), "to": iso(now + timedelta(minutes=1))}
    total = await wait_usage(client, {"meter": tokens, **window}, 4)
    assert total["data"][0]["value"] == "3.750000000001", total
    await wait_usage(client, {"meter": latency, **window}, 2)
    base = "/v1/analytics/usage"

    async def read(name: str, **params: Any) -> Any:
        """Typed for the groupBy asked, as a frontend would declare it (`UsageQueryResult<"day">`)."""
        ts_type = f"UsageQueryResult<{json.dumps(params.get('groupBy'))}>"
        return (await record(client, "GET", base, expect=200, name=name, params=params, ts_type=ts_type)).json()

    await read("usage_total", meter=tokens, **window)
    by_day = await read("usage_by_day", meter=tokens, groupBy="day", **window)
    assert [r["value"] for r in by_day["data"]] == ["3.250000000001", "0.5"], by_day
    await read("usage_by_hour", meter=tokens, groupBy="hour", **window)
    await read("usage_by_customer", meter=tokens, groupBy="customer", **window)
    await read("usage_one_customer", meter=tokens, customer=bob, **window)
    await read("usage_event_name_max", eventName="contract.tokens", aggregation="max", **window)
    latency_by_customer = await read(
        "usage_filtered_meter_by_customer", eventName="contract.latency", groupBy="customer", **window
    )
    assert sorted(r["value"] for r in latency_by_customer["data"]) == ["120", "87.5"], latency_by_customer
    nothing = await read(
        "usage_max_no_events",
        meter=latency,
        **{"from": iso(now - timedelta(days=300)), "to": iso(now - timedelta(days=299))},
    )
    assert nothing["data"] == [{"bucket": None, "customerId": None, "value": None, "eventCount": 0}], nothing
    # the registry's type (every groupBy, to narrow on groupBy) for a caller that does not know it
    await record(client, "GET", base, expect=200, name="usage_no_meter", params={"eventName": "contract.nothing"})
    summary = await record(client, "GET", "/v1/analytics/summary", expect=200, name="usage_summary", params=window)
    assert summary.json()["valueSum"] == "6.750000000001", (
        summary.text
    )  # value sums: latency events count their value 1
    await record(
        ctx.other, "GET", "/v1/analytics/summary", expect=200, name="usage_summary_other_organization", params=window
    )
    # failures of the analytics endpoints
    await record(client, "GET", base, expect=400, name="error_usage_meter_or_event_name", params=window)
    await record(client, "GET", base, expect=404, name="error_usage_meter_missing", params={"meter": "mtr_missing"})
    await record(
        client,
        "GET",
        base,
        expect=400,
        name="error_usage_hourly_range",
        params={"meter": tokens, "groupBy": "hour", "from": iso(now - timedelta(days=40)), "to": iso(now)},
    )
    await record(
        client,
        "GET",
        "/v1/analytics/summary",
        expect=400,
        name="error_usage_summary_naive_time",
        params={"from": "2025-01-01T00:00:00"},
    )


@scenario
async def dashboard(ctx: Context) -> None:
    """Runs after usage. The sign-in link (JSON) is opened like a browser would (a client
    of its own: its cookie must not reach the shared one); the page's data endpoint then
    answers JSON. The pages themselves are HTML (NOT_JSON)."""
    record, client = ctx.record, ctx.client
    meters = {m["eventName"]: m for m in (await client.get("/v1/meters", params={"limit": 10})).json()["data"]}
    product = (await record(client, "POST", "/v1/products", expect=201, json={"name": "Contract LLM"})).json()["id"]
    await record(
        client,
        "POST",
        "/v1/prices",
        expect=201,
        name="price_create_metered",
        json={
            "product": product,
            "currency": "usd",
            "unitAmountDecimal": "0.002",
            "recurring": {"interval": "month", "usageType": "metered", "meter": meters["contract.tokens"]["id"]},
        },
    )
    link = (await record(client, "POST", "/v1/dashboard/sessions", expect=201, name="dashboard_session_create")).json()
    async with httpx.AsyncClient(base_url=ctx.anonymous.base_url, timeout=30) as browser:
        await record(browser, "GET", "/dashboard/api/overview", expect=401, name="error_dashboard_no_session")
        signed_in = await browser.get(link["url"])
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/dashboard", signed_in.text
        page = await browser.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        overview = await record(
            browser,
            "GET",
            "/dashboard/api/overview",
            expect=200,
            name="dashboard_overview",
            params={"days": 7},
            ts_type="DashboardOverview",
        )
        assert overview.json()["topCustomers"] and overview.json()["usageByProduct"], overview.text
        await record(
            browser,
            "GET",
            "/dashboard/api/overview",
            expect=200,
            name="dashboard_overview_meter",
            params={"days": 3, "meter": "contract.latency"},
            ts_type="DashboardOverview",
        )
        await record(
            browser, "GET", "/dashboard/api/overview", expect=400, name="error_dashboard_days", params={"days": 91}
        )
    await record(ctx.anonymous, "POST", "/v1/dashboard/sessions", expect=401, name="error_dashboard_session_no_key")


def stripe_event(event_type: str, obj: dict[str, Any]) -> bytes:
    """A Stripe event as Stripe posts it (the raw body the signature covers)."""
    return json.dumps(
        {
            "id": "evt_" + uuid.uuid4().hex[:24],
            "object": "event",
            "api_version": "2024-06-20",
            "type": event_type,
            "created": int(datetime.now(UTC).timestamp()),
            "livemode": False,
            "data": {"object": obj},
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
        }
    ).encode()


@scenario
async def payments(ctx: Context) -> None:
    """The organization's Stripe account on stripe-mock (every PaymentMethod the same Visa
    4242), a customer's setup intents and payment methods (attach, list, get, default,
    detach), a card stored by Stripe's webhook, then disconnect. Stripe's refusals come
    from the scripted Stripe behind a second API, for the other organization: a declined
    card (402, card_error with decline_code), a key Stripe refuses, Stripe rate-limiting us."""
    record, client = ctx.record, ctx.client
    account = "/v1/stripe-account"
    await record(client, "GET", account, expect=200, name="stripe_account_not_connected")
    customer = (
        await record(
            client, "POST", "/v1/customers", expect=201, json={"name": "Card Holder", "email": "cards@example.com"}
        )
    ).json()
    await record(
        client,
        "POST",
        "/v1/setup-intents",
        expect=400,
        name="error_setup_intent_no_stripe_account",
        json={"customer": customer["id"]},
    )
    await record(
        client,
        "PUT",
        account,
        expect=400,
        name="error_stripe_account_key_format",
        json={"secretKey": "pk_test_123", "webhookSecret": "whsec_abc"},
    )
    secret_key, webhook_secret = stripe_secrets()
    connected = await record(
        client,
        "PUT",
        account,
        expect=200,
        name="stripe_account_connect",
        json={"secretKey": secret_key, "webhookSecret": webhook_secret},
    )
    assert connected.json()["secretKeyLast4"] == secret_key[-4:], connected.text
    assert secret_key not in connected.text and webhook_secret not in connected.text
    await record(client, "GET", account, expect=200, name="stripe_account_retrieve")

    # setup intents: the customer's Stripe customer is made on first use
    intent = (
        await record(
            client,
            "POST",
            "/v1/setup-intents",
            expect=201,
            name="setup_intent_create",
            json={"customer": customer["id"], "metadata": {"order": "42"}},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
    ).json()
    await record(
        client,
        "POST",
        "/v1/setup-intents",
        expect=201,
        name="setup_intent_create_on_session",
        json={"customer": customer["id"], "paymentMethodTypes": ["card", "sepa_debit"], "usage": "on_session"},
    )
    await record(
        client,
        "POST",
        "/v1/setup-intents",
        expect=404,
        name="error_setup_intent_customer_missing",
        json={"customer": "cus_missing"},
    )
    await record(
        client,
        "POST",
        "/v1/setup-intents",
        expect=400,
        name="error_setup_intent_payment_method_type",
        json={"customer": customer["id"], "paymentMethodTypes": ["paypal"]},
    )

    # payment methods
    base = f"/v1/customers/{customer['id']}/payment-methods"
    method = (
        await record(
            client,
            "POST",
            base,
            expect=201,
            name="payment_method_attach",
            json={"paymentMethod": "pm_contract_one"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
    ).json()
    same = await record(
        client,
        "POST",
        base,
        expect=200,
        name="payment_method_attach_same_card",
        json={"paymentMethod": "pm_contract_two"},
    )  # stripe-mock: the same fingerprint
    assert same.json()["id"] == method["id"], same.text
    url = f"{base}/{method['id']}"
    await record(client, "GET", url, expect=200, name="payment_method_retrieve")
    made = await record(client, "POST", f"{url}/default", expect=200, name="payment_method_make_default")
    assert (
        made.json()["defaultPaymentMethodId"] == method["id"] == made.json()["invoiceSettings"]["defaultPaymentMethod"]
    )

    # Stripe's webhooks: no API key, the signature over the raw body is the proof
    hook = f"/v1/webhooks/stripe/{client.tenant.organization_id}"

    async def post_event(name: str, body: bytes, expect: int, secret: str = webhook_secret, to: str = hook) -> Any:
        headers = {"Stripe-Signature": sign_payload(body, secret), "Content-Type": "application/json"}
        return (await record(ctx.anonymous, "POST", to, expect=expect, name=name, content=body, headers=headers)).json()

    card = {
        "id": "pm_hook_" + uuid.uuid4().hex[:12],
        "object": "payment_method",
        "type": "card",
        "customer": intent["gatewayCustomerId"],
        "livemode": False,
        "created": 1700000000,
        "metadata": {"source": "webhook"},
        "card": {
            "brand": "mastercard",
            "last4": "4444",
            "exp_month": 3,
            "exp_year": 2031,
            "country": "NL",
            "fingerprint": "ContractHookFp01",
            "funding": "credit",
        },
        "billing_details": {
            "name": "Wim",
            "email": None,
            "phone": None,
            "address": {
                "city": "Utrecht",
                "country": "NL",
                "line1": None,
                "line2": None,
                "postal_code": "3511",
                "state": None,
            },
        },
    }
    attached = stripe_event("payment_method.attached", card)
    queued = await post_event("webhook_queued", attached, 200)
    for _ in range(300):
        if (await client.get(f"/v1/commands/{queued['commandId']}")).json()["status"] != "pending":
            break
        await asyncio.sleep(0.05)
    applied = await record(
        client, "GET", f"/v1/commands/{queued['commandId']}", expect=200, name="command_stripe_event"
    )
    assert applied.json()["status"] == "succeeded" and applied.json()["result"]["action"] == "created", applied.text
    duplicate = await post_event("webhook_duplicate", attached, 200)
    assert duplicate["action"] == "duplicate", duplicate
    ignored = await post_event(
        "webhook_ignored", stripe_event("customer.created", {"id": "cus_x", "object": "customer"}), 200
    )
    assert ignored["action"] == "ignored", ignored
    await post_event(
        "error_webhook_signature", stripe_event("customer.created", {"id": "cus_x"}), 400, secret="whsec_wrong"
    )
    await post_event("error_webhook_organization", attached, 400, to="/v1/webhooks/stripe/org_missing")
    listed = await record(client, "GET", base, expect=200, name="payment_method_list", params={"limit": 5})
    assert len(listed.json()["data"]) == 2, listed.text
    await record(client, "GET", base, expect=200, name="payment_method_list_by_type", params={"type": "sepa_debit"})
    hooked = next(m for m in listed.json()["data"] if m["gatewayPaymentMethodId"] == card["id"])

    # failures of the payment method endpoints
    await record(
        client, "POST", base, expect=400, name="error_payment_method_format", json={"paymentMethod": "pm_x/../charges"}
    )
    await record(
        client,
        "POST",
        base,
        expect=400,
        name="error_payment_method_card_number",
        json={"paymentMethod": "pm_x", "card": {"number": "4242424242424242"}},
    )
    await record(ctx.other, "GET", base, expect=404, name="error_payment_methods_other_organization")
    await record(client, "GET", f"{base}/pm_missing", expect=404, name="error_payment_method_missing")
    await record(client, "POST", f"{base}/pm_missing/default", expect=404, name="error_payment_method_default_missing")

    await record(client, "DELETE", f"{base}/{hooked['id']}", expect=200, name="payment_method_detach_webhook_card")
    await record(client, "DELETE", url, expect=200, name="payment_method_detach_default")
    await record(client, "DELETE", url, expect=404, name="error_payment_method_detached")
    after = (await client.get(f"/v1/customers/{customer['id']}")).json()
    assert after["defaultPaymentMethodId"] is None, after
    await record(client, "DELETE", account, expect=200, name="stripe_account_disconnect")
    await post_event("error_webhook_not_configured", stripe_event("customer.created", {"id": "cus_x"}), 400)

    # what stripe-mock cannot answer: the scripted Stripe
    async with serve(replace(get_settings(), stripe_api_base=ctx.scripted_stripe)) as api:
        scripted = TenantClient(api, ctx.other.tenant)
        await record(
            scripted,
            "PUT",
            account,
            expect=400,
            name="error_stripe_account_key_refused",
            json={"secretKey": "sk_test_revoked", "webhookSecret": "whsec_revoked"},
        )
        await record(
            scripted,
            "PUT",
            account,
            expect=200,
            name="stripe_account_connect_scripted",
            json={"secretKey": "sk_test_scripted", "webhookSecret": "whsec_scripted"},
        )
        holder = (await record(scripted, "POST", "/v1/customers", expect=201, json={"name": "Declined"})).json()
        cards = f"/v1/customers/{holder['id']}/payment-methods"
        declined = await record(
            scripted, "POST", cards, expect=402, name="error_card_declined", json={"paymentMethod": "pm_declined"}
        )
        assert declined.json()["error"]["decline_code"] == "generic_decline", declined.text
        await record(
            scripted,
            "POST",
            cards,
            expect=404,
            name="error_payment_method_unknown_at_stripe",
            json={"paymentMethod": "pm_unknown"},
        )
        limited = await record(
            scripted,
            "POST",
            cards,
            expect=503,
            name="error_stripe_rate_limited",
            json={"paymentMethod": "pm_ratelimited"},
        )
        assert limited.headers["retry-after"] == "7"
        await record(scripted, "DELETE", account, expect=200, name="stripe_account_disconnect_scripted")


@scenario
async def notifications(ctx: Context) -> None:
    """A webhook endpoint created, read, listed, updated, its secret rotated; the event of a
    new customer listed and read, its delivery (to a real HTTP server) listed, read and
    redelivered; the endpoint deleted."""
    record, client = ctx.record, ctx.client
    async with webhook_receiver() as receiver:
        body = {"url": receiver.url("/contract"), "enabledEvents": ["customer.created"], "description": "Contract"}
        created = await record(
            client, "POST", "/v1/webhook-endpoints", expect=201, name="webhook_endpoint_create", json=body
        )
        url = f"/v1/webhook-endpoints/{created.json()['id']}"
        await record(client, "GET", url, expect=200, name="webhook_endpoint_retrieve")
        await record(client, "GET", "/v1/webhook-endpoints", expect=200, name="webhook_endpoint_list")
        await record(client, "PATCH", url, expect=200, name="webhook_endpoint_update", json={"metadata": {"team": "a"}})
        await record(client, "POST", f"{url}/rotate-secret", expect=200, name="webhook_endpoint_rotate", json={})
        customer = (await client.post("/v1/customers", json={"email": "hooked@example.com"})).json()
        deliveries = {"endpoint": created.json()["id"]}
        async with asyncio.timeout(60):  # the recorder may be catching up on the run's earlier events
            while not [
                d
                for d in (await client.get("/v1/webhook-deliveries", params=deliveries)).json()["data"]
                if d["status"] == "succeeded"
            ]:
                await asyncio.sleep(0.05)
        events = await record(client, "GET", "/v1/events", expect=200, name="event_list", params={"type": "customer.*"})
        (event,) = [e for e in events.json()["data"] if e["data"]["object"]["id"] == customer["id"]]
        await record(client, "GET", f"/v1/events/{event['id']}", expect=200, name="event_retrieve")
        listed = await record(
            client, "GET", "/v1/webhook-deliveries", expect=200, name="webhook_delivery_list", params=deliveries
        )
        delivery = listed.json()["data"][0]["id"]
        await record(client, "GET", f"/v1/webhook-deliveries/{delivery}", expect=200, name="webhook_delivery_retrieve")
        await record(
            client,
            "POST",
            f"/v1/webhook-deliveries/{delivery}/redeliver",
            expect=200,
            name="webhook_delivery_redeliver",
        )
        await record(client, "DELETE", url, expect=200, name="webhook_endpoint_delete")


@scenario
async def one_off_invoices(ctx: Context) -> None:
    """Invoice items, a one-off draft of them deleted and made again, finalized, voided;
    another marked uncollectible."""
    record, client = ctx.record, ctx.client
    buyer = (await client.post("/v1/customers", json={"email": "one-off@example.com"})).json()

    async def add_item(name: str, **body: Any) -> dict[str, Any]:
        response = await record(
            client, "POST", "/v1/invoiceitems", expect=201, name=name, json={"customer": buyer["id"], **body}
        )
        return dict(response.json())

    first = await add_item("invoice_item_create", amount=4200, currency="usd", description="Consulting")
    await add_item("invoice_item_create_credit", amount=-200, description="Goodwill", metadata={"case": "7"})
    await record(client, "GET", f"/v1/invoiceitems/{first['id']}", expect=200, name="invoice_item_retrieve")
    await record(
        client, "GET", "/v1/invoiceitems", expect=200, name="invoice_item_list", params={"customer": buyer["id"]}
    )
    spare = await add_item("invoice_item_create_spare", amount=100)
    await record(client, "DELETE", f"/v1/invoiceitems/{spare['id']}", expect=200, name="invoice_item_delete")
    body = {"customer": buyer["id"], "collectionMethod": "send_invoice", "daysUntilDue": 7}
    draft = (await record(client, "POST", "/v1/invoices", expect=201, name="invoice_create", json=body)).json()
    await record(client, "DELETE", f"/v1/invoices/{draft['id']}", expect=200, name="invoice_delete_draft")
    draft = (await record(client, "POST", "/v1/invoices", expect=201, name="invoice_create_again", json=body)).json()
    url = f"/v1/invoices/{draft['id']}"
    await record(client, "POST", f"{url}/finalize", expect=200, name="invoice_finalize")
    await record(client, "POST", f"{url}/mark-uncollectible", expect=200, name="invoice_mark_uncollectible")
    await record(client, "POST", f"{url}/void", expect=200, name="invoice_void")


@scenario
async def subscription_schedules(ctx: Context) -> None:
    """A schedule of two phases started now, listed, updated and released; one waiting
    for its start, canceled; one wrapping an existing subscription; a refused phase."""
    record, client = ctx.record, ctx.client
    buyer = (await client.post("/v1/customers", json={"email": "scheduled@example.com"})).json()
    product = (await client.post("/v1/products", json={"name": "Scheduled plan"})).json()
    plan = (
        await client.post(
            "/v1/prices",
            json={"product": product["id"], "currency": "usd", "unitAmount": 1200, "recurring": {"interval": "month"}},
        )
    ).json()
    url = "/v1/subscription-schedules"
    body = {"customer": buyer["id"], "collectionMethod": "send_invoice", "daysUntilDue": 14}
    phases = [
        {"items": [{"price": plan["id"]}], "iterations": 1, "metadata": {"step": "intro"}},
        {"items": [{"price": plan["id"], "quantity": 3}], "iterations": 2},
    ]
    running = (
        await record(
            client,
            "POST",
            url,
            expect=201,
            name="subscription_schedule_create",
            json={**body, "startDate": "now", "phases": phases},
        )
    ).json()
    later = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    waiting = (
        await record(
            client,
            "POST",
            url,
            expect=201,
            name="subscription_schedule_create_not_started",
            json={**body, "startDate": later, "endBehavior": "cancel", "phases": phases[:1]},
        )
    ).json()
    await record(client, "GET", f"{url}/{running['id']}", expect=200, name="subscription_schedule_retrieve")
    await record(client, "GET", url, expect=200, name="subscription_schedule_list", params={"customer": buyer["id"]})
    stored = running["phases"]
    update = [
        {"items": [{"price": plan["id"]}], "startDate": stored[0]["startDate"], "endDate": stored[0]["endDate"]},
        {"items": [{"price": plan["id"], "quantity": 2}], "iterations": 3, "prorationBehavior": "none"},
    ]
    await record(
        client,
        "POST",
        f"{url}/{running['id']}",
        expect=200,
        name="subscription_schedule_update",
        json={"phases": update, "metadata": {"deal": "annual"}},
    )
    await record(
        client,
        "POST",
        f"{url}/{running['id']}",
        expect=400,
        name="subscription_schedule_update_past",
        json={"phases": [{**update[0], "startDate": later}]},
    )
    await record(client, "POST", f"{url}/{running['id']}/release", expect=200, name="subscription_schedule_release")
    await record(client, "POST", f"{url}/{waiting['id']}/cancel", expect=200, name="subscription_schedule_cancel")
    await record(
        client,
        "POST",
        url,
        expect=201,
        name="subscription_schedule_create_from_subscription",
        json={"fromSubscription": running["subscriptionId"]},
    )
    await record(
        client,
        "POST",
        url,
        expect=400,
        name="subscription_schedule_create_bad_phase",
        json={**body, "phases": [{"items": [{"price": plan["id"]}]}]},
    )


@scenario
async def billing(ctx: Context) -> None:
    """Tax rates; subscriptions and their first invoices: sent (taxed), in a trial, and
    charged (incomplete)."""
    record, client = ctx.record, ctx.client
    vat = (
        await record(
            client,
            "POST",
            "/v1/tax-rates",
            expect=201,
            name="tax_rate_create",
            json={"displayName": "VAT", "percentage": "19", "inclusive": True, "country": "DE", "taxType": "vat"},
        )
    ).json()
    sales = (
        await record(
            client,
            "POST",
            "/v1/tax-rates",
            expect=201,
            name="tax_rate_create_exclusive",
            json={"displayName": "Sales tax", "percentage": "8.875", "inclusive": False, "state": "NY"},
        )
    ).json()
    await record(client, "GET", f"/v1/tax-rates/{vat['id']}", expect=200, name="tax_rate_retrieve")
    await record(
        client,
        "PATCH",
        f"/v1/tax-rates/{sales['id']}",
        expect=200,
        name="tax_rate_update",
        json={"description": "New York City", "metadata": {"filing": "quarterly"}},
    )
    await record(client, "GET", "/v1/tax-rates", expect=200, name="tax_rate_list", params={"active": "true"})
    buyer = (await client.post("/v1/customers", json={"email": "sub@example.com", "balance": -100})).json()
    product = (await client.post("/v1/products", json={"name": "Contract plan"})).json()
    plan = (
        await client.post(
            "/v1/prices",
            json={"product": product["id"], "currency": "usd", "unitAmount": 2500, "recurring": {"interval": "month"}},
        )
    ).json()
    sent = (
        await record(
            client,
            "POST",
            "/v1/subscriptions",
            expect=201,
            name="subscription_create_send_invoice",
            json={
                "customer": buyer["id"],
                "items": [{"price": plan["id"], "quantity": 2, "metadata": {"seat": "a"}, "taxRates": [vat["id"]]}],
                "defaultTaxRates": [sales["id"]],
                "collectionMethod": "send_invoice",
                "daysUntilDue": 14,
                "metadata": {"contract": "yes"},
            },
        )
    ).json()
    await record(
        client,
        "POST",
        "/v1/subscriptions",
        expect=201,
        name="subscription_create_trial",
        json={"customer": buyer["id"], "items": [{"price": plan["id"]}], "trialPeriodDays": 7},
    )
    await record(
        client,
        "POST",
        "/v1/subscriptions",
        expect=201,
        name="subscription_create_incomplete",
        json={"customer": buyer["id"], "items": [{"price": plan["id"]}]},
    )
    await record(client, "GET", f"/v1/subscriptions/{sent['id']}", expect=200, name="subscription_retrieve")
    pro = (
        await client.post(
            "/v1/prices",
            json={"product": product["id"], "currency": "usd", "unitAmount": 5000, "recurring": {"interval": "month"}},
        )
    ).json()
    change = [{"id": sent["items"][0]["id"], "price": pro["id"]}]
    await record(
        client,
        "POST",
        "/v1/invoices/upcoming",
        expect=200,
        name="invoice_upcoming_change",
        json={
            "customer": buyer["id"],
            "subscription": sent["id"],
            "subscriptionItems": change,
            "subscriptionProrationBehavior": "always_invoice",
        },
    )
    await record(client, "GET", "/v1/billing-settings", expect=200, name="billing_settings_retrieve")
    await record(
        client,
        "PATCH",
        "/v1/billing-settings",
        expect=200,
        name="billing_settings_update",
        json={"changeRules": {"lateral": {"timing": "immediately", "prorationBehavior": None}}},
    )
    await record(
        client,
        "PATCH",
        "/v1/billing-settings",
        expect=200,
        name="billing_settings_update_dunning",
        json={"dunning": {"retryAfterDays": [2, 4], "subscriptionAfterLastRetry": "unpaid"}},
    )
    clock = (
        await record(
            client,
            "POST",
            "/v1/test-clocks",
            expect=201,
            name="test_clock_create",
            json={"frozenTime": "2027-01-01T00:00:00Z", "name": "Contract year"},
        )
    ).json()
    await record(client, "GET", f"/v1/test-clocks/{clock['id']}", expect=200, name="test_clock_retrieve")
    await record(client, "GET", "/v1/test-clocks", expect=200, name="test_clock_list")
    await record(
        client,
        "POST",
        f"/v1/test-clocks/{clock['id']}/advance",
        expect=200,
        name="test_clock_advance",
        json={"frozenTime": "2027-02-01T00:00:00Z"},
    )
    await record(client, "DELETE", f"/v1/test-clocks/{clock['id']}", expect=200, name="test_clock_delete")
    await record(
        client,
        "PATCH",
        f"/v1/subscriptions/{sent['id']}",
        expect=200,
        name="subscription_change_plan",
        json={"items": change, "prorationBehavior": "create_prorations"},
    )
    await record(
        client,
        "POST",
        "/v1/invoices/upcoming",
        expect=200,
        name="invoice_upcoming_renewal",
        json={"customer": buyer["id"], "subscription": sent["id"]},
    )
    await record(
        client,
        "PATCH",
        f"/v1/subscriptions/{sent['id']}",
        expect=200,
        name="subscription_cancel_at_period_end",
        json={"cancelAtPeriodEnd": True, "metadata": {"contract": None}},
    )
    await record(
        client, "GET", "/v1/subscriptions", expect=200, name="subscription_list", params={"customer": buyer["id"]}
    )
    await record(
        client,
        "GET",
        "/v1/subscriptions/search",
        expect=200,
        name="subscription_search",
        params={"query": "metadata['contract']:'yes' AND status:'active'"},
    )
    await record(client, "GET", f"/v1/invoices/{sent['latestInvoice']}", expect=200, name="invoice_retrieve")
    await record(client, "GET", "/v1/invoices", expect=200, name="invoice_list", params={"customer": buyer["id"]})
    # pay the sent invoice with a card (stripe-mock's): the attempt is recorded, the worker charges it
    secret_key, webhook_secret = stripe_secrets()
    await client.request("PUT", "/v1/stripe-account", json={"secretKey": secret_key, "webhookSecret": webhook_secret})
    card = (
        await client.post(f"/v1/customers/{buyer['id']}/payment-methods", json={"paymentMethod": "pm_contract_pay"})
    ).json()
    await record(
        client,
        "POST",
        f"/v1/invoices/{sent['latestInvoice']}/pay",
        expect=200,
        name="invoice_pay",
        json={"paymentMethod": card["id"]},
    )
    # no payment worker runs here: the attempt succeeds as the worker's outcome would make it,
    # then part of it is refunded (at stripe-mock)
    async with ctx.sessions() as session, session.begin():
        payment = (await session.scalars(select(Payment).where(Payment.invoice_id == sent["latestInvoice"]))).one()
        payment.status, payment.gateway_payment_intent_id = PaymentStatus.succeeded, "pi_contract"
    refund = (
        await record(
            client,
            "POST",
            "/v1/refunds",
            expect=201,
            name="refund_create",
            json={"payment": payment.id, "amount": 100, "reason": "requested_by_customer"},
        )
    ).json()
    await record(client, "GET", f"/v1/refunds/{refund['id']}", expect=200, name="refund_retrieve")
    await record(client, "GET", "/v1/refunds", expect=200, name="refund_list", params={"payment": payment.id})
    # the open invoice credited in part (its amount due reduced), the credit note voided
    (open_line,) = (await client.get(f"/v1/invoices/{sent['latestInvoice']}")).json()["lines"]
    credit = {
        "invoice": sent["latestInvoice"],
        "lines": [{"type": "invoice_line_item", "invoiceLineItem": open_line["id"], "amount": 300}],
        "reason": "order_change",
    }
    note = (await record(client, "POST", "/v1/credit-notes", expect=201, name="credit_note_create", json=credit)).json()
    await record(client, "GET", f"/v1/credit-notes/{note['id']}", expect=200, name="credit_note_retrieve")
    await record(
        client, "GET", "/v1/credit-notes", expect=200, name="credit_note_list", params={"customer": buyer["id"]}
    )
    await record(client, "POST", f"/v1/credit-notes/{note['id']}/void", expect=200, name="credit_note_void")
    await record(
        client,
        "POST",
        "/v1/credit-notes",
        expect=400,
        name="error_credit_note_refund_before_payment",
        json={**credit, "refundAmount": 300},
    )
    await record(
        client,
        "POST",
        f"/v1/invoices/{sent['latestInvoice']}/pay",
        expect=400,
        name="error_invoice_payment_in_progress",
        json={},
    )
    # paused as a trial's end without a payment method leaves one (the renewal command's
    # doing, which this scenario does not run), then resumed: a sent invoice needs no card
    async with ctx.sessions() as session, session.begin():
        (await session.get(Subscription, sent["id"])).status = SubscriptionStatus.paused
    await record(client, "POST", f"/v1/subscriptions/{sent['id']}/resume", expect=200, name="subscription_resume")
    await record(
        client,
        "DELETE",
        f"/v1/subscriptions/{sent['id']}",
        expect=200,
        name="subscription_cancel",
        params={"prorate": "true", "feedback": "unused"},
    )
    await record(
        client,
        "DELETE",
        f"/v1/subscriptions/{sent['id']}",
        expect=400,
        name="error_subscription_canceled",
    )
    await record(
        client,
        "POST",
        "/v1/subscriptions",
        expect=400,
        name="error_subscription_currency",
        json={"customer": buyer["id"], "items": [{"price": plan["id"]}], "currency": "eur"},
    )


async def every_get_endpoint(ctx: Context) -> None:
    """Runs last: every GET of the OpenAPI document, lists as they are and `{id}` paths with
    an id that does not exist, so a new read endpoint is checked without a scenario."""
    for method, path in ctx.record.templates:
        if method != "GET" or _not_yet_covered(path):
            continue
        url = re.sub(r"\{[^}]+\}", "missing_0000", path)
        await ctx.record(ctx.client, "GET", url, name=None)


def _not_yet_covered(path: str) -> bool:
    return any(
        path == prefix or path.startswith(prefix + "/")
        for prefix in [*NOT_YET_COVERED, *NOT_JSON, *NOT_JSON_DOCUMENTED]
    )


# ----------------------------------------------------------------------------- TypeScript


def _exported_types() -> dict[str, list[str]]:
    """{module path: names} that the generated file imports: the Prisma models, the
    generated Json shapes and every type of prisma/types/*.ts."""
    browser = PRISMA / "generated" / "client" / "browser.ts"
    modules = {str(browser): re.findall(r"^export type (\w+) = Prisma\.\w+Model$", browser.read_text(), re.M)}
    for module in [PRISMA / "generated" / "json-shapes.ts", *sorted((PRISMA / "types").glob("*.ts"))]:
        names = re.findall(r"^export type (\w+)", module.read_text(), re.M)
        if names:
            modules[str(module)] = names
    return modules


@dataclass
class TypeScriptFile:
    text: str
    lines: dict[int, str]  # 1-based line -> the constant it belongs to


def typescript_for(recordings: list[Recording]) -> TypeScriptFile:
    out = ["// Generated by tests/api/test_typescript_contract.py from recorded API responses."]
    for module, names in _exported_types().items():
        out.append(f"import type {{ {', '.join(sorted(set(names)))} }} from {json.dumps(module)};")
    owners: dict[int, str] = {}
    for r in recordings:
        out.append("")
        out.append(f"// {r.method} {r.url} -> {r.status}")
        literal = json.dumps(r.body, indent=2).splitlines()
        start = len(out) + 1
        out.append(f"export const {r.name}: {r.ts_type} = {literal[0]}")
        out.extend(literal[1:])
        out[-1] += ";"
        for line in range(start, len(out) + 1):
            owners[line] = r.name
    return TypeScriptFile("\n".join(out) + "\n", owners)


@dataclass(frozen=True)
class TscError:
    constant: str | None
    key: str | None  # the JSON key on the line the error points at
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        where = f"{self.constant}.{self.key}" if self.key else str(self.constant)
        return f"{where} (line {self.line}): {self.code} {self.message}"


def compile_typescript(source: TypeScriptFile, directory: Path) -> tuple[int, list[TscError], str]:
    """tsc --noEmit on the file with prisma/tsconfig.json's strict options, the generated
    client and prisma/types. Returns (exit code, errors in our file, the whole output)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "responses.ts"
    target.write_text(source.text)
    result = type_check(
        directory, [target, PRISMA / "types" / "**" / "*.ts", PRISMA / "generated" / "client" / "**" / "*.ts"]
    )
    output = result.stdout + result.stderr
    text_lines = source.text.splitlines()
    errors = []
    for match in re.finditer(r"^(.+?)\((\d+),\d+\): error (TS\d+): (.*)$", result.stdout, re.M):
        file, line, code, message = match.group(1), int(match.group(2)), match.group(3), match.group(4)
        if Path(file).name != target.name or not file.endswith(f"{directory.name}/{target.name}"):
            errors.append(TscError(f"<{file}>", None, line, code, message))
            continue
        key = re.match(r'\s*"((?:[^"\\]|\\.)*)"\s*:', text_lines[line - 1])
        errors.append(TscError(source.lines.get(line), key.group(1) if key else None, line, code, message))
    return result.returncode, errors, output


# ----------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
async def recorded(analytics_api: AnalyticsStack, session_factory, scripted_stripe: str) -> Recorder:  # type: ignore[no-untyped-def]
    api = analytics_api.client
    schema = (await api.get("/schema/openapi.json")).json()
    templates = [
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    tenant: Tenant = await new_tenant(session_factory, "TypeScript contract")
    other: Tenant = await new_tenant(session_factory, "TypeScript contract, other")
    ctx = Context(
        Recorder(templates), TenantClient(api, tenant), TenantClient(api, other), api, scripted_stripe, session_factory
    )
    async with notifications_running():  # events and webhook deliveries, during the recording only
        for run in SCENARIOS:
            await run(ctx)
    await every_get_endpoint(ctx)
    return ctx.record


def test_every_endpoint_is_recorded(recorded: Recorder) -> None:
    ok = {
        (r.method, r.path)
        for r in recorded.recordings
        if 200 <= r.status < 300 and (r.status != 202 or (r.method, r.path) in ANSWERS_202)
    }
    missing = sorted(f"{m} {p}" for m, p in recorded.templates if not _not_yet_covered(p) and (m, p) not in ok)
    assert not missing, (
        "endpoints with no recorded 2xx response: give each a RESPONSE_TYPES entry and drive it in a @scenario "
        f"of {__file__} (or list it in NOT_YET_COVERED): {missing}"
    )
    stale = sorted(f"{m} {p}" for m, p in RESPONSE_TYPES if (m, p) not in ok)
    assert not stale, f"RESPONSE_TYPES entries never answered 2xx here (renamed, or not driven?): {stale}"
    assert RESPONSE_TYPES.keys() >= ANSWERS_202
    assert all(r.status == 202 for r in recorded.recordings if (r.method, r.path) in ANSWERS_202 and r.status < 300)
    # the HTML routes stay out of the OpenAPI document: a JSON route added there is not skipped silently
    assert not [f"{m} {p}" for m, p in recorded.templates if any(p == x or p.startswith(x + "/") for x in NOT_JSON)]
    assert set(NOT_JSON_DOCUMENTED) <= {p for _, p in recorded.templates}  # no stale entry hides a route
    assert {r.status for r in recorded.recordings} >= {200, 201, 202, 400, 401, 402, 404, 405, 413, 503}


def test_recorded_responses_type_check(recorded: Recorder, tmp_path: Path) -> None:
    source = typescript_for(recorded.recordings)
    code, errors, output = compile_typescript(source, tmp_path / "ok")
    assert code == 0 and not errors, (
        "recorded API responses do not match the TypeScript types:\n"
        + "\n".join(map(str, errors))
        + f"\n\n{output[-3000:]}"
    )
    assert source.text.count("export const ") == len(recorded.recordings) >= len(RESPONSE_TYPES) + 15


def _mutated(recorded: list[Recording], name: str, change: Callable[[Any], None]) -> list[Recording]:
    out = []
    for r in recorded:
        if r.name == name:
            body = json.loads(json.dumps(r.body))
            change(body)
            r = replace(r, body=body)
        out.append(r)
    return out


def test_a_wrong_field_fails_the_check_and_is_named(recorded: Recorder, tmp_path: Path) -> None:
    names = {r.name for r in recorded.recordings}
    assert {"customer_create", "api_key_list", "error_no_key"} <= names
    broken = _mutated(
        recorded.recordings, "customer_create", lambda b: b.update(balance=str(b["balance"]))
    )  # BigInt -> number
    broken = _mutated(broken, "api_key_list", lambda b: b["data"][0].update(secretHash="0" * 64))  # a hidden field
    broken = _mutated(broken, "error_no_key", lambda b: b["error"].update(type="auth_error"))  # not an ErrorType
    code, errors, output = compile_typescript(typescript_for(broken), tmp_path / "broken")
    assert code != 0, output
    named = {(e.constant, e.key) for e in errors}
    assert named == {("customer_create", "balance"), ("api_key_list", "secretHash"), ("error_no_key", "type")}, (
        "\n".join(map(str, errors)) + "\n" + output[-3000:]
    )
    by_constant = {e.constant: e for e in errors}
    assert "'string' is not assignable to type 'number'" in by_constant["customer_create"].message
    assert "secretHash" in by_constant["api_key_list"].message
    assert '"auth_error"' in by_constant["error_no_key"].message


def test_the_catalog_json_shapes_are_checked(recorded: Recorder, tmp_path: Path) -> None:
    """Prisma types tiers, currencyOptions and attributes as JsonValue (anything passes):
    the catalog's types narrow them (Refine), and a wrong shape inside fails."""

    def last_tier_inf(body: Any) -> None:  # the shape sent on create, not the one answered
        body["tiers"][-1]["upTo"] = "inf"

    broken = _mutated(recorded.recordings, "price_create_tiered", last_tier_inf)
    broken = _mutated(broken, "price_retrieve_tiered", lambda b: b["currencyOptions"]["eur"].update(customUnitAmount=1))
    broken = _mutated(broken, "price_quote_per_unit", lambda b: b["lines"][0].update(upTo=None))
    broken = _mutated(broken, "product_create", lambda b: b["attributes"].update(weight_kg={"value": 0.25}))
    broken = _mutated(broken, "attribute_delete", lambda b: b.update(deleted=False))
    broken = _mutated(broken, "exchange_rate_create", lambda b: b.update(rate=1.0842))  # Decimal -> string
    code, errors, output = compile_typescript(typescript_for(broken), tmp_path / "broken")
    assert code != 0, output
    named = {(e.constant, e.key) for e in errors}
    assert named == {
        ("price_create_tiered", "upTo"),
        ("price_retrieve_tiered", "customUnitAmount"),
        ("price_quote_per_unit", "upTo"),
        ("product_create", "weight_kg"),
        ("attribute_delete", "deleted"),
        ("exchange_rate_create", "rate"),
    }, "\n".join(map(str, errors)) + "\n" + output[-3000:]
    by_constant = {e.constant: e for e in errors}
    assert "'string' is not assignable to type 'number'" in by_constant["price_create_tiered"].message
    assert "customUnitAmount" in by_constant["price_retrieve_tiered"].message
    assert "'PriceCurrencyOption'" in by_constant["price_retrieve_tiered"].message
    assert "'AttributeValue'" in by_constant["product_create"].message


def test_the_analytics_shapes_are_checked(recorded: Recorder, tmp_path: Path) -> None:
    """Meters' filters, the 202 of usage-events (its own body, not CommandAccepted), usage
    rows per groupBy, decimals as strings and the dashboard's data: a wrong shape fails."""
    names = {r.name for r in recorded.recordings}
    assert {"usage_events_accepted_batch", "usage_by_customer", "usage_max_no_events", "dashboard_overview"} <= names
    accepted = {(r.status, r.ts_type) for r in recorded.recordings if r.path == "/v1/usage-events" and r.status < 300}
    assert accepted == {(202, "UsageEventsAccepted")}
    broken = _mutated(recorded.recordings, "meter_create_filtered", lambda b: b["filters"].update(region=1))
    broken = _mutated(broken, "usage_events_accepted_batch", lambda b: b.update(status="pending"))
    broken = _mutated(broken, "usage_total", lambda b: b["data"][0].update(value=3.75))  # Decimal -> string
    broken = _mutated(
        broken, "usage_by_customer", lambda b: b["data"][0].update(bucket=b["from"])
    )  # not grouped by time
    broken = _mutated(broken, "usage_by_day", lambda b: b["data"][0].update(value=None))  # a group always has a value
    broken = _mutated(broken, "usage_no_meter", lambda b: b.update(groupBy="day"))  # the union: rows of no groupBy
    broken = _mutated(broken, "usage_summary", lambda b: b["meters"][0].update(valueSum="3.75 tokens"))
    broken = _mutated(broken, "dashboard_session_create", lambda b: b.update(url="https://elsewhere.example/login"))
    broken = _mutated(broken, "dashboard_overview", lambda b: b["topCustomers"][0].update(email="x@example.com"))
    code, errors, output = compile_typescript(typescript_for(broken), tmp_path / "broken")
    assert code != 0, output
    named = {(e.constant, e.key) for e in errors}
    assert named == {
        ("meter_create_filtered", "region"),
        ("usage_events_accepted_batch", "status"),
        ("usage_total", "value"),
        ("usage_by_customer", "bucket"),
        ("usage_by_day", "value"),
        ("usage_no_meter", "data"),
        ("usage_summary", "valueSum"),
        ("dashboard_session_create", "url"),
        ("dashboard_overview", "email"),
    }, "\n".join(map(str, errors)) + "\n" + output[-3000:]
    by_constant = {e.constant: e for e in errors}
    assert '"pending"' in by_constant["usage_events_accepted_batch"].message
    assert "'number' is not assignable" in by_constant["usage_total"].message


def test_the_payments_shapes_are_checked(recorded: Recorder, tmp_path: Path) -> None:
    """The Stripe account (never a last 4 when not connected), setup intents, stored payment
    methods' Json fields, the webhook answer, and decline_code (on card errors only)."""
    names = {r.name for r in recorded.recordings}
    assert {
        "stripe_account_retrieve",
        "setup_intent_create",
        "payment_method_list",
        "webhook_queued",
        "webhook_ignored",
        "error_card_declined",
    } <= names
    broken = _mutated(recorded.recordings, "stripe_account_retrieve", lambda b: b.update(mode="sandbox"))
    broken = _mutated(broken, "stripe_account_not_connected", lambda b: b.update(secretKeyLast4="4242"))
    broken = _mutated(broken, "setup_intent_create", lambda b: b.update(usage="sometimes"))
    broken = _mutated(broken, "setup_intent_create_on_session", lambda b: b["paymentMethodTypes"].append("paypal"))
    broken = _mutated(broken, "payment_method_retrieve", lambda b: b["metadata"].update(attempts=1))
    broken = _mutated(
        broken, "payment_method_list", lambda b: b["data"][0]["billingDetails"]["address"].update(postal_code=3511)
    )
    broken = _mutated(broken, "payment_method_detach_default", lambda b: b.update(expMonth="08"))
    broken = _mutated(broken, "webhook_queued", lambda b: b.update(action="accepted"))
    broken = _mutated(broken, "webhook_ignored", lambda b: b.update(commandId="cmd_x"))
    broken = _mutated(broken, "error_card_declined", lambda b: b["error"].update(decline_code=None))
    broken = _mutated(
        broken, "error_payment_method_unknown_at_stripe", lambda b: b["error"].update(decline_code="generic_decline")
    )
    code, errors, output = compile_typescript(typescript_for(broken), tmp_path / "broken")
    assert code != 0, output
    named = {(e.constant, e.key) for e in errors}
    assert named == {
        ("stripe_account_retrieve", "mode"),
        ("stripe_account_not_connected", None),  # a union: tsc names the constant, not the key
        ("setup_intent_create", "usage"),
        ("setup_intent_create_on_session", None),  # the array element's line
        ("payment_method_retrieve", "attempts"),
        ("payment_method_list", "postal_code"),
        ("payment_method_detach_default", "expMonth"),
        ("webhook_queued", "action"),
        ("webhook_ignored", "commandId"),
        ("error_card_declined", "decline_code"),
        ("error_payment_method_unknown_at_stripe", "decline_code"),
    }, "\n".join(map(str, errors)) + "\n" + output[-3000:]
    by_constant = {e.constant: e for e in errors}
    assert '"sandbox"' in by_constant["stripe_account_retrieve"].message
    assert "secretKeyLast4: string" in by_constant["stripe_account_not_connected"].message
    assert "'StripeAccount'" in by_constant["stripe_account_not_connected"].message
    assert '"paypal"' in by_constant["setup_intent_create_on_session"].message
    assert "'PaymentMethodType'" in by_constant["setup_intent_create_on_session"].message
    assert "'null' is not assignable" in by_constant["error_card_declined"].message
    assert "decline_code" in by_constant["error_payment_method_unknown_at_stripe"].message
