"""The meters the analytics consumer judges usage events against (billing/meters/rules.py).

Meters live in Postgres, which the analytics consumer does not read. It learns them from
`meter.created` on billing.events (the command consumer publishes the meter resource there
once the meter is committed), which it stores in ClickHouse's `interactions` table like
every domain event: the book is loaded from that table when the consumer starts and after
a rebalance, and the `meter.created` events of each batch are added before the batch's
usage is judged. A meter's definition (event name, aggregation, valueKey, filters) never
changes after creation (contracts/meters.py), so a meter once known stays right.

The rule in time: an event is judged against the meter of its organization and event name
known when the event is stored. Through the API that meter always exists (the API refuses
an event name without a meter, and an event the meter cannot measure); a publisher writing
straight to Kafka may send events before the meter exists: those are stored as they are,
and a meter created later does not count the ones that lack its property (the summary's
eventCount of the event name, beside the meter's, shows how many). When a batch holds an
event name with no known meter, the book re-reads the table (at most every
`RELOAD_INTERVAL`), for meters whose `meter.created` another consumer process stored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from analytics.store import AnalyticsStore
from billing.meters.rules import MeterRule, ValueRefusal, value_refusal
from contracts.events import METER_CREATED

log = logging.getLogger(__name__)

RELOAD_INTERVAL = 10.0  # seconds


class MeterBook:
    """{(organization_id, event_name): MeterRule}, for one store."""

    def __init__(self) -> None:
        self._rules: dict[tuple[str, str], MeterRule] = {}
        self._loaded_at: float | None = None
        self._reload_requested = False
        self._lock = threading.Lock()

    def learn(self, organization_id: str, data: str) -> None:
        """Add the meter of one `meter.created` event (its data: the meter resource as JSON)."""
        try:
            meter = json.loads(data)
        except ValueError:
            meter = None
        if (
            not isinstance(meter, dict)
            or not isinstance(meter.get("eventName"), str)
            or not isinstance(meter.get("valueKey"), (str, type(None)))
            or not isinstance(meter.get("filters") or {}, dict)
        ):
            log.warning("meter.created of %s carries no readable meter; ignored", organization_id)
            return
        rule = MeterRule.of(meter)
        with self._lock:
            self._rules[(organization_id, rule.event_name)] = rule

    def load(self, store: AnalyticsStore) -> None:
        rows = store.query(
            "SELECT organization_id, data FROM interactions WHERE type = {t:String}", {"t": METER_CREATED.name}
        )
        for organization_id, data in rows:
            self.learn(organization_id, data)
        self._loaded_at = time.monotonic()
        self._reload_requested = False

    def request_reload(self) -> None:
        """Re-read the table before the next batch is judged (after a rebalance)."""
        self._reload_requested = True

    def learn_batch(
        self, store: AnalyticsStore, interactions: Iterable[Sequence[Any]], names: Iterable[tuple[str, str]]
    ) -> None:
        """Before a batch is judged: its own `meter.created` events (interaction rows), then
        the table when the book was never loaded, a reload was asked for, or one of `names`
        has no known meter and the last load is older than RELOAD_INTERVAL."""
        for row in interactions:
            if row[3] == METER_CREATED.name:
                self.learn(str(row[0]), str(row[9]))
        stale = self._loaded_at is None or time.monotonic() - self._loaded_at >= RELOAD_INTERVAL
        if self._loaded_at is None or self._reload_requested or (stale and any(n not in self._rules for n in names)):
            self.load(store)

    def refusal(self, organization_id: str, event_name: str, properties: dict[str, Any]) -> ValueRefusal | None:
        rule = self._rules.get((organization_id, event_name))
        return None if rule is None else value_refusal(rule, event_name, properties)


_books: dict[str, tuple[AnalyticsStore, MeterBook]] = {}
_books_lock = threading.Lock()


def get_meter_book(store: AnalyticsStore) -> MeterBook:
    """The process-wide book for this store (the live consumer and a replay share it); a
    store reopened at the same URL gets a new one, loaded from its own table."""
    with _books_lock:
        found = _books.get(store.url)
        if found is None or found[0] is not store:
            found = _books[store.url] = (store, MeterBook())
        return found[1]
