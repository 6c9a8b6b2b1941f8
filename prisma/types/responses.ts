// The API's response shapes around the resources (which are `ApiResource<Model>` and
// `ApiList<Item>` in api.ts): errors, search results, command status. Written by hand to
// match api/ (errors.py, responses.py, controllers/); tests/api/test_typescript_contract.py
// compiles recorded responses of the real API against these types, so a drift fails there.
// `Refine` narrows a model's Json fields (which Prisma can only type as JsonValue) with the
// generated `<Model>JsonFields` of prisma/generated/json-shapes.ts (shapes defined once in
// prisma/json-shapes.toml, validated the same way on the Python side), re-exported here.
// The notifications part types webhook endpoints, events and deliveries.
// The catalog part types deletes and quotes; the analytics part usage events' 202,
// /v1/analytics (usage, summary) and the dashboard's JSON (sign-in link, the page's
// data). The payments part types the organization's Stripe account, setup intents and
// the answer to Stripe's webhooks. The billing part types subscriptions with their items
// and tax rates, subscription schedules with their phases, invoices and credit notes with
// their lines, and the upcoming-invoice preview.

import type {
  CreditNote,
  CreditNoteLineItem,
  Event,
  Invoice,
  InvoiceLineItem,
  Subscription,
  SubscriptionItem,
  SubscriptionSchedule,
  SubscriptionSchedulePhase,
  WebhookDelivery,
  WebhookDeliveryAttempt,
  WebhookEndpoint,
} from "../generated/client/browser.ts";
import type { BillingScheme, MeterAggregation, PaymentMethodType, TiersMode } from "../generated/client/enums.ts";
import type {
  ChangeRules,
  CreditNoteJsonFields,
  Dunning,
  Emails,
  Invoicing,
  CreditNoteLineItemJsonFields,
  InvoiceJsonFields,
  InvoiceLineItemJsonFields,
  SubscriptionItemJsonFields,
  SubscriptionJsonFields,
  SubscriptionScheduleJsonFields,
  SubscriptionSchedulePhaseJsonFields,
  TaxAmount,
  WebhookEndpointJsonFields,
} from "../generated/json-shapes.ts";
import type { ApiResource } from "./api.ts";

export type * from "../generated/json-shapes.ts";

/** Stripe's error types, as this API uses them. */
export type ErrorType =
  | "api_error"
  | "authentication_error"
  | "card_error"
  | "idempotency_error"
  | "invalid_request_error"
  | "rate_limit_error";

type ApiErrorFields = {
  /** e.g. resource_missing, parameter_unknown, email_invalid; null when there is none */
  code: string | null;
  message: string;
  /** The request parameter at fault, Stripe-style (`address[country]`), or null */
  param: string | null;
};

/**
 * An error body's `error`. Only a card error (402: Stripe declined or refused the card,
 * code `card_declined`, `expired_card`, ...) may carry `decline_code`, the issuer's reason
 * (`generic_decline`, `insufficient_funds`, ...; snake_case as in Stripe's errors), and
 * only when Stripe gave one; on any other type the key is never there.
 */
export type ApiError =
  | (ApiErrorFields & { type: Exclude<ErrorType, "card_error"> })
  | (ApiErrorFields & { type: "card_error"; decline_code?: string });

/** Every failure, whatever the status (400, 401, 404, 409, 413, 422, 429, 503, ...). */
export type ErrorResponse = { error: ApiError };

/** `GET /v1/<resource>/search`: a page of matches, newest first. */
export type SearchResult<Item> = {
  object: "search_result";
  data: Item[];
  hasMore: boolean;
  url: string;
  /** pass as `page` to get the next page; null on the last one */
  nextPage: string | null;
};

/** A write answered 202: the command was accepted but not applied within the timeout. */
export type CommandAccepted = {
  object: "command";
  id: string;
  status: "pending";
  /** GET this (also in the Location header) for the outcome */
  statusUrl: string;
};

/** `GET /v1/commands/{id}`: `result` is the resource the write returned once it succeeded. */
export type CommandStatus<Result = { [field: string]: unknown }> =
  | { object: "command"; id: string; status: "pending"; result: null; error: null }
  | { object: "command"; id: string; status: "succeeded"; result: Result; error: null }
  | { object: "command"; id: string; status: "failed"; result: null; error: ApiError };

