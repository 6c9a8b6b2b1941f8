"""Command handlers by command type. Each domain module (consumers/customers.py, ...)
registers its handlers on its own router; the pipeline dispatches on `type`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class Applied:
    """What a handler did: the resource it returns to the caller and the domain events."""

    resource_type: str
    resource: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def resource_id(self) -> str | None:
        return self.resource.get("id")


Handler = Callable[[AsyncSession, Any], Awaitable[Applied]]


@dataclass(frozen=True)
class Route:
    payload_model: type[BaseModel]
    handler: Handler
    # the handler runs as the tenant role under row-level security; False only for the
    # operator's writes of shared data, which no tenant role may write
    row_security: bool = True


class CommandRouter:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}

    def command(
        self, command_type: str, payload_model: type[BaseModel], *, row_security: bool = True
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            if command_type in self.routes:
                raise ValueError(f"command {command_type} registered twice")
            self.routes[command_type] = Route(payload_model, handler, row_security)
            return handler

        return register


def merge_routes(*routers: CommandRouter) -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for router in routers:
        for command_type, route in router.routes.items():
            if command_type in routes:
                raise ValueError(f"command {command_type} registered by two routers")
            routes[command_type] = route
    return routes
