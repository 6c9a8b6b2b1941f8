-- Views for analysts (Grafana, Superset, clickhouse-client): exact, deduplicated, one row
-- per natural grain. Always filter on organization_id (first in every sorting key).
CREATE VIEW IF NOT EXISTS analyst_usage_events AS
SELECT organization_id, identifier, event_name, customer_id, value, timestamp, properties, ingested_at
FROM usage_events FINAL;

CREATE VIEW IF NOT EXISTS analyst_usage_daily AS
SELECT organization_id, event_name, day, customer_id,
       sum(event_count) AS events, sum(value_sum) AS value_sum, max(value_max) AS value_max
FROM usage_daily
GROUP BY organization_id, event_name, day, customer_id;

CREATE VIEW IF NOT EXISTS analyst_interactions_daily AS
SELECT organization_id, toDate(occurred_at) AS day, type, uniqExact(event_id) AS interactions
FROM interactions
GROUP BY organization_id, day, type;
