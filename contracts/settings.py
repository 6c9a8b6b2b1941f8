"""Process settings, read from the environment once.

Every process (API, consumers, analytics, the stack scripts) and docker-compose use these
same variable names, so the local stack and a deployed stack are configured alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value else default


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(_env("BILLING_DATA_DIR", str(PROJECT_ROOT / ".data"))))
    postgres_port: int = field(default_factory=lambda: int(_env("BILLING_POSTGRES_PORT", "54329")))
    database_url: str = field(
        default_factory=lambda: _env(
            "DATABASE_URL",
            f"postgresql+asyncpg://billing:billing@127.0.0.1:{_env('BILLING_POSTGRES_PORT', '54329')}/billing",
        )
    )
    kafka_bootstrap_servers: str = field(default_factory=lambda: _env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"))
    kafka_topic_prefix: str = field(default_factory=lambda: _env("KAFKA_TOPIC_PREFIX", ""))
    clickhouse_url: str = field(
        default_factory=lambda: _env(
            "CLICKHOUSE_URL", "chdb://" + str(Path(_env("BILLING_DATA_DIR", str(PROJECT_ROOT / ".data"))) / "clickhouse")
        )
    )
    stripe_api_base: str = field(default_factory=lambda: _env("STRIPE_API_BASE", "http://127.0.0.1:12111"))
    api_host: str = field(default_factory=lambda: _env("BILLING_API_HOST", "127.0.0.1"))
    api_port: int = field(default_factory=lambda: int(_env("BILLING_API_PORT", "8000")))
    command_timeout_seconds: float = field(default_factory=lambda: float(_env("BILLING_COMMAND_TIMEOUT", "5")))
    # how long an API process trusts a key it has checked (a revoked key may work that long
    # on another API process)
    auth_cache_seconds: float = field(default_factory=lambda: float(_env("BILLING_AUTH_CACHE_SECONDS", "2")))
    rate_limit_per_second: int = field(default_factory=lambda: int(_env("BILLING_RATE_LIMIT_PER_SECOND", "2000")))
    # organizations of the platform operator: the only ones that may write exchange rates
    fx_writer_organizations: frozenset[str] = field(
        default_factory=lambda: frozenset(
            part.strip() for part in _env("BILLING_FX_WRITER_ORGANIZATIONS", "").split(",") if part.strip()
        )
    )
    secret_encryption_keys: str = field(default_factory=lambda: _env("BILLING_ENCRYPTION_KEYS", ""))


def get_settings() -> Settings:
    return Settings()
