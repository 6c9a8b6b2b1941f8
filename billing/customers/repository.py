"""Tenant-scoped customer reads for the API (the tenant session adds the filter)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import CreatedRange, Page, PageRequest, paginate
from billing.db.search import Clause, SearchQuery
from billing.db.sessions import get_one, tenant_of
from billing.models import Customer

SEARCHABLE_FIELDS = {"email", "name", "phone", "metadata"}


async def get_customer(session: AsyncSession, customer_id: str, *, for_update: bool = False) -> Customer | None:
    return await get_one(session, Customer, Customer.id, customer_id, for_update=for_update)


async def list_customers(
    session: AsyncSession, page: PageRequest, *, email: str | None = None, created: CreatedRange = CreatedRange()
) -> Page[Customer]:
    tenant_of(session)
    statement = select(Customer).where(Customer.deleted.is_(False))
    if email is not None:
        statement = statement.where(Customer.email == email)
    statement = created.apply(statement, Customer.created_at)
    return await paginate(session, statement, Customer, page, "customer")


def _clause_condition(clause: Clause) -> ColumnElement[bool]:
    column: ColumnElement[str] = (
        Customer.metadata_[clause.key].astext if clause.field == "metadata" else getattr(Customer, clause.field)
    )
    if clause.op == ":":
        if clause.field == "email":
            return func.lower(column) == clause.value.lower()
        return column == clause.value
    escaped = clause.value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


async def search_customers(session: AsyncSession, query: SearchQuery, page: PageRequest) -> Page[Customer]:
    tenant_of(session)
    conditions = [_clause_condition(clause) for clause in query.clauses]
    combined = and_(*conditions) if query.connector == "AND" else or_(*conditions)
    statement = select(Customer).where(Customer.deleted.is_(False), combined)
    return await paginate(session, statement, Customer, page, "customer")
