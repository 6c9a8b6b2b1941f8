"""Customer commands: parse, call billing.customers.service, report what happened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.customers import service
from consumers.registry import Applied, CommandRouter
from contracts.customers import CustomerCreate, CustomerDeleteCommand, CustomerUpdateCommand
from contracts.resources import Customer

router = CommandRouter()


def _applied(customer: object, event_type: str) -> Applied:
    resource = Customer.model_validate(customer).model_dump(mode="json")
    return Applied("customer", resource, [(event_type, resource)])


@router.command("customer.create", CustomerCreate)
async def create(session: AsyncSession, payload: CustomerCreate) -> Applied:
    return _applied(await service.create_customer(session, payload), "customer.created")


@router.command("customer.update", CustomerUpdateCommand)
async def update(session: AsyncSession, payload: CustomerUpdateCommand) -> Applied:
    return _applied(await service.update_customer(session, payload.id, payload.changes), "customer.updated")


@router.command("customer.delete", CustomerDeleteCommand)
async def delete(session: AsyncSession, payload: CustomerDeleteCommand) -> Applied:
    return _applied(await service.delete_customer(session, payload.id), "customer.deleted")
