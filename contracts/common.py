"""Request pieces shared by several resources (Stripe's shapes, camelCase)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

METADATA_MAX_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500


class RequestModel(BaseModel):
    """Unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _check_metadata(metadata: dict[str, str | None] | None) -> dict[str, str | None] | None:
    if metadata is None:
        return None
    if len(metadata) > METADATA_MAX_KEYS:
        raise ValueError(f"metadata can have at most {METADATA_MAX_KEYS} keys")
    for key, value in metadata.items():
        if not key or len(key) > METADATA_KEY_MAX or "[" in key or "]" in key:
            raise ValueError(f"metadata keys must be 1-{METADATA_KEY_MAX} characters without square brackets: {key!r}")
        if value is not None and len(value) > METADATA_VALUE_MAX:
            raise ValueError(f"metadata values can be at most {METADATA_VALUE_MAX} characters (key {key!r})")
    return metadata


Metadata = Annotated[dict[str, str], AfterValidator(_check_metadata)]
# In an update, a key set to null (or "") is removed, as in Stripe.
MetadataUpdate = Annotated[dict[str, str | None], AfterValidator(_check_metadata)]


class Address(RequestModel):
    line1: str | None = Field(default=None, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=200)
    state: str | None = Field(default=None, max_length=200)
    postalCode: str | None = Field(default=None, max_length=20)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")


class Shipping(RequestModel):
    name: str = Field(max_length=256)
    phone: str | None = Field(default=None, max_length=64)
    address: Address
