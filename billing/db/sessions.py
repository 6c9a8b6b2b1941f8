"""Engines and sessions.

Services receive a session and never commit; the handler that owns the unit of work
commits. A tenant session carries its organization and adds the tenant filter to every
ORM query of a tenant-owned model, so a query without it cannot be written by accident.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache, lru_cache
from typing import Any, TypeVar

from sqlalchemy import Connection, CursorResult, Result, event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.orm.interfaces import ORMOption

from billing.models import Base
from contracts.settings import get_settings

TENANT_KEY = "organization_id"


def create_engine(url: str | None = None, **options: object) -> AsyncEngine:
    options.setdefault("pool_size", 20)
    options.setdefault("max_overflow", 10)
    # no pre-ping: it costs a round trip per checkout; a connection found dead is
    # invalidated on use, and the consumers retry such transient failures
    options.setdefault("pool_recycle", 1800)
    # an error's message never lists the statement's values (a customer's data, a key's
    # hash): they would reach the logs and the dead-letter reasons with it
    options.setdefault("hide_parameters", True)
    return create_async_engine(url or get_settings().database_url, **options)


def matched_rows(result: Result[*tuple[Any, ...]]) -> int:
    """How many rows an UPDATE or DELETE matched. The ORM answers those with a CursorResult,
    though `AsyncSession.execute` is typed to return the plain Result."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"not the result of an UPDATE or DELETE: {type(result).__name__}")
    return result.rowcount


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@cache
def tenant_owned_models() -> tuple[type[Base], ...]:
    return tuple(mapper.class_ for mapper in Base.registry.mappers if "organization_id" in mapper.columns)


def tenant_of(session: AsyncSession) -> str:
    """The organization a tenant session is bound to; any other session is refused."""
    organization_id = session.info.get(TENANT_KEY)
    if not isinstance(organization_id, str) or not organization_id:
        raise RuntimeError("this needs a tenant session (billing.db.sessions.tenant_session)")
    return organization_id


TenantModel = TypeVar("TenantModel", bound=Base)


async def get_one(
    session: AsyncSession, model: type[TenantModel], column: Any, value: object, *, for_update: bool = False
) -> TenantModel | None:
    """The row of `model` whose `column` equals `value` (a unique column), within the tenant
    session's organization; locked for the rest of the transaction with `for_update`."""
    tenant_of(session)
    statement = select(model).where(column == value)
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


# the role and setting of the row-level security policies (billing/migrations: 7c3e5a1d9b20)
TENANT_ROLE = "billing_tenant"
ROW_SECURITY_KEY = "row_security"


@asynccontextmanager
async def tenant_session(
    factory: async_sessionmaker[AsyncSession], organization_id: str
) -> AsyncIterator[AsyncSession]:
    """A session that only ever sees one organization's rows: its ORM statements carry the
    tenant filter, and each of its transactions runs as `billing_tenant` with Postgres
    row-level security bound to the organization, so even SQL without the filter cannot
    reach another tenant."""
    if not organization_id:
        raise ValueError("a tenant session needs an organization id")
    async with factory() as session:
        session.info[TENANT_KEY] = organization_id
        session.info[ROW_SECURITY_KEY] = True
        yield session


# for the rest of the transaction (or until set again): the tenant role, bound to one organization
_BIND_ROW_SECURITY = text(
    "SELECT set_config('role', :role, true), set_config('billing.organization_id', :organization, true)"
)
# (organization, tenant role or not) that a session's open transaction is bound to
_ROW_SECURITY_BINDING = "row_security_binding"


@event.listens_for(Session, "after_begin")
def _enter_row_security(session: Session, transaction: object, connection: Connection) -> None:
    if session.info.get(ROW_SECURITY_KEY):
        connection.execute(_BIND_ROW_SECURITY, {"role": TENANT_ROLE, "organization": session.info[TENANT_KEY]})


async def bind_row_security(session: AsyncSession, organization_id: str, *, tenant_role: bool = True) -> None:
    """Runs the rest of the session's open transaction as `billing_tenant` bound to one
    organization, as a tenant session's are: the consumer applies a batch of several
    organizations' commands in one transaction and binds each command's organization
    before its handler runs. `tenant_role=False` is the connecting role again, for the
    operator's commands on shared data (exchange rates). A round trip only when the
    binding changes; pending ORM changes are flushed first, under the binding they were
    made in. The binding is transactional: a savepoint rolled back restores
    the one before it, so bind outside savepoints that may roll back."""
    binding = (organization_id, tenant_role)
    if session.info.get(_ROW_SECURITY_BINDING) == binding:
        return
    role = TENANT_ROLE if tenant_role else "none"  # `none`: the session's own role, as SET ROLE NONE
    await session.flush()  # what is pending was made under the binding in force
    await session.execute(_BIND_ROW_SECURITY, {"role": role, "organization": organization_id})
    session.info[_ROW_SECURITY_BINDING] = binding


@event.listens_for(Session, "do_orm_execute")
def _add_tenant_filter(state: ORMExecuteState) -> None:
    organization_id = state.session.info.get(TENANT_KEY)
    if organization_id is None or not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get("skip_tenant_filter"):
        return
    state.statement = state.statement.options(*_tenant_criteria(organization_id))


@lru_cache(maxsize=4096)
def _tenant_criteria(organization_id: str) -> tuple[ORMOption, ...]:
    """The tenant filter of one organization: a criteria option per tenant-owned model,
    built once per organization rather than for every statement (building them, and
    cloning the statement once per model, was a seventh of a renewal's CPU: py-spy over
    bench/renewals.py)."""
    return tuple(
        with_loader_criteria(model, lambda cls: cls.organization_id == organization_id, include_aliases=True)
        for model in tenant_owned_models()
    )
