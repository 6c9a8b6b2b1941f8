"""Catalog services and reads against the real test database (each test its own
organization): attribute definitions, products, prices, quotes, exchange rates."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from billing.catalog import repository, service
from billing.db.pagination import PageRequest
from billing.db.search import parse_search_query
from billing.db.sessions import bind_row_security, tenant_session
from billing.errors import BillingError, InvalidRequest, ResourceMissing
from billing.fx import rates as fx
from billing.fx import service as fx_service
from billing.ids import new_id
from billing.models import (
    Customer,
    ExchangeRate,
    Price,
    Product,
    Subscription,
    SubscriptionItem,
    SubscriptionSchedule,
    SubscriptionSchedulePhase,
)
from billing.organizations.service import create_organization
from contracts.catalog import (
    AttributeDefinitionCreate,
    ExchangeRateCreate,
    PriceCreate,
    ProductCreate,
)
from contracts.enums import SubscriptionStatus
from contracts.resources import Price as PriceResource

R = TypeVar("R")

TIERED_USD = {
    "currency": "usd",
    "billingScheme": "tiered",
    "tiersMode": "graduated",
    "recurring": {"interval": "month"},
    "tiers": [
        {"upTo": 10, "unitAmount": 1000},
        {"upTo": 100, "unitAmountDecimal": "850.5", "flatAmount": 500},
        {"upTo": "inf", "unitAmount": 700},
    ],
    "currencyOptions": {
        "eur": {
            "tiers": [
                {"upTo": 10, "unitAmount": 900},
                {"upTo": 100, "unitAmount": 800, "flatAmount": 450},
                {"upTo": "inf", "unitAmount": 650},
            ]
        },
        "jpy": {
            "tiers": [
                {"upTo": 10, "unitAmount": 1500},
                {"upTo": 100, "unitAmount": 1300, "flatAmount": 700},
                {"upTo": "inf", "unitAmount": 1000},
            ]
        },
        "kwd": {
            "tiers": [
                {"upTo": 10, "unitAmount": 3050},
                {"upTo": 100, "unitAmountDecimal": "2600.25", "flatAmount": 1500},
                {"upTo": "inf", "unitAmount": 2100},
            ]
        },
    },
}


class Org:
    def __init__(self, session_factory: Any, organization_id: str, *, row_security: bool = True) -> None:
        self.session_factory = session_factory
        self.id = organization_id
        self.row_security = row_security

    def operator(self) -> Org:
        """The organization as the consumer runs its commands on shared data (exchange
        rates): the tenant filter, but the connecting role, which may write them."""
        return Org(self.session_factory, self.id, row_security=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Any]:
        async with tenant_session(self.session_factory, self.id) as session, session.begin():
            if not self.row_security:
                await bind_row_security(session, self.id, tenant_role=False)
            yield session

    async def run(self, action: Callable[[Any], Awaitable[R]]) -> R:
        """One unit of work, committed (as the consumer does per batch)."""
        async with self.session() as session:
            return await action(session)

    async def fails(self, action: Callable[[Any], Awaitable[Any]]) -> BillingError:
        """The action raises, and (its transaction rolled back) nothing is written."""
        with pytest.raises(BillingError) as caught:
            await self.run(action)
        return caught.value


@pytest.fixture
async def org(session_factory: Any) -> Org:
    async with session_factory() as session, session.begin():
        organization, _ = await create_organization(session, "Catalog service test")
    return Org(session_factory, organization.id)


other_org = org


async def product(org: Org, **fields: Any) -> Product:
    return await org.run(
        lambda s: service.create_product(s, ProductCreate.model_validate({"name": "Widget", **fields}))
    )


async def price(org: Org, product_id: str, **fields: Any) -> Price:
    body = {"product": product_id, "currency": "usd", **fields}
    if "billingScheme" not in fields and "unitAmountDecimal" not in fields:
        body.setdefault("unitAmount", 1000)
    created, _ = await org.run(lambda s: service.create_price(s, PriceCreate.model_validate(body)))
    return created


async def define(org: Org, **fields: Any) -> Any:
    return await org.run(
        lambda s: service.create_attribute_definition(s, AttributeDefinitionCreate.model_validate(fields))
    )


# --- attribute definitions and products -----------------------------------------------------------


async def test_attribute_lifecycle_add_deprecate_remove(org: Org) -> None:
    color = await define(org, key="color", label="Color", type="enum", enumValues=["red", "blue"], required=True)
    assert color.id.startswith("attr_") and color.required
    shirt = await product(org, attributes={"color": "red"})
    assert shirt.attributes == {"color": "red"}

    error = await org.fails(lambda s: service.create_product(s, ProductCreate(name="No color")))
    assert (error.param, error.code) == ("attributes[color]", "parameter_missing")

    deprecated = await org.run(lambda s: service.update_attribute_definition(s, color.id, {"deprecated": True}))
    assert deprecated.deprecated and deprecated.deprecated_at is not None
    # no longer required, no longer accepted in new values; existing products keep it
    assert (await product(org, name="Plain")).attributes == {}
    error = await org.fails(lambda s: service.create_product(s, ProductCreate(name="x", attributes={"color": "red"})))
    assert (error.param, error.code) == ("attributes[color]", "attribute_deprecated")
    renamed = await org.run(lambda s: service.update_product(s, shirt.id, {"name": "Shirt"}))
    assert renamed.attributes == {"color": "red"}

    removed = await org.run(lambda s: service.delete_attribute_definition(s, color.id))
    assert removed == {"id": color.id, "key": "color", "deleted": True}
    assert (await org.run(lambda s: repository.get_product(s, shirt.id))).attributes == {"color": "red"}
    # the key can be defined anew, with another type
    again = await define(org, key="color", label="Color code", type="number")
    assert again.id != color.id
    error = await org.fails(lambda s: service.create_product(s, ProductCreate(name="x", attributes={"color": "red"})))
    assert error.param == "attributes[color]"


async def test_definition_rules(org: Org) -> None:
    await define(org, key="size", label="Size", type="enum", enumValues=["s", "m"], defaultValue="m")
    error = await org.fails(
        lambda s: service.create_attribute_definition(
            s, AttributeDefinitionCreate(key="size", label="x", type="string")
        )
    )
    assert (error.param, error.code) == ("key", "attribute_key_in_use")
    size = await org.run(lambda s: repository.get_attribute_definition_by_key(s, "size"))
    # dropping the default's value from enumValues points at enumValues
    error = await org.fails(lambda s: service.update_attribute_definition(s, size.id, {"enumValues": ["s", "l"]}))
    assert error.param == "enumValues"
    error = await org.fails(lambda s: service.update_attribute_definition(s, size.id, {"label": None}))
    assert error.param == "label"
    updated = await org.run(
        lambda s: service.update_attribute_definition(s, size.id, {"enumValues": ["s", "l"], "defaultValue": "l"})
    )
    assert (updated.enum_values, updated.default_value) == (["s", "l"], "l")
    missing = await org.fails(lambda s: service.update_attribute_definition(s, "attr_nope", {"label": "x"}))
    assert isinstance(missing, ResourceMissing)


async def test_definitions_and_products_are_tenant_scoped(org: Org, other_org: Org) -> None:
    await define(org, key="fabric", label="Fabric", type="string", required=True)
    mine = await product(org, attributes={"fabric": "linen"})
    # the other organization has no such definition: its products neither need nor accept it
    assert (await product(other_org, name="Theirs")).attributes == {}
    error = await other_org.fails(
        lambda s: service.create_product(s, ProductCreate(name="x", attributes={"fabric": "a"}))
    )
    assert error.code == "parameter_unknown"
    assert await other_org.run(lambda s: repository.get_product(s, mine.id)) is None
    assert isinstance(
        await other_org.fails(lambda s: service.update_product(s, mine.id, {"name": "stolen"})), ResourceMissing
    )
    assert len(await other_org.run(repository.attribute_definitions)) == 0


async def test_update_merges_attributes_and_metadata(org: Org) -> None:
    await define(org, key="weight", label="Weight", type="number")
    await define(org, key="organic", label="Organic", type="boolean", defaultValue=False)
    created = await product(org, attributes={"weight": 1.5}, metadata={"a": "1", "b": "2"})
    assert created.attributes == {"weight": 1.5, "organic": False}
    updated = await org.run(
        lambda s: service.update_product(
            s,
            created.id,
            {"attributes": {"weight": None, "organic": True}, "metadata": {"a": None, "c": "3"}, "description": "d"},
        )
    )
    assert updated.attributes == {"organic": True}
    assert updated.metadata_ == {"b": "2", "c": "3"}
    assert updated.description == "d"
    archived = await org.run(lambda s: service.update_product(s, created.id, {"active": False}))
    assert archived.active is False
    error = await org.fails(lambda s: service.update_product(s, created.id, {"name": None}))
    assert error.param == "name"


async def test_list_filters_by_typed_attributes_ids_active_and_search(org: Org) -> None:
    await define(org, key="color", label="Color", type="enum", enumValues=["red", "blue"])
    await define(org, key="size", label="Size", type="number")
    await define(org, key="organic", label="Organic", type="boolean")
    red = await product(org, name="Red tee", attributes={"color": "red", "size": 10, "organic": True})
    blue = await product(org, name="Blue tee", attributes={"color": "blue", "size": 10.5, "organic": False})
    archived = await product(org, name="Old red tee", attributes={"color": "red", "size": 10}, active=False)
    page = PageRequest(limit=100)

    async def listed(**filters: Any) -> list[str]:
        result = await org.run(lambda s: repository.list_products(s, page, **filters))
        return [p.id for p in result.items]

    assert await listed(attributes={"color": "red"}) == [archived.id, red.id]
    assert await listed(attributes={"color": "red"}, active=True) == [red.id]
    assert await listed(attributes={"size": "10"}) == [archived.id, red.id]  # a number, not the string "10"
    assert await listed(attributes={"size": "10.50"}) == [blue.id]
    assert await listed(attributes={"organic": "false"}) == [blue.id]
    assert await listed(attributes={"color": "red", "organic": "true"}) == [red.id]
    assert await listed(ids=[blue.id, archived.id]) == [archived.id, blue.id]
    error = await org.fails(lambda s: repository.list_products(s, page, attributes={"size": "big"}))
    assert error.param == "attributes[size]"

    async def searched(query: str) -> list[str]:
        parsed = parse_search_query(query, repository.PRODUCT_SEARCH_FIELDS)
        return [p.id for p in (await org.run(lambda s: repository.search_products(s, parsed, page))).items]

    assert await searched("name~'red tee'") == [archived.id, red.id]
    assert await searched("name~'tee' AND active:'true'") == [blue.id, red.id]
    assert await searched("name:'Blue tee'") == [blue.id]


async def test_the_attribute_filter_uses_the_gin_index(org: Org) -> None:
    from sqlalchemy import text

    # a plain session: in a tenant session row-level security adds the organization to the
    # plan, and on a table this small the planner then prefers the organization index
    async with org.session_factory() as session, session.begin():
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            row[0]
            for row in await session.execute(
                # the operator class serves @> (with many tenants the planner may AND it with the org index)
                text("EXPLAIN SELECT id FROM products WHERE attributes @> CAST(:d AS jsonb)"),
                {"d": '{"color": "red"}'},
            )
        )
    assert "products_attributes_idx" in plan


# --- prices ----------------------------------------------------------------------------------------


async def test_a_tiered_multi_currency_price_is_stored_like_stripe_and_quoted_per_currency(org: Org) -> None:
    widget = await product(org)
    created = await price(
        org, widget.id, **{k: v for k, v in TIERED_USD.items() if k != "currency"}, lookupKey="pro_monthly"
    )
    assert created.id.startswith("price_")
    assert created.tiers[-1] == {"upTo": None, "unitAmount": 700}  # inf reads as null, as in Stripe
    assert created.currency_options["eur"]["tiers"][-1]["upTo"] is None
    assert (created.recurring_interval.value, created.recurring_interval_count, created.recurring_usage_type.value) == (
        "month",
        1,
        "licensed",
    )

    stored = await org.run(lambda s: repository.get_price(s, created.id))
    assert PriceResource.model_validate(stored).model_dump(mode="json")["tiers"][1]["unitAmountDecimal"] == "850.5"
    expectations = {
        # 10 x 1000 + (15 x 850.5 = 12757.5 -> 12758) + 500
        "usd": (23258, [10000, 13258]),
        "eur": (9000 + 15 * 800 + 450, [9000, 12450]),
        "jpy": (15000 + 15 * 1300 + 700, [15000, 20200]),
        # 15 x 2600.25 = 39003.75 -> 39004, + 1500
        "kwd": (30500 + 39004 + 1500, [30500, 40504]),
    }
    for currency, (total, amounts) in expectations.items():
        result = service.quote_price(stored, 25, currency.upper())
        assert (result["currency"], result["total"]) == (currency, total)
        assert [line["amount"] for line in result["lines"]] == amounts
        assert [line["upTo"] for line in result["lines"]] == [10, 100]
    assert service.quote_price(stored, 25, None)["currency"] == "usd"

    for currency, code in (("gbp", "currency_not_supported"), ("xyz", "invalid_currency")):
        with pytest.raises(InvalidRequest) as caught:
            service.quote_price(stored, 1, currency)
        assert (caught.value.param, caught.value.code) == ("currency", code)


async def test_package_and_decimal_prices_round_once(org: Org) -> None:
    widget = await product(org)
    package = await price(org, widget.id, unitAmount=500, transformQuantity={"divideBy": 10, "round": "up"})
    stored = await org.run(lambda s: repository.get_price(s, package.id))
    assert service.quote_price(stored, 21, "usd")["total"] == 1500
    assert service.quote_price(stored, 21, "usd")["billedQuantity"] == 3
    decimal = await price(org, widget.id, unitAmountDecimal="0.125")
    stored = await org.run(lambda s: repository.get_price(s, decimal.id))
    assert stored.unit_amount_decimal == Decimal("0.125")
    assert PriceResource.model_validate(stored).model_dump(mode="json")["unitAmountDecimal"] == "0.125"
    assert service.quote_price(stored, 3, "usd")["total"] == 0  # 0.375 -> 0
    assert service.quote_price(stored, 4, "usd")["total"] == 1  # 0.5 -> 1, ties away from zero
    with pytest.raises(InvalidRequest) as caught:
        service.quote_price(stored, 10**30, "usd")
    assert caught.value.param == "quantity"


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"unitAmount": -1}, "unitAmount", "parameter_invalid"),
        ({"unitAmount": 12.5}, "unitAmount", "parameter_invalid_integer"),
        ({"unitAmount": 100_000_000}, "unitAmount", "amount_too_large"),
        ({"unitAmountDecimal": "1.5"}, "unitAmountDecimal", "parameter_invalid"),  # both
        ({"currency": "usx"}, "currency", "invalid_currency"),
        ({"currencyOptions": {"usd": {"unitAmount": 1}}}, "currencyOptions[usd]", "parameter_invalid"),
        ({"tiers": [{"upTo": "inf", "unitAmount": 1}]}, "tiers", "parameter_invalid"),  # per_unit with tiers
        ({"product": "prod_missing"}, "product", "resource_missing"),
        (
            {"recurring": {"interval": "month", "usageType": "metered", "meter": "mtr_missing"}},
            "recurring[meter]",
            "resource_missing",
        ),
    ],
)
async def test_bad_prices_write_nothing(org: Org, fields: dict[str, Any], param: str, code: str) -> None:
    widget = await product(org)
    body = {"product": widget.id, "currency": "usd", "unitAmount": 1000, **fields}
    error = await org.fails(lambda s: service.create_price(s, PriceCreate.model_validate(body)))
    assert (error.param, error.code, error.status) == (param, code, 400)
    assert (await org.run(lambda s: repository.list_prices(s, PageRequest(), product=widget.id))).items == []


async def test_lookup_keys_are_unique_and_transfer(org: Org, other_org: Org) -> None:
    widget = await product(org)
    first = await price(org, widget.id, lookupKey="standard")
    error = await org.fails(
        lambda s: service.create_price(
            s, PriceCreate(product=widget.id, currency="usd", unitAmount=1, lookupKey="standard")
        )
    )
    assert (error.param, error.code) == ("lookupKey", "lookup_key_in_use")
    second, previous = await org.run(
        lambda s: service.create_price(
            s,
            PriceCreate(product=widget.id, currency="usd", unitAmount=2, lookupKey="standard", transferLookupKey=True),
        )
    )
    assert previous is not None and previous.id == first.id and previous.lookup_key is None
    assert second.lookup_key == "standard"
    # through an update too, and back
    back, previous = await org.run(
        lambda s: service.update_price(s, first.id, {"lookupKey": "standard", "transferLookupKey": True})
    )
    assert (back.lookup_key, previous.id) == ("standard", second.id)
    # another organization has its own lookup keys
    theirs = await price(other_org, (await product(other_org)).id, lookupKey="standard")
    assert theirs.lookup_key == "standard"
    listed = await org.run(lambda s: repository.list_prices(s, PageRequest(), lookup_keys=["standard"]))
    assert [p.id for p in listed.items] == [first.id]


async def test_price_updates_change_only_what_prices_allow(org: Org) -> None:
    widget = await product(org)
    created = await price(org, widget.id, metadata={"a": "1"}, nickname="Old")
    updated, _ = await org.run(
        lambda s: service.update_price(s, created.id, {"active": False, "nickname": None, "metadata": {"b": "2"}})
    )
    assert (updated.active, updated.nickname, updated.metadata_, updated.unit_amount) == (
        False,
        None,
        {"a": "1", "b": "2"},
        1000,
    )
    for changes, param, code in (
        ({"unitAmount": 5}, "unitAmount", "parameter_unknown"),  # amounts are immutable
        ({"active": None}, "active", "parameter_invalid"),
        ({"transferLookupKey": True}, "lookupKey", "parameter_missing"),
        ({"nickname": 5}, "nickname", "parameter_invalid"),
    ):
        error = await org.fails(lambda s: service.update_price(s, created.id, changes))
        assert (error.param, error.code) == (param, code)


async def test_list_prices_by_filters(org: Org) -> None:
    widget, other = await product(org), await product(org)
    monthly = await price(org, widget.id, recurring={"interval": "month"}, currencyOptions={"eur": {"unitAmount": 900}})
    yearly = await price(org, widget.id, recurring={"interval": "year", "usageType": "metered"}, currency="eur")
    once = await price(org, other.id, active=False)
    page = PageRequest(limit=100)

    async def listed(**filters: Any) -> list[str]:
        return [p.id for p in (await org.run(lambda s: repository.list_prices(s, page, **filters))).items]

    assert await listed(product=widget.id) == [yearly.id, monthly.id]
    assert await listed(product=widget.id, currency="eur") == [yearly.id, monthly.id]  # own currency or an option
    assert await listed(product=widget.id, currency="usd") == [monthly.id]
    from contracts.enums import PriceType, RecurringInterval, UsageType

    assert await listed(type_=PriceType.one_time, product=other.id) == [once.id]
    assert await listed(interval=RecurringInterval.year, product=widget.id) == [yearly.id]
    assert await listed(usage_type=UsageType.metered, product=widget.id) == [yearly.id]
    assert await listed(active=False, product=other.id) == [once.id]


# --- deleting products --------------------------------------------------------------------------------


async def _subscribe(org: Org, price_id: str, *, schedule_only: bool = False) -> None:
    async def action(session: Any) -> None:
        now = datetime.now(UTC)
        customer = Customer(id=new_id("customer"), organization_id=org.id, balance=0, invoice_settings={}, metadata_={})
        session.add(customer)
        await session.flush()
        if schedule_only:
            schedule = SubscriptionSchedule(
                id=new_id("subscription_schedule"), organization_id=org.id, customer_id=customer.id
            )
            session.add(schedule)
            await session.flush()
            session.add(
                SubscriptionSchedulePhase(
                    id=new_id("subscription_schedule_phase"),
                    organization_id=org.id,
                    schedule_id=schedule.id,
                    position=0,
                    start_date=now,
                    items=[{"priceId": price_id, "quantity": 1}],
                )
            )
            return
        subscription = Subscription(
            id=new_id("subscription"),
            organization_id=org.id,
            customer_id=customer.id,
            status=SubscriptionStatus.canceled,
            currency="usd",
            start_date=now,
            billing_cycle_anchor=now,
            current_period_start=now,
            current_period_end=now + timedelta(days=30),
        )
        session.add(subscription)
        await session.flush()
        session.add(
            SubscriptionItem(
                id=new_id("subscription_item"),
                organization_id=org.id,
                subscription_id=subscription.id,
                price_id=price_id,
                quantity=1,
            )
        )

    await org.run(action)


async def test_a_product_whose_prices_are_unused_is_deleted_with_them(org: Org) -> None:
    widget = await product(org)
    prices = [await price(org, widget.id), await price(org, widget.id, lookupKey="gone")]
    deleted, deleted_prices = await org.run(lambda s: service.delete_product(s, widget.id))
    assert deleted == {"id": widget.id, "deleted": True}
    assert sorted(p["id"] for p in deleted_prices) == sorted(p.id for p in prices)
    assert await org.run(lambda s: repository.get_product(s, widget.id)) is None
    assert await org.run(lambda s: repository.get_price(s, prices[0].id)) is None
    assert isinstance(await org.fails(lambda s: service.delete_product(s, widget.id)), ResourceMissing)
    assert (await product(org)).id  # and the lookup key is free again
    await price(org, (await product(org)).id, lookupKey="gone")


@pytest.mark.parametrize("schedule_only", [False, True])
async def test_a_product_with_a_price_in_use_is_not_deleted(org: Org, schedule_only: bool) -> None:
    widget = await product(org)
    unused, used = await price(org, widget.id), await price(org, widget.id)
    await _subscribe(org, used.id, schedule_only=schedule_only)
    error = await org.fails(lambda s: service.delete_product(s, widget.id))
    assert (error.code, error.status) == ("product_in_use", 400)
    assert used.id in error.message and unused.id not in error.message
    assert await org.run(lambda s: repository.get_price(s, unused.id)) is not None
    archived = await org.run(lambda s: service.update_product(s, widget.id, {"active": False}))
    assert archived.active is False


# --- exchange rates ------------------------------------------------------------------------------------


async def test_exchange_rates_need_a_writer_and_are_history(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    org = org.operator()
    body = ExchangeRateCreate(
        base="EUR", quote="usd", rate="1.0842", source=f"test-{org.id}", asOf=datetime(2025, 1, 2, 16, tzinfo=UTC)
    )
    error = await org.fails(lambda s: fx_service.create_exchange_rate(s, body))
    assert (error.status, error.code) == (403, "permission_denied")
    monkeypatch.setenv(fx_service.FX_WRITERS_ENV, f"org_other, {org.id}")
    created = await org.run(lambda s: fx_service.create_exchange_rate(s, body))
    assert (created.base, created.quote, created.rate) == ("eur", "usd", Decimal("1.0842"))
    again = await org.run(lambda s: fx_service.create_exchange_rate(s, body))  # the same rate: a no-op
    assert again.id == created.id
    assert fx_service.exchange_rate_json(again)["rate"] == "1.0842"
    error = await org.fails(lambda s: fx_service.create_exchange_rate(s, body.model_copy(update={"rate": "1.09"})))
    assert (error.status, error.code, error.param) == (409, "exchange_rate_exists", "rate")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"base": "eux"}, "base"),
        ({"quote": "eur"}, "quote"),
        ({"rate": "0"}, "rate"),
        ({"rate": "1e3"}, "rate"),
        ({"rate": "1.0000000000001"}, "rate"),
        ({"source": "  "}, "source"),
    ],
)
def test_bad_exchange_rates(changes: dict[str, Any], param: str) -> None:
    body = ExchangeRateCreate.model_validate(
        {"base": "eur", "quote": "usd", "rate": "1.1", "source": "ecb", "asOf": "2025-01-02T00:00:00Z", **changes}
    )
    with pytest.raises(InvalidRequest) as caught:
        fx_service.validated_rate(body)
    assert caught.value.param == param


async def test_import_and_convert_for_reporting(session_factory: Any) -> None:
    source = f"ecb-{new_id('customer')}"
    csv = f"base,quote,rate,source,as_of\nEUR,USD,1.1,{source},2030-01-01\nEUR,JPY,160,{source},2030-01-01\nEUR,USD,1.2,{source},2030-02-01\n"
    async with session_factory() as session, session.begin():
        result = await fx_service.import_rates(session, fx.parse_rates_csv(csv))
    assert (result.inserted, result.unchanged, result.replaced) == (3, 0, 0)
    async with session_factory() as session, session.begin():
        assert (await fx_service.import_rates(session, fx.parse_rates_csv(csv))).unchanged == 3
    changed = csv.replace("160", "161")
    with pytest.raises(fx_service.ConflictingRates):
        async with session_factory() as session, session.begin():
            await fx_service.import_rates(session, fx.parse_rates_csv(changed))
    async with session_factory() as session, session.begin():
        assert (await fx_service.import_rates(session, fx.parse_rates_csv(changed), replace=True)).replaced == 1

    async with session_factory() as session:
        rows = (await session.scalars(select(ExchangeRate).where(ExchangeRate.source == source))).all()
        assert len(rows) == 3
        january = datetime(2030, 1, 15, tzinfo=UTC)
        # 100.00 USD -> EUR at 1.1 -> JPY at 161: 100 / 1.1 * 161 = 14636.36 -> 14636 yen
        rates = [r for r in await fx_service.rates_at(session, january) if r.source == source]
        assert fx.convert_for_reporting(10000, "usd", "jpy", rates, january) == 14636
        march = datetime(2030, 3, 1, tzinfo=UTC)
        rates = [r for r in await fx_service.rates_at(session, march) if r.source == source]
        assert fx.convert_for_reporting(10000, "eur", "usd", rates, march) == 12000


def test_the_cli_imports_a_rates_file_all_or_nothing(database_url: str, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    source = f"cli-{new_id('customer')}"
    path = tmp_path / "rates.csv"
    path.write_text(
        f"base,quote,rate,source,as_of\nEUR,USD,1.1,{source},2031-01-01\nEUR,JPY,160.25,{source},2031-01-01\n"
    )
    runner = CliRunner()
    first = runner.invoke(app, ["fx", "import", str(path)])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"inserted": 2, "unchanged": 0, "replaced": 0}
    assert json.loads(runner.invoke(app, ["fx", "import", str(path)]).stdout) == {
        "inserted": 0,
        "unchanged": 2,
        "replaced": 0,
    }

    path.write_text(path.read_text().replace("160.25", "161") + f"GBP,USD,1.27,{source},2031-01-01\n")
    refused = runner.invoke(app, ["fx", "import", str(path)])
    assert refused.exit_code == 1 and "--replace" in refused.stderr
    replaced = runner.invoke(app, ["fx", "import", str(path), "--replace"])
    assert json.loads(replaced.stdout) == {
        "inserted": 1,
        "unchanged": 1,
        "replaced": 1,
    }  # the refused run wrote nothing

    path.write_text("base,quote,rate\nEUR,USD,1.1\n")
    bad = runner.invoke(app, ["fx", "import", str(path)])
    assert bad.exit_code == 1 and "missing column(s) source, as_of" in bad.stderr
