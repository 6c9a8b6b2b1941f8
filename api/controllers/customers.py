"""/v1/customers"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, delete, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.bus import CommandBus
from api.params import IdempotencyKey, Limit, SearchPage, SearchQuery
from api.responses import list_response, run_command, search_response
from billing.customers.repository import SEARCHABLE_FIELDS, get_customer, list_customers, search_customers
from billing.db.pagination import CreatedRange, PageRequest
from billing.db.search import parse_search_query
from billing.errors import ResourceMissing
from contracts.customers import CustomerCreate, CustomerDeleteCommand, CustomerUpdate, CustomerUpdateCommand
from contracts.resources import Customer


class CustomerController(Controller):
    path = "/v1/customers"
    tags = ["customers"]

    @post("/", summary="Create a customer", status_code=201)
    async def create(
        self, data: CustomerCreate, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[Customer]:
        return await run_command(bus, caller, data, idempotency_key, created=True)

    @get("/{customer_id:str}", summary="Retrieve a customer (a deleted one reads with deleted: true)")
    async def retrieve(self, customer_id: str, db: AsyncSession) -> Customer:
        customer = await get_customer(db, customer_id)
        if customer is None:
            raise ResourceMissing("customer", customer_id)
        return Customer.model_validate(customer)

    @patch("/{customer_id:str}", summary="Update a customer (absent fields unchanged, null clears)")
    async def update(
        self,
        customer_id: str,
        data: CustomerUpdate,
        caller: Caller,
        bus: CommandBus,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Customer]:
        command = CustomerUpdateCommand(id=customer_id, changes=data.model_dump(mode="json", exclude_unset=True))
        return await run_command(bus, caller, command, idempotency_key)

    @delete("/{customer_id:str}", summary="Delete a customer", status_code=200)
    async def remove(
        self, customer_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[Customer]:
        return await run_command(bus, caller, CustomerDeleteCommand(id=customer_id), idempotency_key)

    @get("/", summary="List customers, newest first")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        created: CreatedRange,
        email: Annotated[str | None, Parameter(query="email", max_length=512, required=False)] = None,
    ) -> dict[str, Any]:
        page = await list_customers(
            db,
            page_request,
            email=email,
            created=created,
        )
        return list_response(page, Customer, self.path)

    @get("/search", summary="Search customers: email:'a@b.c' AND name~'jen' AND metadata['k']:'v'")
    async def search(
        self,
        db: AsyncSession,
        search_query: SearchQuery,
        limit: Limit = 10,
        page: SearchPage = None,
    ) -> dict[str, Any]:
        parsed = parse_search_query(search_query, SEARCHABLE_FIELDS)
        result = await search_customers(db, parsed, PageRequest.search(limit, page))
        return search_response(result, Customer, f"{self.path}/search")
