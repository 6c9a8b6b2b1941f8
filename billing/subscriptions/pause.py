"""Pausing a subscription's collection (Stripe's pause_collection). Pure, no I/O.

Not a status: the subscription stays as it is and keeps its periods, but each invoice it
makes while paused is handled as `behavior` says instead of being collected: kept as a
draft, finalized and marked uncollectible, or finalized and voided. A pause with a
`resumesAt` ends at that moment by itself; without one it lasts until it is removed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from contracts.json_shapes import PauseCollection


class PauseBehavior(StrEnum):
    keep_as_draft = "keep_as_draft"
    mark_uncollectible = "mark_uncollectible"
    void = "void"


def paused_behavior(pause: PauseCollection | None, now: datetime) -> PauseBehavior | None:
    """What happens to an invoice made at `now`: the pause's behavior, or None (collected)."""
    if pause is None:
        return None
    resumes_at = pause["resumesAt"]
    if resumes_at is not None and datetime.fromisoformat(resumes_at) <= now:
        return None
    return PauseBehavior(pause["behavior"])
