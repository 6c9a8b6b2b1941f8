"""Postgres plumbing shared by every domain: sessions and row-level security, cursor pagination, the search language, migrations."""
