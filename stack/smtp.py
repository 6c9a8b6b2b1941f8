"""The local SMTP server on SMTP_URL: aiosmtpd (stack/smtp_server.py) run as its own
process, storing every message it receives as a .eml file under <data_dir>/mail.

Managed only when SMTP_URL is smtp:// on a loopback host at BILLING_SMTP_PORT (the default,
smtp://127.0.0.1:10025); any other SMTP_URL (Mailpit in docker-compose, a real relay) is
external and only checked to answer. Its log and pid file live under <data_dir>/smtp.
"""

from __future__ import annotations

import dataclasses
import smtplib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from contracts.settings import Settings

from ._proc import LOOPBACK_HOSTS
from .base import ServiceStatus, mask_url
from .managed import Endpoint, Health, ManagedService

NAME = "smtp"
PROBE_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    url: str
    scheme: str
    host: str
    port: int
    managed: bool


def target(settings: Settings) -> SmtpTarget:
    parts = urlsplit(settings.smtp_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (465 if parts.scheme == "smtps" else 25)
    managed = (
        parts.scheme == "smtp" and host in LOOPBACK_HOSTS and port == settings.smtp_port and parts.username is None
    )
    return SmtpTarget(settings.smtp_url, parts.scheme, host, port, managed)


def mail_dir(settings: Settings) -> Path:
    """Where the local server stores what it receives, one .eml file per message."""
    return settings.data_dir / "mail"


def probe(settings: Settings) -> str | None:
    """None when the server greets and answers NOOP, else the error."""
    t = target(settings)
    client: smtplib.SMTP
    try:
        if t.scheme == "smtps":
            client = smtplib.SMTP_SSL(t.host, t.port, timeout=PROBE_TIMEOUT)
        else:
            client = smtplib.SMTP(t.host, t.port, timeout=PROBE_TIMEOUT)
        try:
            code, reply = client.noop()
        finally:
            client.close()
    except (OSError, smtplib.SMTPException) as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None if code == 250 else f"NOOP answered {code} {reply.decode(errors='replace')}"


class SmtpServer(ManagedService):
    name = NAME
    setting = "SMTP_URL"
    port_setting = "BILLING_SMTP_PORT"
    server_needle = "stack.smtp_server"
    start_timeout = 20
    stop_grace = 10

    def endpoint(self, settings: Settings) -> Endpoint:
        t = target(settings)
        return Endpoint(t.managed, mask_url(t.url), t.port)

    def signature(self, settings: Settings) -> tuple[str, ...]:
        """Ours only when it stores into our mail folder: another checkout's server on the
        same port is reused, never adopted (its `down` would stop it)."""
        return (
            "stack.smtp_server",
            f"--port\x00{target(settings).port}\x00--dir\x00{mail_dir(settings).resolve()}",
        )

    def health(self, settings: Settings) -> Health:
        error = probe(settings)
        if error is not None or not target(settings).managed:
            return Health(error)
        count = sum(1 for _ in mail_dir(settings).glob("*.eml")) if mail_dir(settings).is_dir() else 0
        return Health(None, f"{count} message{'' if count == 1 else 's'} in {mail_dir(settings)}")

    def status(self, settings: Settings) -> ServiceStatus:
        row = super().status(settings)
        if row.mode == "managed":
            # the folder people look in is the mail, not the log's
            row = dataclasses.replace(row, data_dir=mail_dir(settings))
        return row

    def unreachable_external(self, settings: Settings, error: str) -> str:
        return (
            f"smtp: SMTP_URL={mask_url(settings.smtp_url)} is not the local server `billing stack up` manages "
            f"(smtp://127.0.0.1:BILLING_SMTP_PORT), and it does not answer: {error}."
        )

    def prepare(self, settings: Settings, say: Callable[[str], None]) -> list[str | Path]:
        self.home(settings).mkdir(parents=True, exist_ok=True)
        mail_dir(settings).mkdir(parents=True, exist_ok=True)
        t = target(settings)
        return [
            sys.executable,
            "-m",
            "stack.smtp_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(t.port),
            "--dir",
            str(mail_dir(settings).resolve()),
        ]


SERVICE = SmtpServer()
log_file = SERVICE.log_file
pid_file = SERVICE.pid_file

__all__ = ["NAME", "SERVICE", "SmtpTarget", "mail_dir", "probe", "target"]
