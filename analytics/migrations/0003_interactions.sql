-- Interaction events: every domain event from billing.events (customer.created,
-- subscription.updated, ... and any unknown type, kept with its type), for the dashboard.
-- A redelivered event has the same (occurred_at, event_id): ReplacingMergeTree collapses it,
-- and counts use uniqExact(event_id), exact before any merge.
CREATE TABLE IF NOT EXISTS interactions
(
    organization_id LowCardinality(String),
    occurred_at DateTime64(6, 'UTC'),
    event_id String,
    type LowCardinality(String),
    object_type LowCardinality(String),
    object_id String,
    customer_id String,
    product_id String,
    subscription_id String,
    data String,
    ingested_at DateTime64(6, 'UTC') DEFAULT now64(6),
    kafka_topic LowCardinality(String) DEFAULT '',
    kafka_partition Int32 DEFAULT -1,
    kafka_offset Int64 DEFAULT -1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (organization_id, occurred_at, event_id);
