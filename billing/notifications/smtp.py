"""Sending an email to SMTP_URL with aiosmtplib.

    smtp://host:port                 plain, upgraded with STARTTLS when the server offers it
    smtp://host:port?starttls=require  STARTTLS or fail
    smtps://user:password@host:465   TLS from the start (implicit TLS)

User and password are optional (percent-encoded in the URL); default ports are 25 for
smtp and 465 for smtps. Certificates are verified. One timeout bounds connecting and each
reply. Any failure raises `EmailNotSent`, whose `permanent` says whether the server refused
for good (a 5xx reply: retrying the same message will not help) rather than for now (a 4xx,
a timeout, a refused connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

DEFAULT_TIMEOUT = 15.0


class EmailNotSent(Exception):
    """The message was not accepted for every recipient; the message says why and where."""

    def __init__(self, message: str, *, permanent: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # smtps: TLS from the start
    start_tls: bool | None  # None: when offered; True: required

    @property
    def address(self) -> str:
        scheme = "smtps" if self.use_tls else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{user}{self.hostname}:{self.port}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """The connection an smtp:// or smtps:// URL names; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {parts.scheme or 'nothing'}://")
    if not parts.hostname:
        raise ValueError("SMTP_URL names no host")
    query = parse_qs(parts.query)
    starttls = query.get("starttls", [""])[-1]
    if starttls not in ("", "require"):
        raise ValueError(f"SMTP_URL: starttls={starttls!r} is not understood (only starttls=require)")
    use_tls = parts.scheme == "smtps"
    return SmtpTarget(
        hostname=parts.hostname,
        port=parts.port or (465 if use_tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        use_tls=use_tls,
        start_tls=False if use_tls else (True if starttls == "require" else None),
    )


async def send(smtp_url: str, message: EmailMessage, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Hand the message to the SMTP server at smtp_url for every recipient of its To, Cc
    and Bcc; the envelope sender is its From. Adds a Date and a Message-ID (at the sender's
    domain) when the message has none, so a retry of the same object keeps its id.
    Raises EmailNotSent when the server does not accept it for every recipient."""
    target = parse_smtp_url(smtp_url)
    if message["Date"] is None:
        message["Date"] = formatdate(usegmt=True)
    if message["Message-ID"] is None:
        domain = str(message["From"]).rpartition("@")[2].rstrip(">").strip() or None
        message["Message-ID"] = make_msgid(domain=domain)
    where = f"{target.address} (to {message['To']})"
    try:
        refused, _ = await aiosmtplib.send(
            message,
            hostname=target.hostname,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.use_tls,
            start_tls=target.start_tls,
            timeout=timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        raise EmailNotSent(
            f"{where}: every recipient was refused: {'; '.join(str(r) for r in exc.recipients)}",
            permanent=all(code >= 500 for code in codes),
            code=codes[0] if codes else None,
        ) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise EmailNotSent(
            f"{where}: the server answered {exc.code} {exc.message}", permanent=exc.code >= 500, code=exc.code
        ) from exc
    except aiosmtplib.SMTPTimeoutError as exc:
        raise EmailNotSent(f"{where}: no answer within {timeout:g} s ({exc})", permanent=False) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise EmailNotSent(f"{where}: {type(exc).__name__}: {exc}", permanent=False) from exc
    if refused:
        detail = "; ".join(f"{rcpt}: {response.code} {response.message}" for rcpt, response in refused.items())
        raise EmailNotSent(
            f"{where}: refused for {detail}",
            permanent=all(response.code >= 500 for response in refused.values()),
            code=next(iter(refused.values())).code,
        )
