"""Secrets at rest: an organization's Stripe secret key and webhook signing secret.

They are stored encrypted (`organizations.stripe_secret_key_encrypted`,
`organizations.stripe_webhook_secret_encrypted`) with Fernet (AES-128-CBC plus
HMAC-SHA256, from `cryptography`) under a MultiFernet key ring:

- the keys come from ``BILLING_ENCRYPTION_KEYS``: comma-separated Fernet keys (urlsafe
  base64 of 32 random bytes, as `generate_key()` prints). The FIRST key encrypts, EVERY key
  decrypts. To rotate: put a new key first and keep the old ones after it, re-encrypt the
  stored tokens with `rotate()` (which re-encrypts under the first key), then drop the old
  keys;
- when the variable is empty, `load_keys(settings, key_file)` reads the same list from a key
  file (one key per line or comma-separated, `#` comments allowed). For local development
  `make dev` generates one into ``.data/`` (`default_key_file(settings)`, written by
  `write_key_file`), so a fresh checkout works without configuration. A deployed stack sets
  ``BILLING_ENCRYPTION_KEYS``;
- with neither, every operation raises `EncryptionKeyMissing`, which names both. Nothing
  falls back to storing plaintext.

Keys and plaintexts never appear in exception messages.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from contracts.settings import Settings, get_settings

ENV_VAR = "BILLING_ENCRYPTION_KEYS"
KEY_FILE_NAME = "encryption.keys"


class SecretsError(Exception):
    """Base class of the errors of this module."""


class EncryptionKeyMissing(SecretsError):
    """No encryption key is configured."""


class InvalidEncryptionKey(SecretsError):
    """A configured key is not a Fernet key."""


class SecretDecryptionError(SecretsError):
    """A token was tampered with, is not a token, or was made under a key no longer configured."""


def generate_key() -> str:
    """A new random Fernet key (44 characters of urlsafe base64)."""
    return Fernet.generate_key().decode("ascii")


def default_key_file(settings: Settings) -> Path:
    """Where `make dev` keeps the local development key: ``<data dir>/encryption.keys``."""
    return settings.data_dir / KEY_FILE_NAME


def write_key_file(path: Path) -> Path:
    """Create `path` with one new key (mode 0600) unless it exists; return the path.

    For `make dev`. An existing file is never overwritten: that would make every stored
    secret undecryptable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as handle:
        handle.write("# Fernet keys for secrets at rest; the first encrypts, all decrypt.\n")
        handle.write(generate_key() + "\n")
    return path


def _split_keys(text: str) -> list[str]:
    keys: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        keys.extend(part.strip() for part in line.split(",") if part.strip())
    return keys


def load_keys(settings: Settings | None = None, key_file: Path | str | None = None) -> list[str]:
    """The configured keys, first one encrypting.

    From ``BILLING_ENCRYPTION_KEYS`` (`settings.secret_encryption_keys`) when set, else from
    `key_file` when given and present. Raises `EncryptionKeyMissing` when neither yields a
    key and `InvalidEncryptionKey` when one is not a Fernet key.
    """
    settings = settings if settings is not None else get_settings()
    keys = _split_keys(settings.secret_encryption_keys)
    source = ENV_VAR
    if not keys and key_file is not None:
        path = Path(key_file)
        if path.is_file():
            keys = _split_keys(path.read_text())
            source = str(path)
    if not keys:
        where = f" nor in the key file {key_file}" if key_file is not None else ""
        raise EncryptionKeyMissing(
            f"no encryption key configured: {ENV_VAR} is empty{where}. Set {ENV_VAR} to one or more "
            "comma-separated Fernet keys (generate one with "
            "`python -c 'from billing.secrets.encryption import generate_key; print(generate_key())'`), "
            "or run `make dev`, which writes a development key into .data/"
        )
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise InvalidEncryptionKey(
                f"key #{position} in {source} is not a Fernet key (expected 32 bytes in urlsafe base64, 44 characters)"
            ) from None
    return keys


