-- Raw usage events, one row per accepted event: the source of truth.
-- Dedupe key (organization_id, identifier): ReplacingMergeTree collapses rows with the same
-- key within a month partition (a redelivered message has the same timestamp, so the same
-- partition). The analytics consumer already refuses to insert a known key (see
-- analytics/ingest.py), so duplicates normally never reach this table nor the aggregates fed
-- from it; the engine is the second wall. Values are exact: Decimal(38, 12), never Float.
-- key_hash is computed by ClickHouse on insert; the consumer computes the same hash in
-- Python (md5 of organization_id NUL identifier, first 8 bytes little-endian) for its key index.
CREATE TABLE IF NOT EXISTS usage_events
(
    organization_id LowCardinality(String),
    identifier String,
    event_name LowCardinality(String),
    customer_id String,
    value Decimal(38, 12),
    timestamp DateTime64(6, 'UTC'),
    properties Map(String, String),
    key_hash UInt64 MATERIALIZED reinterpretAsUInt64(substring(MD5(concat(organization_id, '\0', identifier)), 1, 8)),
    ingested_at DateTime64(6, 'UTC') DEFAULT now64(6),
    source LowCardinality(String) DEFAULT '',
    kafka_topic LowCardinality(String) DEFAULT '',
    kafka_partition Int32 DEFAULT -1,
    kafka_offset Int64 DEFAULT -1,
    INDEX idx_event_name event_name TYPE set(256) GRANULARITY 4,
    INDEX idx_timestamp timestamp TYPE minmax GRANULARITY 1,
    INDEX idx_ingested_at ingested_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (organization_id, identifier);
