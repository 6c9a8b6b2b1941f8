"""Exchange rates in Postgres: writing them (the API's command, the CLI's import) and
reading them back for reporting conversions. The pure rules are billing/fx/rates.py.

Exchange rates are global reference data, not an organization's: every organization
reads them, and a rate written by one would change every organization's reports. So:
- through the API, only the organizations listed in BILLING_FX_WRITER_ORGANIZATIONS
  (comma-separated organization ids; empty by default) may write them: the platform
  operator's own organization, typically. Any other key gets a 403 and nothing is written.
  The check runs in the API and again in the consumer, which is the authority (other
  systems may publish commands straight to Kafka).
- the operator loads files with `billing fx import rates.csv` (direct database access).

A rate is identified by (base, quote, source, asOf). Writing the same rate again is a
no-op that answers the stored row; a different rate for the same key is refused (409):
rates are history, so a correction is a new asOf (or `billing fx import --replace`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import Page, PageRequest, paginate
from billing.db.sessions import tenant_of
from billing.errors import Conflict, InvalidRequest
from billing.fx import rates as fx
from billing.models import ExchangeRate
from billing.money.amounts import decimal_places, parse_decimal
from billing.money.currencies import currency_param
from contracts.catalog import ExchangeRateCreate
from contracts.resources import ExchangeRate as ExchangeRateResource
from contracts.settings import get_settings

FX_WRITERS_ENV: Final = "BILLING_FX_WRITER_ORGANIZATIONS"
RATE_DECIMAL_PLACES: Final = 12  # numeric(30,12)
RATE_MAX: Final = Decimal(10) ** 18


def exchange_rate_json(row: ExchangeRate) -> dict[str, Any]:
    """The ExchangeRate resource as JSON."""
    return ExchangeRateResource.model_validate(row).model_dump(mode="json")


def require_fx_writer(organization_id: str) -> None:
    if organization_id not in get_settings().fx_writer_organizations:
        raise InvalidRequest(
            "Exchange rates are global reference data: only the platform operator's organizations "
            f"(listed in {FX_WRITERS_ENV}) may write them. Read them with GET /v1/exchange-rates.",
            code="permission_denied",
            status=403,
        )


def validated_rate(data: ExchangeRateCreate) -> fx.ExchangeRate:
    """The rate of a request, checked, with asOf in UTC cut to the column's milliseconds."""
    base, quote = currency_param(data.base, "base"), currency_param(data.quote, "quote")
    if base == quote:
        raise InvalidRequest("Invalid quote: it must differ from base.", code="parameter_invalid", param="quote")
    try:
        rate = parse_decimal(data.rate, "rate")
    except ValueError:
        raise InvalidRequest(
            f"Invalid rate: must be a decimal string like '1.0842', got {data.rate!r}.",
            code="parameter_invalid",
            param="rate",
        ) from None
    if rate <= 0 or rate >= RATE_MAX:
        raise InvalidRequest(
            f"Invalid rate: must be positive and below 10^18, got {data.rate}.", code="parameter_invalid", param="rate"
        )
    if decimal_places(rate) > RATE_DECIMAL_PLACES:
        raise InvalidRequest(
            f"Invalid rate: at most {RATE_DECIMAL_PLACES} decimal places, got {data.rate}.",
            code="parameter_invalid",
            param="rate",
        )
    if not data.source.strip():
        raise InvalidRequest("Invalid source: it cannot be blank.", code="parameter_invalid", param="source")
    return fx.ExchangeRate(base, quote, rate, data.source, _stored_instant(data.asOf))


