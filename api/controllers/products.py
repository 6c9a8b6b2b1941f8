"""/v1/products: products with attributes validated against the organization's
definitions; list filters `active`, `ids`, `created[...]` and `attributes[key]=value`
(JSONB containment on a GIN index); search by name, description, active and metadata."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.bus import CommandBus
from api.params import IdempotencyKey, Limit, SearchPage, SearchQuery
from api.responses import list_response, run_command, search_response
from billing.catalog.attributes import attributes_for_new_product
from billing.catalog.repository import (
    PRODUCT_SEARCH_FIELDS,
    attribute_definitions,
    get_product,
    list_products,
    search_products,
)
from billing.catalog.service import product_changes
from billing.db.pagination import CreatedRange, PageRequest
from billing.db.search import parse_search_query
from billing.errors import InvalidRequest, ResourceMissing
from contracts.catalog import ProductCreate, ProductDeleteCommand, ProductUpdate, ProductUpdateCommand
from contracts.resources import Product

_ATTRIBUTE_FILTER = re.compile(r"^attributes\[(?P<key>[^\[\]]{1,64})\]$")
MAX_ATTRIBUTE_FILTERS = 10


def attribute_filters(request: Request[Any, Any, Any]) -> dict[str, str]:
    """`attributes[color]=red` query parameters as {"color": "red"}."""
    filters: dict[str, str] = {}
    for name, values in request.query_params.dict().items():
        if not name.startswith("attributes"):
            continue
        match = _ATTRIBUTE_FILTER.match(name)
        if match is None:
            raise InvalidRequest(
                f"Invalid {name}: filter by attribute as attributes[key]=value.", code="parameter_invalid", param=name
            )
        if len(values) > 1:
            raise InvalidRequest(f"Invalid {name}: give one value.", code="parameter_invalid", param=name)
        filters[match["key"]] = values[0]
    if len(filters) > MAX_ATTRIBUTE_FILTERS:
        raise InvalidRequest(
            f"At most {MAX_ATTRIBUTE_FILTERS} attribute filters.", code="parameter_invalid", param="attributes"
        )
    return filters


class ProductController(Controller):
    path = "/v1/products"
    tags = ["products"]

    @post("/", summary="Create a product", status_code=201)
    async def create(
        self,
        data: ProductCreate,
        db: AsyncSession,
        caller: Caller,
        bus: CommandBus,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Product]:
        attributes_for_new_product(data.attributes, await attribute_definitions(db))  # answered at once if bad
        return await run_command(bus, caller, data, idempotency_key, created=True)

    @get("/{product_id:str}", summary="Retrieve a product")
    async def retrieve(self, product_id: str, db: AsyncSession) -> Product:
        product = await get_product(db, product_id)
        if product is None:
            raise ResourceMissing("product", product_id)
        return Product.model_validate(product)

    @patch(
        "/{product_id:str}", summary="Update a product (absent fields unchanged, null clears; active=false archives)"
    )
    async def update(
        self,
        product_id: str,
        data: ProductUpdate,
        db: AsyncSession,
        caller: Caller,
        bus: CommandBus,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Product]:
        product = await get_product(db, product_id)
        if product is None:
            raise ResourceMissing("product", product_id)
        await product_changes(db, product, data)  # answered at once if bad
        command = ProductUpdateCommand(id=product_id, changes=data.model_dump(mode="json", exclude_unset=True))
        return await run_command(bus, caller, command, idempotency_key)

    @delete("/{product_id:str}", summary="Delete a product and its prices, when no price is in use", status_code=200)
    async def remove(
        self, product_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[dict[str, Any]]:
        return await run_command(bus, caller, ProductDeleteCommand(id=product_id), idempotency_key)

    @get(
        "/",
        summary="List products, newest first",
        description="Filter by attribute with `attributes[key]=value` (several are ANDed); `ids` may repeat.",
    )
    async def index(
        self,
        request: Request[Any, Any, Any],
        db: AsyncSession,
        page_request: PageRequest,
        created: CreatedRange,
        active: Annotated[bool | None, Parameter(query="active", required=False)] = None,
        ids: Annotated[list[str] | None, Parameter(query="ids", required=False, max_items=100)] = None,
    ) -> dict[str, Any]:
        page = await list_products(
            db,
            page_request,
            active=active,
            ids=ids,
            created=created,
            attributes=attribute_filters(request),
        )
        return list_response(page, Product, self.path)

    @get("/search", summary="Search products: name~'shirt' AND active:'true' AND metadata['k']:'v'")
    async def search(
        self,
        db: AsyncSession,
        search_query: SearchQuery,
        limit: Limit = 10,
        page: SearchPage = None,
    ) -> dict[str, Any]:
        parsed = parse_search_query(search_query, PRODUCT_SEARCH_FIELDS)
        result = await search_products(db, parsed, PageRequest.search(limit, page))
        return search_response(result, Product, f"{self.path}/search")
