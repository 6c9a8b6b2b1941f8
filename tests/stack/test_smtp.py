"""The local SMTP server on a private port and data dir: `up` starts aiosmtpd as its own
process, a message sent to it comes back as a .eml file under <data_dir>/mail, `status`
shows that folder, `down` stops it; an SMTP_URL elsewhere is external."""

from __future__ import annotations

import email
import smtplib
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from typer.testing import CliRunner

import stack
from stack import smtp
from stack._proc import cmdline, pid_alive
from stack.cli import stack_app

from .conftest import free_port_pair, settings_with


def test_smtp_server_stores_each_message_under_data_dir_mail(private_data_dir: Path) -> None:
    port = free_port_pair()
    settings = settings_with(data_dir=private_data_dir, smtp_port=port, smtp_url=f"smtp://127.0.0.1:{port}")
    said: list[str] = []
    try:
        (first,) = stack.ensure_up(["smtp"], settings=settings, say=said.append)
        assert first.healthy and first.mode == "managed" and pid_alive(first.pid), first
        assert "stack.smtp_server" in cmdline(first.pid)  # type: ignore[arg-type]
        assert first.address == f"smtp://127.0.0.1:{port}"
        assert first.data_dir == private_data_dir / "mail"
        assert first.log_file == private_data_dir / "smtp" / "smtp.log"
        assert first.detail == f"0 messages in {private_data_dir / 'mail'}"

        message = EmailMessage()
        message["From"] = "Acme <billing@acme.test>"
        message["To"] = "Jürgen Müller <juergen@example.test>"
        message["Subject"] = "Ihre Rechnung über 1.234,56 €"
        message.set_content("Grüße\n")
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            client.send_message(message, to_addrs=["juergen@example.test", "audit@acme.test"])

        (stored,) = (private_data_dir / "mail").glob("*.eml")
        parsed = email.message_from_bytes(stored.read_bytes(), policy=policy.default)
        assert parsed["Subject"] == "Ihre Rechnung über 1.234,56 €"
        assert parsed["To"] == "Jürgen Müller <juergen@example.test>"
        assert parsed["X-Envelope-From"] == "<billing@acme.test>"
        assert parsed["X-Envelope-To"] == "<juergen@example.test>, <audit@acme.test>"
        assert parsed.get_content() == "Grüße\n"

        (row,) = stack.status(["smtp"], settings=settings)
        assert row.healthy and row.pid == first.pid and row.detail == f"1 message in {private_data_dir / 'mail'}"

        (again,) = stack.ensure_up(["smtp"], settings=settings, say=said.append)
        assert again.pid == first.pid

        stack.down(["smtp"], settings=settings, say=said.append)
        assert not pid_alive(first.pid)
        assert not smtp.pid_file(settings).exists()
        assert smtp.probe(settings) is not None
        assert stored.exists()  # the mail outlives the server
    finally:
        stack.down(["smtp"], settings=settings, say=said.append)


def test_status_command_shows_the_mail_folder(private_data_dir: Path) -> None:
    port = free_port_pair()
    env = {"BILLING_DATA_DIR": str(private_data_dir), "BILLING_SMTP_PORT": str(port), "SMTP_URL": ""}
    settings = settings_with(data_dir=private_data_dir, smtp_port=port, smtp_url=f"smtp://127.0.0.1:{port}")
    try:
        up = CliRunner().invoke(stack_app, ["up", "smtp"], env=env)
        assert up.exit_code == 0, up.output
        result = CliRunner().invoke(stack_app, ["status", "smtp"], env=env)
        assert result.exit_code == 0, result.output
        (line,) = [x for x in result.output.splitlines() if x.startswith("smtp ")]
        cells = line.split()
        assert cells[1:3] == ["healthy", "managed"]
        assert f"smtp://127.0.0.1:{port}" in cells
        assert any(cell.endswith(f"{private_data_dir.name}/mail") for cell in cells), line  # the DATA column
    finally:
        stack.down(["smtp"], settings=settings, say=lambda _: None)


@pytest.mark.unit
def test_an_smtp_url_elsewhere_is_external() -> None:
    relay = settings_with(smtp_url="smtps://mailer:s3cret@smtp.example.com:465")
    assert not smtp.target(relay).managed
    assert "s3cret" not in smtp.SERVICE.endpoint(relay).address
    mailpit = settings_with(smtp_url="smtp://mailpit:1025")
    assert not smtp.target(mailpit).managed
    other_port = settings_with(smtp_port=10025, smtp_url="smtp://127.0.0.1:2525")
    assert not smtp.target(other_port).managed
    assert smtp.target(settings_with(smtp_port=10025, smtp_url="smtp://127.0.0.1:10025")).managed
