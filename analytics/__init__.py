"""Analytics: usage and interaction events in ClickHouse (a server, or chDB in-process).

Public API (what the API, the CLI and `billing dev` use):

- `analytics.store.get_store(url=None) -> AnalyticsStore`: the process-wide store for
  Settings.clickhouse_url (chDB: one path per process, one process per directory).
- `analytics.migrations.migrate(store) -> list[int]`: apply the DDL (idempotent).
- `analytics.queries.usage(store, organization_id, event_name, aggregation="sum", *, start,
  end, value_key=None, customer_id=None, group_by=None, property_filters=None)
  -> list[UsageRow]`; `summary(store, organization_id, start, end) -> UsageSummary`;
  async twins `ausage(...)`, `asummary(...)`; `usage_for_meter(store, org, meter, ...)`;
  `meter_totals(store, org, meters, start=, end=)`: each meter's figure, as the summary shows it.
- `analytics.consumer.run_analytics_consumer(settings=None, stop_event=None, *, store=None,
  config=None, stats=None, ready=None) -> ConsumerStats`: the consumer, in the caller's
  event loop; `python -m analytics.consumer` runs it as its own process.
- `analytics.replay.areplay(settings, since, ...)` / `replay(...)`: re-read the topics.
- `cli.analytics.analytics_app`: the Typer sub-app (`billing analytics ...`).

The contracts (usage event, batch, dead letter, API output models) are in
contracts/usage.py.
"""
