"""Process settings, read from the environment once.

Every process (API, consumers, analytics, the stack scripts) and docker-compose use these
same variable names, so the local stack and a deployed stack are configured alike.

Safe unless told otherwise: ``BILLING_ENV`` is ``production`` by default, where the
gateway is Stripe itself and the API and the command consumer refuse to start without
``BILLING_ENCRYPTION_KEYS`` (`unsafe_settings`). ``BILLING_ENV=local`` is the stack on
this machine (`make dev` and `make test` set it, and so does `billing dev`): stripe-mock is
the gateway and a development key file is written under the data directory. In every
environment the gateway URL is HTTPS unless it is a loopback address: a secret key never
crosses a network in clear.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent


LOCAL = "local"
PRODUCTION = "production"
STRIPE = "https://api.stripe.com"
STRIPE_MOCK = "http://127.0.0.1:12111"  # where `billing stack up` runs stripe-mock


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value else default


def _environment() -> str:
    return _env("BILLING_ENV", PRODUCTION)


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
            "CLICKHOUSE_URL",
            "chdb://" + str(Path(_env("BILLING_DATA_DIR", str(PROJECT_ROOT / ".data"))) / "clickhouse"),
        )
    )
    environment: str = field(default_factory=_environment)
    stripe_api_base: str = field(
        default_factory=lambda: _env("STRIPE_API_BASE", STRIPE_MOCK if _environment() == LOCAL else STRIPE)
    )
    api_host: str = field(default_factory=lambda: _env("BILLING_API_HOST", "127.0.0.1"))
    api_port: int = field(default_factory=lambda: int(_env("BILLING_API_PORT", "8000")))
    command_timeout_seconds: float = field(default_factory=lambda: float(_env("BILLING_COMMAND_TIMEOUT", "5")))
    # how long an API process trusts a key it has checked (a revoked key may work that long
    # on another API process)
    auth_cache_seconds: float = field(default_factory=lambda: float(_env("BILLING_AUTH_CACHE_SECONDS", "2")))
    # how often an API process reports when it last saw each key (ApiKey.lastUsedAt)
    key_use_report_seconds: float = field(default_factory=lambda: float(_env("BILLING_KEY_USE_REPORT_SECONDS", "60")))
    rate_limit_per_second: int = field(default_factory=lambda: int(_env("BILLING_RATE_LIMIT_PER_SECOND", "2000")))
    # organizations of the platform operator: the only ones that may write exchange rates
    fx_writer_organizations: frozenset[str] = field(
        default_factory=lambda: frozenset(
            part.strip() for part in _env("BILLING_FX_WRITER_ORGANIZATIONS", "").split(",") if part.strip()
        )
    )
    secret_encryption_keys: str = field(default_factory=lambda: _env("BILLING_ENCRYPTION_KEYS", ""))
    # how often the scheduler looks for due work (a pass takes every unit due, in batches)
    scheduler_interval_seconds: float = field(
        default_factory=lambda: float(_env("BILLING_SCHEDULER_INTERVAL_SECONDS", "1"))
    )
    # webhook retry and disable times are multiplied by this: a test compresses the three
    # days of retries and the five days before a failing endpoint is disabled into seconds
    webhook_time_scale: float = field(default_factory=lambda: float(_env("BILLING_WEBHOOK_TIME_SCALE", "1")))
    # how often a webhook sender looks for due deliveries besides being woken by new events
    webhook_poll_seconds: float = field(default_factory=lambda: float(_env("BILLING_WEBHOOK_POLL_SECONDS", "1")))
    # where customer emails are sent: smtp:// (STARTTLS when offered) or smtps:// (TLS), with
    # an optional user:password; `billing stack up` runs a local server on BILLING_SMTP_PORT
    # that stores each message under <data_dir>/mail
    # the sender of customer emails when the organization names none (its name is shown beside it)
    email_from: str = field(default_factory=lambda: _env("BILLING_EMAIL_FROM", "billing@localhost"))
    smtp_port: int = field(default_factory=lambda: int(_env("BILLING_SMTP_PORT", "10025")))
    smtp_url: str = field(
        default_factory=lambda: _env("SMTP_URL", f"smtp://127.0.0.1:{_env('BILLING_SMTP_PORT', '10025')}")
    )

    @property
    def local(self) -> bool:
        return self.environment == LOCAL


def get_settings() -> Settings:
    return Settings()


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unsafe_settings(settings: Settings) -> list[str]:
    """What makes these settings unsafe for a process that holds secrets (the API, the
    command consumer), one sentence each; empty when they are safe."""
    problems = []
    if settings.environment not in (LOCAL, PRODUCTION):
        problems.append(f"BILLING_ENV={settings.environment!r} is neither {PRODUCTION!r} (the default) nor {LOCAL!r}.")
    if not settings.local and not settings.secret_encryption_keys.strip():
        problems.append(
            "BILLING_ENCRYPTION_KEYS is empty: organizations' Stripe secrets could not be stored encrypted. Set it "
            "to one or more comma-separated Fernet keys (`python -c 'from billing.secrets.encryption import generate_key; "
            "print(generate_key())'`), or set BILLING_ENV=local for the stack on this machine."
        )
    if urlsplit(settings.stripe_api_base).scheme != "https" and not is_loopback(settings.stripe_api_base):
        problems.append(
            f"STRIPE_API_BASE={settings.stripe_api_base} is not HTTPS and not a loopback address: secret keys "
            "would cross the network in clear."
        )
    return problems


class UnsafeSettings(Exception):
    """Raised at start-up by a process that holds secrets, naming every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("refusing to start: " + " ".join(problems))
        self.problems = problems


def require_safe_settings(settings: Settings) -> None:
    problems = unsafe_settings(settings)
    if problems:
        raise UnsafeSettings(problems)
