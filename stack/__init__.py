"""The local stack: Postgres, Apache Kafka (KRaft), ClickHouse (chDB), stripe-mock and an SMTP server.

Module API (the `billing stack` commands in stack/cli.py are thin wrappers):

    ensure_up(services=None)       start what is missing, create the Kafka topics  (= `billing stack up`)
    down(services=None)            stop what `up` started                           (= `billing stack down`)
    status(services=None)          list[ServiceStatus]                              (= `billing stack status`)
    check_reachable(*services)     None, or a message naming `billing stack up` / `make dev`
    require(*services)             raise StackUnavailable(that message)

Services are named "postgres", "kafka", "clickhouse", "stripe-mock", "smtp" (default: all).
Everything reads contracts.settings; see docs/stack.md.
"""

from ._proc import StackError
from .base import ServiceStatus
from .core import SERVICES, StackUnavailable, check_reachable, down, ensure_up, require, status

__all__ = [
    "SERVICES",
    "ServiceStatus",
    "StackError",
    "StackUnavailable",
    "check_reachable",
    "down",
    "ensure_up",
    "require",
    "status",
]
