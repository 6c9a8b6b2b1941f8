-- A narrow copy of usage_events sorted by time, for the sub-hour edges of a usage period
-- (an invoice period starts at any second): a primary-key range read instead of a scan of
-- the organization's rows (usage_events is sorted by identifier, for dedupe). Fed by a
-- materialized view, so it holds exactly what usage_events received, like the rollups, and
-- is repaired with them (analytics/ingest.py: rebuild_aggregates).
CREATE TABLE IF NOT EXISTS usage_events_by_time
(
    organization_id LowCardinality(String),
    event_name LowCardinality(String),
    timestamp DateTime64(6, 'UTC'),
    customer_id String,
    identifier String,
    value Decimal(38, 12)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (organization_id, event_name, timestamp);

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_events_by_time_mv TO usage_events_by_time AS
SELECT organization_id, event_name, timestamp, customer_id, identifier, value
FROM usage_events;

-- rows already in usage_events when this migration runs (idempotent: only if the copy is empty)
INSERT INTO usage_events_by_time
SELECT organization_id, event_name, timestamp, customer_id, identifier, value
FROM usage_events FINAL
WHERE (SELECT count() FROM usage_events_by_time) = 0;
