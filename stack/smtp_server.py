"""The local stack's SMTP server: aiosmtpd, storing every message it accepts as a .eml file.

    python -m stack.smtp_server --port 10025 --dir .data/mail

Each message is written whole (to a temporary name, then renamed) as
<dir>/<UTC time>-<random>.eml, with two headers put in front that say what the envelope
said: X-Envelope-From and X-Envelope-To (Bcc recipients are only there); lines end
in LF, as in a Maildir. It accepts every
sender and recipient, without authentication or TLS, and listens on the given host only
(127.0.0.1 by default): it is for this machine's tests and development, never a relay.
SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

IDENT = "billing-smtp"  # in the 220 greeting, so a probe knows it is ours
MAX_MESSAGE_BYTES = 25 * 1024 * 1024


class MaildirHandler:
    """aiosmtpd handler: one .eml file per accepted message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # lines end in LF, as in a Maildir (SMTP's CRLF is the wire's, not the message's)
        content = (envelope.original_content or b"").replace(b"\r\n", b"\n")
        head = (
            f"X-Envelope-From: <{envelope.mail_from or ''}>\n"
            f"X-Envelope-To: {', '.join(f'<{rcpt}>' for rcpt in envelope.rcpt_tos)}\n"
        ).encode()
        path = await asyncio.to_thread(store, self.directory, head + content)
        print(f"stored {path.name}: from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}", flush=True)
        return "250 Message accepted for delivery"


def store(directory: Path, data: bytes) -> Path:
    """Write one message atomically; its path."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}-{uuid.uuid4().hex[:8]}.eml"
    tmp = directory / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, directory / name)
    return directory / name


async def serve(host: str, port: int, directory: Path) -> None:
    handler = MaildirHandler(directory)

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname=IDENT,
            ident=f"{IDENT} (aiosmtpd)",
            data_size_limit=MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
            decode_data=False,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host=host, port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"{IDENT}: listening on {host}:{port}, storing messages in {directory}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()
    print(f"{IDENT}: stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="where the .eml files go")
    args: Any = parser.parse_args(argv)
    directory = args.dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.host, args.port, directory))


if __name__ == "__main__":
    main()
