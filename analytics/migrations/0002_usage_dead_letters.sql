-- Messages the analytics consumer could not store, with the reason. Nothing is dropped.
-- Keyed by the Kafka coordinates, so a redelivered bad message collapses into one row
-- (count them with uniqExact((kafka_topic, kafka_partition, kafka_offset)) or FINAL).
-- organization_id is '' when the message did not say (malformed JSON, no organizationId).
CREATE TABLE IF NOT EXISTS usage_dead_letters
(
    organization_id LowCardinality(String),
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    kafka_key Nullable(String),
    message_timestamp Nullable(DateTime64(3, 'UTC')),
    payload String,
    kind LowCardinality(String),
    reason String,
    received_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (organization_id, kafka_topic, kafka_partition, kafka_offset);
