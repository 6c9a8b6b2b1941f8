"""The time, at the precision the columns keep."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """Now, cut to milliseconds (timestamptz(3)): a resource built before its row is
    written then reads the same as the row read back."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
