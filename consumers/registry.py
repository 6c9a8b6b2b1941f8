"""Command handlers by command class. Each domain module (consumers/customers.py, ...)
registers its handlers on its own router with `@router.handles(CustomerCreate)`; the
pipeline dispatches on the envelope's `type`, which is the class's `command_type`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.commands import COMMANDS, Command
from contracts.events import DomainEvent

ResourceT = TypeVar("ResourceT")


@dataclass(frozen=True)
class Applied(Generic[ResourceT]):
    """What a handler did: the resource it returns to the caller (as JSON; `ResourceT` is
    its model, the one its command declares) and the domain events."""

    resource_type: str
    resource: dict[str, Any]
    events: list[DomainEvent] = field(default_factory=list)

    @property
    def resource_id(self) -> str | None:
        resource_id = self.resource.get("id")
        return resource_id if isinstance(resource_id, str) else None


# the command argument is the handler's own annotation: a router takes the class it names
Handler = Callable[[AsyncSession, Any], Awaitable[Applied[ResourceT]]]


@dataclass(frozen=True)
class Route:
    command: type[Command[Any]]
    handler: Handler[Any]


class CommandRouter:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}

    def handles(self, command: type[Command[ResourceT]]) -> Callable[[Handler[ResourceT]], Handler[ResourceT]]:
        """Registers the decorated handler for `command`; the handler must answer with the
        resource the command declares (mypy checks `Applied[ResourceT]`)."""

        def register(handler: Handler[ResourceT]) -> Handler[ResourceT]:
            if command.command_type in self.routes:
                raise ValueError(f"command {command.command_type} registered twice")
            self.routes[command.command_type] = Route(command, handler)
            return handler

        return register


def merge_routes(*routers: CommandRouter) -> dict[str, Route]:
    """Every router's routes; each command class has exactly one handler."""
    routes: dict[str, Route] = {}
    for router in routers:
        for command_type, route in router.routes.items():
            if command_type in routes:
                raise ValueError(f"command {command_type} registered by two routers")
            routes[command_type] = route
    unhandled = sorted(set(COMMANDS) - set(routes))
    if unhandled:
        raise ValueError(f"commands without a handler: {', '.join(unhandled)}")
    return routes