/** A response that shows a new secret once (API key create and roll). */
export type WithSecret<Resource> = Resource & { secret: string };

// ------------------------------------------------------------------------------ catalog

/**
 * A resource whose Json fields the API answers in a known shape: `Refine<ApiResource<Price>,
 * PriceJsonFields>`. Each field of `Precise` must be a field of `Resource` and its type
 * must be assignable to the generated one (a refinement can never contradict Prisma);
 * the generated `JsonValue` is then replaced, not intersected, so that an unknown key
 * inside a tier or a currency option still fails the excess-property check (`JsonObject`'s
 * index signature would let anything through an intersection).
 */
export type Refine<
  Resource,
  Precise extends { [Field in keyof Precise]: Field extends keyof Resource ? Resource[Field] : never },
> = Omit<Resource, keyof Precise> & Precise;

/** A DELETE that removes the row (products, attribute definitions): the id, and what else
 * the endpoint echoes (`Deleted<ApiResource<ProductAttributeDefinition>, "key">`). */
export type Deleted<Resource extends { id: string }, Also extends keyof Resource = never> = Pick<
  Resource,
  "id" | Also
> & { deleted: true };

type QuoteLineAmounts = {
  quantity: number;
  /** The unit amount applied, minor units as a decimal string */
  unitAmountDecimal: string;
  flatAmountDecimal: string;
  /** This line's amount in integer minor units, rounded once */
  amount: number;
};

/** A line of a quote: one per tier reached (tiered), or the one line of a per_unit price. */
export type PriceQuoteLine =
  | (QuoteLineAmounts & { tierIndex: null })
  | (QuoteLineAmounts & { tierIndex: number; upTo: number | null });

/** `POST /v1/prices/{id}/quote`: what the price charges for a quantity in one currency. */
export type PriceQuote = {
  object: "price_quote";
  /** the price's id */
  price: string;
  currency: string;
  quantity: number;
  /** after transformQuantity */
  billedQuantity: number;
  billingScheme: BillingScheme;
  tiersMode: TiersMode | null;
  lines: PriceQuoteLine[];
  /** integer minor units of `currency` */
  total: number;
};

// ---------------------------------------------------------------------------- analytics

/**
 * An exact decimal as the analytics endpoints answer it ("3.75", "0", "1000"): a string,
 * never a JSON number (which a client's JSON parser would turn into a float), and a
 * string that reads as a number.
 */
export type DecimalString = `${number}`;

/** `POST /v1/usage-events` (one event or a batch), answered 202: the events are durable
 * in Kafka and are counted by /v1/analytics once the analytics consumer stored them. */
export type UsageEventsAccepted = {
  object: "usage_event_batch";
  status: "accepted";
  /** events in the request (1 for a single event) */
  count: number;
  receivedAt: string;
};

/** One group of usage: `Bucket` is the start of the UTC day or hour when grouped by time,
 * `Customer` the customer's id when grouped by customer (null otherwise). */
export type UsageRow<Bucket extends string | null, Customer extends string | null, Value = DecimalString> = {
  bucket: Bucket;
  customerId: Customer;
  value: Value;
  eventCount: number;
};

type UsageResult<GroupBy, Data> = {
  object: "usage";
  /** the meter's id; null when asked by eventName with no meter read */
  meter: string | null;
  eventName: string;
  aggregation: MeterAggregation;
  /** the customer filter as sent, or null */
  customer: string | null;
  /** [from, to): ISO-8601 UTC */
  from: string;
  to: string;
  groupBy: GroupBy;
  data: Data;
};

export type UsageGroupBy = "day" | "hour" | "customer";

/**
 * `GET /v1/analytics/usage`, for the `groupBy` asked (`UsageQueryResult<"day">`; without
 * an argument, the union of all, to narrow on `groupBy`). Ungrouped (`null`): exactly one
 * row, even with no events (value "0" for sum, count and unique_count; null for max and
 * last over no events). Grouped: one row per day/hour/customer that had events, so the
 * value is always there.
 */
export type UsageQueryResult<GroupBy extends UsageGroupBy | null = UsageGroupBy | null> = GroupBy extends "day" | "hour"
  ? UsageResult<GroupBy, UsageRow<string, null>[]>
  : GroupBy extends "customer"
    ? UsageResult<"customer", UsageRow<null, string>[]>
    : UsageResult<null, [UsageRow<null, null, DecimalString | null>]>;

