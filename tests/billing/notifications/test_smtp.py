"""Sending customer emails through a real SMTP server: the stack's own (aiosmtpd, run as
`python -m stack.smtp_server` on a free port with a tmp dir, as `billing stack up` runs
it), read back from the .eml file it stored; and the failures `send` reports."""

from __future__ import annotations

import email
import io
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pypdf import PdfReader

from billing.documents.pdf import Document, DocumentLine, render_pdf
from billing.notifications import emails
from billing.notifications.emails import Recipient, Sender
from billing.notifications.smtp import EmailNotSent, parse_smtp_url, send
from contracts.settings import PROJECT_ROOT
from tests.stack.conftest import free_port_pair

from .email_fixtures import invoice_json

NBSP = "\xa0"
ACME = Sender("Acme Analytics", "billing@acme.test", reply_to="support@acme.test")


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The stack's SMTP server as its own process: (SMTP_URL, the mail folder)."""
    port = free_port_pair()
    with running_smtp_server(port, tmp_path) as mail:
        yield f"smtp://127.0.0.1:{port}", mail


@contextmanager
def running_smtp_server(port: int, directory: Path) -> Iterator[Path]:
    """The stack's SMTP server on `port`, storing under directory/mail: that folder."""
    mail = directory / "mail"
    log = (directory / "smtp.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stack.smtp_server", "--port", str(port), "--dir", str(mail)],
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the SMTP server did not start: {(directory / 'smtp.log').read_text()}")
                time.sleep(0.05)
        yield mail
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def invoice_pdf(invoice: dict[str, object], locale: str) -> bytes:
    """The project's invoice PDF renderer, with plain data."""
    return render_pdf(
        Document(
            title="Rechnung",
            number=str(invoice["number"]),
            issuer=ACME.name,
            bill_to=["Jürgen Müller", "juergen@example.com"],
            facts=[("Rechnungsdatum", datetime(2026, 12, 7, tzinfo=UTC))],
            currency=str(invoice["currency"]),
            locale=locale,
            lines=[DocumentLine("Analytics-Plätze", 123456, quantity=2)],
            totals=[("Zwischensumme", 123456), ("Fälliger Betrag", 123456)],
            created_at=datetime(2026, 12, 7, 9, 0, tzinfo=UTC),
        )
    )


def stored(mail: Path) -> EmailMessage:
    (path,) = mail.glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_an_invoice_email_arrives_with_its_recipient_subject_amounts_and_pdf(
    smtp_server: tuple[str, Path],
) -> None:
    url, mail = smtp_server
    invoice = invoice_json(currency="eur", number="INV-0042", lines=[("Analytics-Plätze", 2, 123456)])
    pdf = invoice_pdf(invoice, "de-DE")
    recipient = Recipient("juergen@example.com", "Jürgen Müller", "de-DE")
    message = emails.invoice_finalized(ACME, recipient, invoice, pdf, "https://portal.acme.test/s/1")

    await send(url, message)

    received = stored(mail)
    assert received["X-Envelope-To"] == "<juergen@example.com>"
    assert received["X-Envelope-From"] == "<billing@acme.test>"
    assert received["To"] == "Jürgen Müller <juergen@example.com>"
    assert received["Subject"] == "Ihre Rechnung INV-0042 von Acme Analytics"
    assert received["Reply-To"] == "support@acme.test"
    assert received["Date"] is not None
    assert received["Message-ID"].endswith("@acme.test>")
    text = received.get_body(("plain",))
    html = received.get_body(("html",))
    assert text is not None and html is not None
    for body in (text.get_content(), html.get_content()):
        assert f"1.234,56{NBSP}€" in body  # the customer's currency, the German way
        assert "Analytics-Plätze" in body
    (attachment,) = received.iter_attachments()
    assert attachment.get_filename() == "INV-0042.pdf"
    assert attachment.get_content_type() == "application/pdf"
    content = attachment.get_content()
    assert content == pdf
    pdf_text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    assert "INV-0042" in pdf_text and f"1.234,56{NBSP}€" in pdf_text.replace(" ", NBSP)


async def test_a_jpy_and_a_kwd_receipt_arrive_with_their_decimals(smtp_server: tuple[str, Path]) -> None:
    url, mail = smtp_server
    for currency, amount, expected in (("jpy", 12000, "¥12,000"), ("kwd", 12345, f"KWD{NBSP}12.345")):
        invoice = invoice_json(currency=currency, lines=[("Plan", 1, amount)], paid=True)
        recipient = Recipient(f"{currency}@example.com", None, "en-US")
        await send(url, emails.payment_receipt(ACME, recipient, invoice, None))
        (path,) = [p for p in mail.glob("*.eml") if f"{currency}@example.com" in p.read_text()]
        received = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(received, EmailMessage)
        assert received["Subject"] == "Receipt from Acme Analytics"
        body = received.get_body(("plain",))
        assert body is not None and f"We received your payment of {expected}." in body.get_content()


async def test_nothing_listening_is_a_temporary_failure() -> None:
    port = free_port_pair()
    message = emails.payment_failed(ACME, Recipient("a@example.com", None, "en-US"), invoice_json(), None)
    with pytest.raises(EmailNotSent) as err:
        await send(f"smtp://127.0.0.1:{port}", message, timeout=3)
    assert not err.value.permanent
    assert f"smtp://127.0.0.1:{port}" in str(err.value) and "a@example.com" in str(err.value)


class _Refusing:
    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        return "550 5.1.1 No such user here"


async def test_a_refused_recipient_is_a_permanent_failure() -> None:
    port = free_port_pair()
    controller = Controller(_Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        message = emails.payment_failed(ACME, Recipient("nobody@example.com", None, "en-US"), invoice_json(), None)
        with pytest.raises(EmailNotSent) as err:
            await send(f"smtp://127.0.0.1:{port}", message, timeout=5)
    finally:
        controller.stop()
    assert err.value.permanent and err.value.code == 550
    assert "No such user here" in str(err.value)


@pytest.mark.unit
def test_smtp_urls() -> None:
    plain = parse_smtp_url("smtp://127.0.0.1:10025")
    assert (plain.hostname, plain.port, plain.username, plain.use_tls, plain.start_tls) == (
        "127.0.0.1",
        10025,
        None,
        False,
        None,
    )
    tls = parse_smtp_url("smtps://mailer%40acme.test:p%40ss%3Aword@smtp.example.com")
    assert (tls.hostname, tls.port, tls.username, tls.password, tls.use_tls, tls.start_tls) == (
        "smtp.example.com",
        465,
        "mailer@acme.test",
        "p@ss:word",
        True,
        False,
    )
    assert "p@ss" not in tls.address and tls.address == "smtps://mailer@acme.test:***@smtp.example.com:465"
    assert parse_smtp_url("smtp://relay.example.com?starttls=require").start_tls is True
    assert parse_smtp_url("smtp://relay.example.com").port == 25
    for bad in ("http://example.com", "smtp://", "smtp://relay?starttls=maybe"):
        with pytest.raises(ValueError):
            parse_smtp_url(bad)
