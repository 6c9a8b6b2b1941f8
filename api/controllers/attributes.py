"""/v1/product-attributes: an organization's product attribute definitions ("dynamic
attributes"). Add, deprecate (PATCH deprecated: true) and remove (DELETE) them without
downtime: see billing/catalog/attributes.py for what each step does to products."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, delete, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Caller
from api.bus import CommandBus
from api.params import IdempotencyKey
from api.responses import list_response, run_command
from billing.catalog.attributes import check_definition
from billing.catalog.repository import get_attribute_definition, list_attribute_definitions
from billing.catalog.service import check_definition_update
from billing.db.pagination import PageRequest
from billing.errors import ResourceMissing
from contracts.catalog import (
    AttributeDefinitionCreate,
    AttributeDefinitionDeleteCommand,
    AttributeDefinitionUpdate,
    AttributeDefinitionUpdateCommand,
)
from contracts.resources import ProductAttributeDefinition


class AttributeDefinitionController(Controller):
    path = "/v1/product-attributes"
    tags = ["product attributes"]

    @post("/", summary="Define a product attribute", status_code=201)
    async def create(
        self, data: AttributeDefinitionCreate, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[ProductAttributeDefinition]:
        check_definition(data.type, data.enumValues, data.defaultValue)
        return await run_command(bus, caller, data, idempotency_key, created=True)

    @get("/{definition_id:str}", summary="Retrieve a product attribute definition")
    async def retrieve(self, definition_id: str, db: AsyncSession) -> ProductAttributeDefinition:
        definition = await get_attribute_definition(db, definition_id)
        if definition is None:
            raise ResourceMissing("product attribute", definition_id)
        return ProductAttributeDefinition.model_validate(definition)

    @patch("/{definition_id:str}", summary="Update a definition: label, required, enumValues, defaultValue, deprecated")
    async def update(
        self,
        definition_id: str,
        data: AttributeDefinitionUpdate,
        db: AsyncSession,
        caller: Caller,
        bus: CommandBus,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ProductAttributeDefinition]:
        definition = await get_attribute_definition(db, definition_id)
        if definition is None:
            raise ResourceMissing("product attribute", definition_id)
        check_definition_update(definition, data)
        command = AttributeDefinitionUpdateCommand(
            id=definition_id, changes=data.model_dump(mode="json", exclude_unset=True)
        )
        return await run_command(bus, caller, command, idempotency_key)

    @delete("/{definition_id:str}", summary="Remove a definition (products keep their values)", status_code=200)
    async def remove(
        self, definition_id: str, caller: Caller, bus: CommandBus, idempotency_key: IdempotencyKey = None
    ) -> Response[dict[str, Any]]:
        return await run_command(bus, caller, AttributeDefinitionDeleteCommand(id=definition_id), idempotency_key)

    @get("/", summary="List the product attribute definitions, newest first")
    async def index(
        self,
        db: AsyncSession,
        page_request: PageRequest,
        deprecated: Annotated[bool | None, Parameter(query="deprecated", required=False)] = None,
    ) -> dict[str, Any]:
        page = await list_attribute_definitions(db, page_request, deprecated=deprecated)
        return list_response(page, ProductAttributeDefinition, self.path)