/** One event name of a usage summary. */
export type UsageSummaryMeter = {
  eventName: string;
  /** the id of the organization's meter of that event name, or null */
  meter: string | null;
  /** every event of the name; valueSum: the sum of their `value` field */
  eventCount: number;
  valueSum: DecimalString;
  customers: number;
  /** what the meter measures (its aggregation, valueKey and filters) over the same range:
   * the row `GET /v1/analytics/usage?meter=` answers; null without a meter */
  usage: { aggregation: MeterAggregation; value: DecimalString | null; eventCount: number } | null;
};

/** `GET /v1/analytics/summary`: the organization's usage over [from, to). */
export type UsageSummary = {
  object: "usage_summary";
  from: string;
  to: string;
  eventCount: number;
  valueSum: DecimalString;
  /** distinct customers with usage */
  customers: number;
  meters: UsageSummaryMeter[];
  /** billing.events per type (customer.created, meter.created, ...) */
  interactions: { [type: string]: number };
  interactionCount: number;
  deadLetters: number;
};

/** `POST /v1/dashboard/sessions`: a one-time sign-in link for /dashboard, valid 60 s. */
export type DashboardSessionLink = {
  object: "dashboard_session_link";
  /** relative to the API's address */
  url: `/dashboard/login?token=${string}`;
  expiresAt: string;
};

/** `GET /dashboard/api/overview` (the dashboard page's data; cookie session, not in the
 * OpenAPI document): whole UTC days, the newest `days` of them. */
export type DashboardOverview = {
  object: "dashboard_overview";
  from: string;
  to: string;
  days: number;
  totals: {
    eventCount: number;
    valueSum: DecimalString;
    customers: number;
    interactionCount: number;
    deadLetters: number;
  };
  meters: { id: string; eventName: string; displayName: string; aggregation: MeterAggregation }[];
  usageOverTime: {
    eventName: string;
    /** the meter's displayName, or the event name when it has no meter */
    displayName: string;
    aggregation: MeterAggregation;
    points: { day: string; value: DecimalString; eventCount: number }[];
  }[];
  /** the event name whose top customers are listed; null with no usage */
  selectedMeter: string | null;
  topCustomers: { customerId: string; name: string | null; value: DecimalString; eventCount: number }[];
  /** productId null: usage of event names that no product's price refers to */
  usageByProduct: { productId: string | null; name: string; eventCount: number; eventNames: string[] }[];
  interactions: { type: string; count: number }[];
};

// ----------------------------------------------------------------------------- payments

/** The webhook URL an organization registers in its Stripe dashboard (relative to the API). */
export type StripeWebhookPath = `/v1/webhooks/stripe/${string}`;

type StripeAccountFields = {
  /** the organization's id */
  id: string;
  object: "stripe_account";
  /** whether a webhook signing secret is stored (never the secret) */
  webhookSecretConfigured: boolean;
  webhookUrl: StripeWebhookPath;
};

/**
 * `GET`, `PUT` and `DELETE /v1/stripe-account`: whether the organization's Stripe account
 * is connected, never its secrets. Connected: the key's mode and last 4, both null only
 * when the stored key cannot be decrypted with the configured keys (connect it again).
 */
export type StripeAccount =
  | (StripeAccountFields & { connected: false; mode: null; secretKeyLast4: null })
  | (StripeAccountFields & { connected: true; mode: "test" | "live"; secretKeyLast4: string })
  | (StripeAccountFields & { connected: true; mode: null; secretKeyLast4: null });

/** `POST /v1/setup-intents` (not stored: Stripe keeps it). Hand `clientSecret` to Stripe.js. */
export type SetupIntent = {
  object: "setup_intent";
  /** Stripe's SetupIntent id */
  id: `seti_${string}`;
  clientSecret: `seti_${string}_secret_${string}` | null;
  /** Stripe's SetupIntent status */
  status:
    | "requires_payment_method"
    | "requires_confirmation"
    | "requires_action"
    | "processing"
    | "canceled"
    | "succeeded";
  /** our customer's id */
  customer: string;
  /** the customer's Stripe customer (made on first use) */
  gatewayCustomerId: `cus_${string}`;
  /** as requested (default ["card"]) */
  paymentMethodTypes: PaymentMethodType[];
  usage: "off_session" | "on_session";
};

