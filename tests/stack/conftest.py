"""Fixtures for the stack tests.

The shared stack (`billing stack up`, run by `make test` before pytest) must already be
up: `live_stack` fails with the command to run when it is not. Tests that start and stop
servers do it on private instances (their own data dir and free ports), never on the
shared stack.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import stack
from contracts.settings import Settings, get_settings
from stack._proc import port_in_use


@pytest.fixture(scope="session")
def live_stack() -> list[stack.ServiceStatus]:
    """The shared stack's status, after checking every service answers."""
    message = stack.check_reachable()
    if message:
        pytest.fail(message, pytrace=False)
    return stack.status()


def free_port_pair() -> int:
    """A port p with p and p+1 both free on 127.0.0.1 (services use port+1 as well).

    Drawn below Linux's ephemeral range (32768 up), so no outgoing connection of another
    process can take it as its source port while a test expects it quiet.
    """
    for _ in range(100):
        port = random.randrange(20000, 32000)
        if not port_in_use("127.0.0.1", port) and not port_in_use("127.0.0.1", port + 1):
            return port
    raise RuntimeError("no free pair of ports")


@pytest.fixture
def private_data_dir() -> Iterator[Path]:
    """A data dir of its own, under the shared data dir (which the postgres user can reach)."""
    path = get_settings().data_dir / "test-tmp" / uuid.uuid4().hex[:12]
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def settings_with(**changes: object) -> Settings:
    return dataclasses.replace(get_settings(), **changes)
