"""Secrets at rest: round trip, rotation, tampering, missing and malformed keys."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from billing.secrets import encryption
from billing.secrets.encryption import (
    EncryptionKeyMissing,
    InvalidEncryptionKey,
    Keyring,
    SecretDecryptionError,
    decrypt_secret,
    encrypt_secret,
    generate_key,
    keyring_from_settings,
    load_keys,
    rotate,
    write_key_file,
)
from contracts.settings import Settings

pytestmark = pytest.mark.unit

SECRET = "sk_test_51Hx" + "a" * 90
crypto_key_a = generate_key()


def _settings(keys: str = "", data_dir: Path | None = None) -> Settings:
    if data_dir is None:
        return Settings(secret_encryption_keys=keys)
    return Settings(secret_encryption_keys=keys, data_dir=data_dir)


def test_generate_key_is_a_fernet_key() -> None:
    key = generate_key()
    assert len(key) == 44
    assert len(base64.urlsafe_b64decode(key)) == 32
    Fernet(key)
    assert generate_key() != key


def test_round_trip_and_token_is_not_the_plaintext() -> None:
    ring = Keyring([generate_key()])
    token = encrypt_secret(SECRET, ring)
    assert isinstance(token, str) and token.isascii()
    assert SECRET not in token
    assert decrypt_secret(token, ring) == SECRET
    # Fernet tokens carry a random IV: the same plaintext encrypts differently each time
    assert encrypt_secret(SECRET, ring) != token


@hsettings(max_examples=50)
@given(st.text(max_size=300))
def test_round_trip_any_text(plaintext: str) -> None:
    ring = Keyring([crypto_key_a])
    assert ring.decrypt(ring.encrypt(plaintext)) == plaintext


def test_rotation_old_key_still_decrypts_and_rotate_moves_to_the_new_key() -> None:
    old, new = generate_key(), generate_key()
    before = Keyring(load_keys(_settings(old)))
    token = before.encrypt(SECRET)

    after = Keyring(load_keys(_settings(f"{new}, {old}")))
    assert after.decrypt(token) == SECRET  # the old key still decrypts
    assert not after.is_current(token)

    rotated = rotate(token, after)
    assert rotated != token
    assert after.is_current(rotated)
    assert after.decrypt(rotated) == SECRET
    # encrypted under the new key only: a ring with just the new key reads it, the old one does not
    assert Keyring([new]).decrypt(rotated) == SECRET
    with pytest.raises(SecretDecryptionError):
        Keyring([old]).decrypt(rotated)
    # and new encryptions use the first key
    assert Keyring([new]).decrypt(after.encrypt("x")) == "x"


def test_dropping_the_old_key_makes_unrotated_tokens_unreadable() -> None:
    old, new = generate_key(), generate_key()
    token = Keyring([old]).encrypt(SECRET)
    with pytest.raises(SecretDecryptionError) as caught:
        Keyring([new]).decrypt(token)
    assert "BILLING_ENCRYPTION_KEYS" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("position", [0, 10, 30, 60, -5, -1])
def test_tampered_token_is_rejected(position: int) -> None:
    ring = Keyring([generate_key()])
    token = ring.encrypt(SECRET)
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[position] ^= 0x01
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode("ascii")
    with pytest.raises(SecretDecryptionError):
        ring.decrypt(tampered)
    with pytest.raises(SecretDecryptionError):
        ring.rotate(tampered)


@pytest.mark.parametrize("garbage", ["", "not a token", SECRET, "gAAAAA", "ünïcode"])
def test_non_tokens_are_rejected(garbage: str) -> None:
    with pytest.raises(SecretDecryptionError):
        Keyring([generate_key()]).decrypt(garbage)


def test_no_key_configured_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EncryptionKeyMissing) as caught:
        load_keys(_settings(""))
    assert "BILLING_ENCRYPTION_KEYS" in str(caught.value)
    assert "make dev" in str(caught.value)

    missing = tmp_path / "nope.keys"
    with pytest.raises(EncryptionKeyMissing) as caught:
        load_keys(_settings(""), missing)
    assert str(missing) in str(caught.value)

    with pytest.raises(EncryptionKeyMissing):
        keyring_from_settings(_settings("", data_dir=tmp_path))
    with pytest.raises(EncryptionKeyMissing):
        Keyring([])


def test_default_keyring_without_configuration_raises_on_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_ENCRYPTION_KEYS", "")
    monkeypatch.setenv("BILLING_DATA_DIR", str(tmp_path))
    encryption.default_keyring.cache_clear()
    try:
        with pytest.raises(EncryptionKeyMissing):
            encrypt_secret(SECRET)
        key = generate_key()
        monkeypatch.setenv("BILLING_ENCRYPTION_KEYS", key)
        encryption.default_keyring.cache_clear()
        assert Keyring([key]).decrypt(encrypt_secret(SECRET)) == SECRET
    finally:
        encryption.default_keyring.cache_clear()


def test_malformed_key_is_named_by_position_without_echoing_it() -> None:
    good = generate_key()
    with pytest.raises(InvalidEncryptionKey) as caught:
        load_keys(_settings(f"{good},not-a-key-at-all"))
    assert "#2" in str(caught.value)
    assert "not-a-key-at-all" not in str(caught.value)
    assert good not in str(caught.value)


def test_environment_wins_over_the_key_file(tmp_path: Path) -> None:
    env_key, file_key = generate_key(), generate_key()
    key_file = tmp_path / "k"
    key_file.write_text(file_key + "\n")
    assert load_keys(_settings(env_key), key_file) == [env_key]
    assert load_keys(_settings(""), key_file) == [file_key]


def test_key_file_lists_keys_first_encrypts(tmp_path: Path) -> None:
    first, second, third = generate_key(), generate_key(), generate_key()
    key_file = tmp_path / "keys"
    key_file.write_text(f"# rotated 2026-01\n{first}\n\n{second}, {third}  # old\n")
    assert load_keys(_settings(""), key_file) == [first, second, third]


def test_write_key_file_creates_once_with_private_mode(tmp_path: Path) -> None:
    path = tmp_path / ".data" / "encryption.keys"
    write_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    write_key_file(path)  # never overwritten
    assert path.read_text() == content

    settings = _settings("", data_dir=tmp_path / ".data")
    assert encryption.default_key_file(settings) == path
    ring = keyring_from_settings(settings)
    assert ring.decrypt(ring.encrypt(SECRET)) == SECRET


def test_derived_keys_are_shared_by_equal_keyrings_and_separate_purposes() -> None:
    first, second = generate_key(), generate_key()
    one, same = Keyring([first, second]), Keyring([first])
    key = one.derive_key("dashboard")
    assert len(key) == 32 and key == same.derive_key("dashboard")  # only the first key counts
    assert key != one.derive_key("something else")
    assert key != Keyring([second, first]).derive_key("dashboard")  # rolling the first key changes it
    assert key not in (first.encode(), base64.urlsafe_b64decode(first))
