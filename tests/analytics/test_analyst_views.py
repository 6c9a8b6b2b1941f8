"""The views documented for analysts give the same exact, deduplicated numbers as the
query functions the API uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from analytics.ingest import BatchProcessor
from tests.analytics.helpers import EVENTS_TOPIC, USAGE_TOPIC, event_payload, message

DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)


def test_analyst_views_are_exact_and_deduplicated(store) -> None:  # type: ignore[no-untyped-def]
    org = "org_views"
    events = [("v1", "0.5"), ("v2", "2.25"), ("v1", "0.5")]  # v1 sent twice
    msgs = [
        message(event_payload(org, ident, customer="cus_v", value=value, ts=DAY + timedelta(hours=1)))
        for ident, value in events
    ]
    msgs.append(
        message(
            {
                "eventId": "evt_v",
                "type": "customer.created",
                "organizationId": org,
                "occurredAt": (DAY + timedelta(hours=2)).isoformat(),
                "data": {"id": "cus_v"},
            },
            topic=EVENTS_TOPIC,
        )
    )
    BatchProcessor(store, [USAGE_TOPIC], [EVENTS_TOPIC]).process(msgs)

    raw = store.query(
        "SELECT identifier, value FROM analyst_usage_events WHERE organization_id = {org:String} ORDER BY identifier",
        {"org": org},
    )
    assert [(row[0], Decimal(str(row[1]))) for row in raw] == [("v1", Decimal("0.5")), ("v2", Decimal("2.25"))]
    daily = store.query(
        "SELECT day, events, value_sum, value_max FROM analyst_usage_daily WHERE organization_id = {org:String}",
        {"org": org},
    )
    assert [(row[1], Decimal(str(row[2])), Decimal(str(row[3]))) for row in daily] == [
        (2, Decimal("2.75"), Decimal("2.25"))
    ]
    interactions = store.query(
        "SELECT type, interactions FROM analyst_interactions_daily WHERE organization_id = {org:String}", {"org": org}
    )
    assert [tuple(row) for row in interactions] == [("customer.created", 1)]
