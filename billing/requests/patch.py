"""The rules every PATCH-style command shares: its `changes` hold only what the client
sent (absent is unchanged, null clears), and metadata merges as in Stripe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from billing.errors import from_validation_error

M = TypeVar("M", bound=BaseModel)


def parse_changes(model: type[M], changes: dict[str, Any]) -> M:
    """A command's `changes` as the update model; a bad field is a 400 naming it, also for
    commands published straight to Kafka (the API has checked its own already)."""
    try:
        return model.model_validate(changes)
    except ValidationError as error:
        raise from_validation_error(error) from None


def merge_metadata(current: Mapping[str, str], update: Mapping[str, str | None] | None) -> dict[str, str]:
    """Stripe's rule: metadata null clears all; a key set to null or "" is removed."""
    if update is None:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value in (None, ""):
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
