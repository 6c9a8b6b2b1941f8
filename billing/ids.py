"""Stripe-style object ids: a resource prefix and 24 random base-62 characters."""

from __future__ import annotations

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
}


def new_id(resource: str) -> str:
    return f"{PREFIXES[resource]}_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))
