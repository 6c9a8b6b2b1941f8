"""A command is one class: its type name, its payload fields and the resource it returns.

    class CustomerCreate(Command[Customer]):
        command_type: ClassVar[str] = <the type name, e.g. customer dot create>
        email: str | None = None

The controller constructs it, the bus publishes `command_type` with `payload()` and
answers with a `Response[Customer]`, the consumer's registry dispatches on the class and
its handler must return `Applied[Customer]`: mypy follows a write from the controller to
its handler and back, and no command type is spelled twice. Defining a subclass registers
it; `COMMANDS` is every command other systems may publish (contracts/export.py documents
them, a test checks each has exactly one handler).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import ConfigDict

from contracts.common import RequestModel

ResourceT = TypeVar("ResourceT")

COMMANDS: dict[str, type[Command[Any]]] = {}


class Command(RequestModel, Generic[ResourceT]):
    """A request to change state; `ResourceT` is what its handler returns to the caller."""

    model_config = ConfigDict(extra="forbid")

    command_type: ClassVar[str]
    # the handler runs as the tenant role under row-level security; False only for the
    # operator's writes of shared data, which no tenant role may write
    row_security: ClassVar[bool] = True

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        command_type = cls.__dict__.get("command_type")
        # an abstract step (the parametrized Command[Customer]) is no command, and one
        # defined outside contracts/ (a test's) is not part of what others may publish
        if command_type is None or not cls.__module__.startswith("contracts."):
            return
        if command_type in COMMANDS:
            raise TypeError(f"command {command_type} is defined twice: {COMMANDS[command_type]} and {cls}")
        COMMANDS[command_type] = cls

    def payload(self) -> dict[str, Any]:
        """The JSON the envelope carries: only the fields that were set (a PATCH's changes
        keep absent apart from null)."""
        return self.model_dump(mode="json", exclude_unset=True)


def all_commands() -> dict[str, type[Command[Any]]]:
    """Every command class, by type: the modules of contracts/ define them on import."""
    import contracts

    for module in pkgutil.iter_modules(contracts.__path__):
        importlib.import_module(f"contracts.{module.name}")
    return dict(COMMANDS)
