-- Pre-aggregated usage per organization, event name (meter), hour / day and customer, fed
-- by materialized views on usage_events. A materialized view sees every inserted block, so
-- it would count a duplicate that ReplacingMergeTree collapses later: exactness comes from
-- the dedupe step in front of usage_events (the consumer's key index + exact lookup, see
-- analytics/ingest.py), so each (organization_id, identifier) is inserted once. If an insert
-- fails halfway (the raw part landed, a view did not), the writer rebuilds the affected
-- aggregate rows from usage_events FINAL (analytics/ingest.py: rebuild_aggregates).
-- value_last keeps the max of (timestamp, identifier, value): the value of the latest event,
-- ties broken by identifier, mergeable across parts and with raw rows.
CREATE TABLE IF NOT EXISTS usage_hourly
(
    organization_id LowCardinality(String),
    event_name LowCardinality(String),
    hour DateTime('UTC'),
    customer_id String,
    event_count SimpleAggregateFunction(sum, UInt64),
    value_sum SimpleAggregateFunction(sum, Decimal(38, 12)),
    value_max SimpleAggregateFunction(max, Decimal(38, 12)),
    value_last SimpleAggregateFunction(max, Tuple(DateTime64(6, 'UTC'), String, Decimal(38, 12)))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (organization_id, event_name, hour, customer_id);

CREATE TABLE IF NOT EXISTS usage_daily
(
    organization_id LowCardinality(String),
    event_name LowCardinality(String),
    day Date,
    customer_id String,
    event_count SimpleAggregateFunction(sum, UInt64),
    value_sum SimpleAggregateFunction(sum, Decimal(38, 12)),
    value_max SimpleAggregateFunction(max, Decimal(38, 12)),
    value_last SimpleAggregateFunction(max, Tuple(DateTime64(6, 'UTC'), String, Decimal(38, 12)))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (organization_id, event_name, day, customer_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hourly_mv TO usage_hourly AS
SELECT
    organization_id,
    event_name,
    toStartOfHour(timestamp) AS hour,
    customer_id,
    count() AS event_count,
    sum(value) AS value_sum,
    max(value) AS value_max,
    max((timestamp, identifier, value)) AS value_last
FROM usage_events
GROUP BY organization_id, event_name, hour, customer_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_daily_mv TO usage_daily AS
SELECT
    organization_id,
    event_name,
    toDate(timestamp) AS day,
    customer_id,
    count() AS event_count,
    sum(value) AS value_sum,
    max(value) AS value_max,
    max((timestamp, identifier, value)) AS value_last
FROM usage_events
GROUP BY organization_id, event_name, day, customer_id;
