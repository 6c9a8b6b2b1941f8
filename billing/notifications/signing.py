"""Signing a webhook delivery per the Standard Webhooks specification, with its own
library: `webhook-id` (the event's id, the same on every retry, so a receiver dedupes),
`webhook-timestamp` (seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256>`, one per
secret, space-separated: during a rotation's overlap both secrets sign)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from secrets import token_bytes
from typing import Final

from standardwebhooks import Webhook

SECRET_PREFIX: Final = "whsec_"


def new_secret() -> str:
    """A signing secret as Standard Webhooks spells it: whsec_ and 24 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(24)).decode("ascii")


def signed_headers(secrets: Sequence[str], message_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The three headers of a delivery of `body`, signed with each of `secrets`."""
    signatures = [Webhook(secret).sign(message_id, timestamp, body) for secret in secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }
