"""Customer commands: parse, call billing.customers.service, report what happened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.customers import service
from consumers.invoices import retried_with_new_default
from consumers.registry import Applied, CommandRouter
from contracts.customers import CustomerCreate, CustomerDeleteCommand, CustomerUpdateCommand
from contracts.events import CUSTOMER_CREATED, CUSTOMER_DELETED, CUSTOMER_UPDATED, EventType
from contracts.resources import Customer

router = CommandRouter()


def _applied(customer: object, event: EventType[Customer]) -> Applied[Customer]:
    resource = Customer.model_validate(customer).model_dump(mode="json")
    return Applied("customer", resource, [event.of(resource)])


@router.handles(CustomerCreate)
async def create(session: AsyncSession, command: CustomerCreate) -> Applied[Customer]:
    return _applied(await service.create_customer(session, command), CUSTOMER_CREATED)


@router.handles(CustomerUpdateCommand)
async def update(session: AsyncSession, command: CustomerUpdateCommand) -> Applied[Customer]:
    customer, new_default = await service.update_customer(session, command.id, command.changes)
    applied = _applied(customer, CUSTOMER_UPDATED)
    if new_default:
        applied.events.extend(await retried_with_new_default(session, customer))
    return applied


@router.handles(CustomerDeleteCommand)
async def delete(session: AsyncSession, command: CustomerDeleteCommand) -> Applied[Customer]:
    return _applied(await service.delete_customer(session, command.id), CUSTOMER_DELETED)
