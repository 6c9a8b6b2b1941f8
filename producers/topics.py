"""Kafka topic names and partition counts: the one table every process uses.

`topic(name)` gives the name to publish to / subscribe on, with `KAFKA_TOPIC_PREFIX`
(Settings.kafka_topic_prefix) applied, so tests can run on their own prefixed topics.
`ensure_topics(bootstrap)` creates whatever is missing (idempotent); `billing stack up`
calls it for the unprefixed topics and tests call it for their prefixed ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, TypedDict

from contracts.settings import get_settings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int


BILLING_COMMANDS = "billing.commands"
BILLING_EVENTS = "billing.events"
BILLING_COMMANDS_DLQ = "billing.commands.dlq"
USAGE_EVENTS = "usage.events"
USAGE_EVENTS_DLQ = "usage.events.dlq"

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(BILLING_COMMANDS, 6),
    TopicSpec(BILLING_EVENTS, 6),
    TopicSpec(BILLING_COMMANDS_DLQ, 1),
    TopicSpec(USAGE_EVENTS, 6),
    TopicSpec(USAGE_EVENTS_DLQ, 1),
)

PARTITIONS: Mapping[str, int] = MappingProxyType({t.name: t.partitions for t in TOPICS})


# The shapes below are what aiokafka's admin client hands back (it has no type stubs):
# describe_topics returns the Metadata response's topics, create_topics the raw
# CreateTopicsResponse, whose rows name the topic `topic` in older versions, `name` in newer.
class _DescribedTopic(TypedDict):
    error_code: int
    topic: str
    partitions: list[object]


class _TopicAdmin(Protocol):
    async def describe_topics(self, topics: list[str]) -> list[_DescribedTopic]: ...


class _CreatedTopic(TypedDict, total=False):
    topic: str
    name: str
    error_code: int
    error_message: str | None


class _CreateTopicsBody(TypedDict, total=False):
    topic_errors: list[_CreatedTopic]
    topics: list[_CreatedTopic]


class _CreateTopicsResponse(Protocol):
    def to_object(self) -> _CreateTopicsBody: ...


def topic(name: str, prefix: str | None = None) -> str:
    """The full topic name for one of TOPICS, with the settings' (or the given) prefix."""
    if name not in PARTITIONS:
        raise KeyError(f"unknown topic {name!r}; known topics: {', '.join(PARTITIONS)}")
    if prefix is None:
        prefix = get_settings().kafka_topic_prefix
    return f"{prefix}{name}"


def topic_table(prefix: str | None = None) -> dict[str, int]:
    """{full topic name: partitions} for every topic, with the prefix applied."""
    return {topic(t.name, prefix): t.partitions for t in TOPICS}


async def ensure_topics(
    bootstrap_servers: str | None = None,
    *,
    prefix: str | None = None,
    topics: Iterable[TopicSpec] = TOPICS,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> dict[str, int]:
    """Create the missing topics (prefixed) and grow any with too few partitions.

    Idempotent and safe to race with another caller. Returns {full name: partition count}
    as the broker reports it afterwards. Raises on any other broker error.
    """
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    if bootstrap_servers is None:
        bootstrap_servers = get_settings().kafka_bootstrap_servers
    if prefix is None:
        prefix = get_settings().kafka_topic_prefix
    wanted = {f"{prefix}{t.name}": t.partitions for t in topics}

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout * 1000))
    async with asyncio.timeout(timeout):
        await admin.start()
        try:
            have = await _partition_counts(admin, list(wanted))
            missing = [n for n in wanted if n not in have]
            if missing:
                new = [
                    NewTopic(name=n, num_partitions=wanted[n], replication_factor=replication_factor) for n in missing
                ]
                resp = await admin.create_topics(new, timeout_ms=int(timeout * 1000))
                for name, code, message in _topic_errors(resp):
                    if code and for_code(code) is not TopicAlreadyExistsError:
                        raise for_code(code)(f"could not create topic {name}: {message}")
            grow = {n: NewPartitions(total_count=wanted[n]) for n, count in have.items() if count < wanted[n]}
            if grow:
                await admin.create_partitions(grow, timeout_ms=int(timeout * 1000))
            # Metadata can lag a freshly created topic by a moment: re-read until complete.
            while True:
                have = await _partition_counts(admin, list(wanted))
                if all(have.get(n, 0) >= p for n, p in wanted.items()):
                    return have
                await asyncio.sleep(0.1)
        finally:
            await admin.close()


async def _partition_counts(admin: _TopicAdmin, names: list[str]) -> dict[str, int]:
    """{name: partitions} for the names that exist (unknown ones are left out)."""
    described = await admin.describe_topics(names)
    counts: dict[str, int] = {}
    for t in described:
        if t.get("error_code", 0) == 0 and t.get("partitions"):
            counts[t["topic"]] = len(t["partitions"])
    return counts


def _topic_errors(resp: _CreateTopicsResponse) -> list[tuple[str, int, str | None]]:
    """(topic, error code, message) from any CreateTopicsResponse version."""
    obj = resp.to_object()
    rows = obj.get("topic_errors") or obj.get("topics") or []
    out = []
    for row in rows:
        name = row.get("topic") or row.get("name", "")
        out.append((name, row.get("error_code", 0), row.get("error_message")))
    return out