/**
 * `POST /v1/webhooks/stripe/{organizationId}`: a verified Stripe event was received.
 * `queued`: its command is on Kafka (applied moments later; `GET /v1/commands/{commandId}`);
 * `duplicate`: Stripe resent an event already applied (nothing published); `ignored`: an
 * event type (or payment method type) this API does not act on.
 */
export type StripeWebhookAck =
  | { received: true; eventId: string; action: "queued" | "duplicate"; commandId: string }
  | { received: true; eventId: string; action: "ignored" };

// ------------------------------------------------------------------------------ billing

/** A subscription as the API answers it: with its items, its tax rates and its latest invoice's id. */
export type SubscriptionDetails = Refine<ApiResource<Subscription>, SubscriptionJsonFields> & {
  items: (Refine<ApiResource<SubscriptionItem>, SubscriptionItemJsonFields> & {
    /** tax rate ids on this item's lines, in place of the defaults */
    taxRates: string[];
  })[];
  /** tax rate ids on every line whose item has none of its own */
  defaultTaxRates: string[];
  latestInvoice: string | null;
};

/** A subscription schedule as the API answers it: with its phases in order and the current one's span. */
export type SubscriptionScheduleDetails = Refine<ApiResource<SubscriptionSchedule>, SubscriptionScheduleJsonFields> & {
  phases: Refine<ApiResource<SubscriptionSchedulePhase>, SubscriptionSchedulePhaseJsonFields>[];
  /** while the schedule is active */
  currentPhase: { startDate: string; endDate: string } | null;
};

/** An invoice as the API answers it: with its lines (amounts in the invoice's minor unit). */
export type InvoiceDetails = Refine<ApiResource<Invoice>, InvoiceJsonFields> & {
  lines: Refine<ApiResource<InvoiceLineItem>, InvoiceLineItemJsonFields>[];
};

/** `GET` and `PATCH /v1/billing-settings`: the organization's plan change rules, dunning, invoicing and emails. */
export type BillingSettings = {
  object: "billing_settings";
  organizationId: string;
  changeRules: ChangeRules;
  dunning: Dunning;
  invoicing: Invoicing;
  emails: Emails;
};

/** A credit note as the API answers it: with its lines (amounts in its invoice's minor unit). */
export type CreditNoteDetails = Refine<ApiResource<CreditNote>, CreditNoteJsonFields> & {
  lines: Refine<ApiResource<CreditNoteLineItem>, CreditNoteLineItemJsonFields>[];
};

/** `POST /v1/invoices/upcoming`: the invoice a renewal or a plan change would create (never stored). */
export type InvoicePreview = {
  object: "invoice_preview";
  customerId: string;
  subscriptionId: string;
  currency: string;
  billingReason: "subscription_update" | "subscription_cycle";
  periodStart: string;
  periodEnd: string;
  lines: {
    description: string;
    /** minor units, rounded once */
    amount: number;
    quantity: number;
    priceId: string | null;
    subscriptionItemId: string | null;
    /** a decimal string */
    unitAmountDecimal: string | null;
    proration: boolean;
    periodStart: string;
    periodEnd: string;
    /** each tax rate's tax on this line, rounded once */
    taxAmounts: TaxAmount[];
  }[];
  subtotal: number;
  tax: number;
  total: number;
  startingBalance: number;
  endingBalance: number;
  amountDue: number;
};

// ------------------------------------------------------------------------ notifications

/** A webhook endpoint as reads answer it (its secrets are never read back). */
export type WebhookEndpointResource = Refine<
  ApiResource<WebhookEndpoint, "secretEncrypted" | "previousSecretEncrypted">,
  WebhookEndpointJsonFields
>;

/** A domain event, as `/v1/events` answers it and webhooks deliver it. */
export type EventResource = Omit<ApiResource<Event>, "data"> & {
  /** the resource as the API returns it, after the change (a singleton such as billing settings has no id) */
  data: { object: Record<string, unknown>; previousAttributes: Record<string, unknown> | null };
};

/** A delivery of an event to an endpoint (its lease is the sender's business). */
export type WebhookDeliveryResource = ApiResource<WebhookDelivery, "leasedUntil">;

/** A delivery as `/v1/webhook-deliveries` answers it: with its attempts, oldest first. */
export type WebhookDeliveryDetails = WebhookDeliveryResource & { attempts: ApiResource<WebhookDeliveryAttempt>[] };
