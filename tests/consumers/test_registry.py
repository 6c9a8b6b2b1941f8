"""Each command is one class: the registry covers every command class, each has exactly
one handler, and no command type is spelt twice in the code."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import pytest

from consumers.app import ROUTES
from consumers.registry import Applied, CommandRouter, merge_routes
from contracts.commands import Command, all_commands
from contracts.customers import CustomerCreate
from contracts.events import EVENT_TYPES
from contracts.settings import PROJECT_ROOT

pytestmark = pytest.mark.unit

# Stripe's own event types, which the webhook maps to our commands: Stripe's names, which
# some of our event types repeat on purpose (payment_method.attached means the same thing)
STRIPE_NAMES_FILE = "billing/payments/webhooks.py"


def test_every_command_class_has_exactly_one_handler_for_that_class() -> None:
    commands = all_commands()
    assert set(ROUTES) == set(commands)
    assert all(ROUTES[command_type].command is cls for command_type, cls in commands.items())


def test_a_command_without_a_handler_stops_the_consumer_from_starting() -> None:
    router = CommandRouter()
    with pytest.raises(ValueError, match=rf"commands without a handler: .*{re.escape(CustomerCreate.command_type)}"):
        merge_routes(router)


def test_a_command_type_defined_twice_is_refused() -> None:
    with pytest.raises(TypeError, match=rf"{re.escape(CustomerCreate.command_type)} is defined twice"):

        class _Again(Command[Any]):
            __module__ = "contracts.again"
            command_type: ClassVar[str] = CustomerCreate.command_type


def test_a_handler_is_registered_once() -> None:
    class _Twice(Command[Any]):
        command_type: ClassVar[str] = "test.twice"

    router = CommandRouter()

    async def handle(session: Any, command: _Twice) -> Applied[Any]:
        raise AssertionError("never run")

    router.handles(_Twice)(handle)
    with pytest.raises(ValueError, match="registered twice"):
        router.handles(_Twice)(handle)


SOURCE_DIRS = (
    "analytics",
    "api",
    "bench",
    "billing",
    "cli",
    "consumers",
    "contracts",
    "prisma",
    "producers",
    "stack",
    "tests",
)


def _python_sources() -> dict[str, str]:
    return {
        str(path.relative_to(PROJECT_ROOT)): path.read_text()
        for folder in SOURCE_DIRS
        for path in (PROJECT_ROOT / folder).rglob("*.py")
        if "node_modules" not in path.parts
    }


def _spellings(name: str, sources: dict[str, str]) -> list[str]:
    literal = re.compile(rf"""["']{re.escape(name)}["']""")
    return [path for path, text in sources.items() for _ in literal.finditer(text)]


def test_each_command_type_is_spelt_once_in_the_whole_tree() -> None:
    sources = _python_sources()
    twice = {name: found for name in all_commands() if len(found := _spellings(name, sources)) != 1}
    assert twice == {}


def test_each_event_type_is_spelt_once_in_the_code() -> None:
    sources = {path: text for path, text in _python_sources().items() if not path.startswith(("tests/", "bench/"))}
    del sources[STRIPE_NAMES_FILE]
    twice = {name: found for name in EVENT_TYPES if len(found := _spellings(name, sources)) != 1}
    assert twice == {}
