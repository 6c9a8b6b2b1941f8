"""API key secrets: random, shown once, stored as a SHA-256 hash.

The secrets are 240 bits of randomness, so a fast hash is the right tool (a slow password
hash protects guessable secrets, which these are not)."""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass

from billing.ids import new_id

SECRET_PREFIX = "sk_"
_ALPHABET = string.ascii_letters + string.digits
VISIBLE_PREFIX_LENGTH = 11


@dataclass(frozen=True)
class NewKey:
    id: str
    secret: str
    secret_hash: str
    prefix: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> NewKey:
    secret = SECRET_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(40))
    return NewKey(new_id("api_key"), secret, hash_secret(secret), secret[:VISIBLE_PREFIX_LENGTH])