class Keyring:
    """A MultiFernet over the configured keys: the first encrypts, all decrypt."""

    __slots__ = ("_fernet", "_primary", "_primary_key", "key_count")

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise EncryptionKeyMissing(f"no encryption key given (set {ENV_VAR})")
        fernets: list[Fernet] = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise InvalidEncryptionKey(f"key #{position} is not a Fernet key") from None
        self._primary = fernets[0]
        self._primary_key = base64.urlsafe_b64decode(keys[0])
        self._fernet = MultiFernet(fernets)
        self.key_count = len(fernets)

    def encrypt(self, plaintext: str) -> str:
        if not isinstance(plaintext, str):
            raise TypeError("encrypt takes a str")
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(_token_bytes(token)).decode("utf-8")
        except InvalidToken:
            raise SecretDecryptionError(
                "cannot decrypt the stored secret: it was altered, is not a token, or was encrypted "
                f"under a key that is no longer in {ENV_VAR}"
            ) from None

    def rotate(self, token: str) -> str:
        """The same plaintext, re-encrypted under the first key (for key rotation)."""
        try:
            return self._fernet.rotate(_token_bytes(token)).decode("ascii")
        except InvalidToken:
            raise SecretDecryptionError(
                f"cannot rotate the stored secret: it was altered or its key is no longer in {ENV_VAR}"
            ) from None

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for `purpose` (HKDF-SHA256 over the first key): every process with
        the same keys derives the same one, and no purpose learns another's or the
        encryption key. Rolling the first key changes it."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode("utf-8")).derive(
            self._primary_key
        )

    def is_current(self, token: str) -> bool:
        """Whether `token` is already encrypted under the first key (nothing to rotate)."""
        try:
            self._primary.decrypt(_token_bytes(token))
        except InvalidToken:
            return False
        return True


def _token_bytes(token: str | bytes) -> bytes:
    if isinstance(token, bytes):
        return token
    if not isinstance(token, str):
        raise TypeError("a token is a str")
    try:
        return token.encode("ascii")
    except UnicodeEncodeError:
        raise SecretDecryptionError("cannot decrypt the stored secret: it is not a token") from None


def keyring_from_settings(settings: Settings | None = None, key_file: Path | str | None = None) -> Keyring:
    """A key ring from the environment, or from `key_file` (default: `default_key_file`)."""
    settings = settings if settings is not None else get_settings()
    if key_file is None:
        key_file = default_key_file(settings)
    return Keyring(load_keys(settings, key_file))


@lru_cache(maxsize=1)
def default_keyring() -> Keyring:
    """The process's key ring, loaded once (`default_keyring.cache_clear()` reloads it)."""
    return keyring_from_settings()


def encrypt_secret(plaintext: str, keyring: Keyring | None = None) -> str:
    """Encrypt under the first configured key; the token is ASCII, fit for a Text column."""
    return (keyring or default_keyring()).encrypt(plaintext)


def decrypt_secret(token: str, keyring: Keyring | None = None) -> str:
    """Decrypt a token made under any configured key; `SecretDecryptionError` otherwise."""
    return (keyring or default_keyring()).decrypt(token)


def rotate(token: str, keyring: Keyring | None = None) -> str:
    """Re-encrypt a token under the first configured key."""
    return (keyring or default_keyring()).rotate(token)


def rotate_all(tokens: Iterable[str], keyring: Keyring | None = None) -> list[str]:
    ring = keyring or default_keyring()
    return [ring.rotate(token) for token in tokens]


__all__ = [
    "ENV_VAR",
    "EncryptionKeyMissing",
    "InvalidEncryptionKey",
    "Keyring",
    "SecretDecryptionError",
    "SecretsError",
    "decrypt_secret",
    "default_key_file",
    "default_keyring",
    "encrypt_secret",
    "generate_key",
    "keyring_from_settings",
    "load_keys",
    "rotate",
    "rotate_all",
    "write_key_file",
]
