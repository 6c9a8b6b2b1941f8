"""Stripe-style object ids: a resource prefix and 24 random base-62 characters."""

from __future__ import annotations

import re
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits

PREFIXES = {
    "organization": "org",
    "api_key": "key",
    "customer": "cus",
    "payment_method": "pm",
    "product": "prod",
    "product_attribute": "attr",  # catalog: product attribute definitions
    "price": "price",
    "meter": "mtr",
    "subscription": "sub",
    "subscription_item": "si",
    "subscription_schedule": "sub_sched",
    "subscription_schedule_phase": "phase",
    "invoice": "in",
    "invoice_line_item": "il",
    "payment": "pay",
    "invoice_item": "ii",
    "tax_rate": "txr",
    "subscription_tax_rate": "stxr",
    "refund": "rfd",
    "credit_note": "cn",
    "credit_note_line_item": "cnli",
    "test_clock": "clock",
    "webhook_endpoint": "we",
    "webhook_delivery": "whdel",
    "webhook_attempt": "whatt",
    "customer_email": "cuseml",
}


def new_id(resource: str) -> str:
    return f"{PREFIXES[resource]}_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


_BODY = re.compile(r"[A-Za-z0-9]{1,64}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# what any id of ours is made of (a cursor of a list whose resource is not named)
_ANY_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def has_shape(resource: str, value: str) -> bool:
    """Whether `value` could be an id of `resource`: its prefix, then base-62 only (so
    ``sub_sched_...`` is never a ``sub`` id). Longer than `new_id` makes is allowed."""
    prefix = PREFIXES[resource] + "_"
    return value.startswith(prefix) and _BODY.fullmatch(value, len(prefix)) is not None


def is_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


def is_id_like(value: str) -> bool:
    return _ANY_ID.fullmatch(value) is not None