def _stored_instant(moment: datetime) -> datetime:
    """As the column keeps it, so that create and read answer alike: UTC, milliseconds."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


async def _stored(session: AsyncSession, rate: fx.ExchangeRate) -> ExchangeRate | None:
    statement = select(ExchangeRate).where(
        ExchangeRate.base == rate.base,
        ExchangeRate.quote == rate.quote,
        ExchangeRate.source == rate.source,
        ExchangeRate.as_of == rate.as_of,
    )
    return (await session.scalars(statement)).one_or_none()


async def create_exchange_rate(session: AsyncSession, data: ExchangeRateCreate) -> ExchangeRate:
    """The command's write, for a permitted organization (the tenant session's)."""
    require_fx_writer(tenant_of(session))
    rate = validated_rate(data)
    existing = await _stored(session, rate)
    if existing is not None:
        if existing.rate == rate.rate:
            return existing
        raise Conflict(
            f"A {rate.base}->{rate.quote} rate from {rate.source!r} at {rate.as_of.isoformat()} already exists "
            f"({existing.rate.normalize():f}); rates are history: write a correction with a new asOf.",
            code="exchange_rate_exists",
            param="rate",
        )
    row = ExchangeRate(base=rate.base, quote=rate.quote, rate=rate.rate, source=rate.source, as_of=rate.as_of)
    session.add(row)
    await session.flush()
    return row


@dataclass(frozen=True)
class ImportResult:
    inserted: int
    unchanged: int
    replaced: int


class ConflictingRates(ValueError):
    def __init__(self, conflicts: list[tuple[fx.ExchangeRate, Decimal]]) -> None:
        self.conflicts = conflicts
        super().__init__(
            "\n".join(
                f"{rate.base}->{rate.quote} {rate.source} {rate.as_of.isoformat()}: stored {stored:f}, file {rate.rate:f}"
                for rate, stored in conflicts
            )
        )


async def import_rates(session: AsyncSession, rates: list[fx.ExchangeRate], *, replace: bool = False) -> ImportResult:
    """Stores parsed rates (billing.fx.rates.parse_rates_csv) in the caller's transaction. A rate
    already stored with the same value is skipped; with a different value it is a
    ConflictingRates error (nothing should then be committed) unless `replace`."""
    inserted = unchanged = replaced = 0
    conflicts: list[tuple[fx.ExchangeRate, Decimal]] = []
    for rate in rates:
        rate = fx.ExchangeRate(rate.base, rate.quote, rate.rate, rate.source, _stored_instant(rate.as_of))
        if decimal_places(rate.rate) > RATE_DECIMAL_PLACES or rate.rate >= RATE_MAX:
            raise ValueError(f"{rate.base}->{rate.quote} {rate.source}: rate {rate.rate} does not fit numeric(30,12)")
        existing = await _stored(session, rate)
        if existing is None:
            session.add(
                ExchangeRate(base=rate.base, quote=rate.quote, rate=rate.rate, source=rate.source, as_of=rate.as_of)
            )
            inserted += 1
        elif existing.rate == rate.rate:
            unchanged += 1
        elif replace:
            existing.rate = rate.rate
            replaced += 1
        else:
            conflicts.append((rate, existing.rate))
    if conflicts:
        raise ConflictingRates(conflicts)
    await session.flush()
    return ImportResult(inserted, unchanged, replaced)


async def list_exchange_rates(
    session: AsyncSession,
    page: PageRequest,
    *,
    base: str | None = None,
    quote: str | None = None,
    source: str | None = None,
) -> Page[ExchangeRate]:
    statement = select(ExchangeRate)
    for column, value in ((ExchangeRate.base, base), (ExchangeRate.quote, quote), (ExchangeRate.source, source)):
        if value is not None:
            statement = statement.where(column == value)
    return await paginate(session, statement, ExchangeRate, page, "exchange rate")


async def rates_at(session: AsyncSession, at: datetime) -> list[fx.ExchangeRate]:
    """The latest stored rate of each (base, quote, source) at or before `at`: everything
    billing.fx.rates.convert_for_reporting may choose from."""
    statement = (
        select(ExchangeRate)
        .where(ExchangeRate.as_of <= at)
        .ext(distinct_on(ExchangeRate.base, ExchangeRate.quote, ExchangeRate.source))
        .order_by(ExchangeRate.base, ExchangeRate.quote, ExchangeRate.source, ExchangeRate.as_of.desc())
    )
    rows = (await session.scalars(statement)).all()
    return [fx.ExchangeRate(row.base, row.quote, row.rate, row.source, row.as_of) for row in rows]


async def convert_for_reporting(
    session: AsyncSession, amount_minor: int, from_currency: str, to_currency: str, at: datetime
) -> int:
    """`amount_minor` of `from_currency` in `to_currency` minor units, with the stored rates
    as of `at`; for reports only (raises billing.fx.rates.NoExchangeRate)."""
    return fx.convert_for_reporting(amount_minor, from_currency, to_currency, await rates_at(session, at), at)
