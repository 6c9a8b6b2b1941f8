"""Tenant-scoped customer reads for the API (the tenant session adds the filter)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.pagination import CreatedRange, Page, PageRequest, paginate
from billing.db.search import Clause, SearchQuery, combined, text_condition
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
    if clause.op == ":" and clause.field == "email":
        return func.lower(column) == clause.value.lower()
    return text_condition(column, clause)


async def search_customers(session: AsyncSession, query: SearchQuery, page: PageRequest) -> Page[Customer]:
    tenant_of(session)
    conditions = [_clause_condition(clause) for clause in query.clauses]
    statement = select(Customer).where(Customer.deleted.is_(False), combined(query, conditions))
    return await paginate(session, statement, Customer, page, "customer")
