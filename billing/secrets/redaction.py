"""What must never be written to a log line or a dead-letter reason: secrets and card data.

`redact(text)` replaces API secrets (ours, ``sk_...``; Stripe's ``sk_/rk_/pk_`` live and
test keys), webhook signing secrets (``whsec_...``), bearer credentials and plausible card
numbers with a mark that keeps the kind and, for keys, the prefix a person recognizes
(``sk_live_****``). `install_log_redaction()` makes every log record of the process pass
through it (the record factory: whatever logger, handler or library formats it), and
`billing.db.sessions.create_engine` keeps bound parameters out of SQL error messages, so neither
a request's values nor a command's payload reach a log through an exception.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from billing.payments.card_numbers import redact_card_numbers

# sk_/rk_/pk_ (Stripe's secret, restricted and publishable keys, and our own sk_ keys),
# whsec_ webhook signing secrets: the prefix and then 8+ characters of the key's alphabet
_KEY = re.compile(r"\b((?:sk|rk|pk)_(?:live_|test_)?|whsec_)[A-Za-z0-9]{8,}")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")


def redact(text: str) -> str:
    text = _KEY.sub(lambda match: match.group(1) + "****", text)
    text = _BEARER.sub(lambda match: match.group(1) + " ****", text)
    return redact_card_numbers(text)


_installed: list[Any] = []


def install_log_redaction() -> None:
    """Every record made from now on carries its message already formatted and redacted,
    its exception text too (idempotent: installed once per process)."""
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(redacted_record)
    _installed.append(redacted_record)


__all__ = ["install_log_redaction", "redact"]
