"""Settings that refuse to be unsafe: the real Stripe by default, keys required outside the
local stack, no gateway over plain HTTP to another machine."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from billing.organizations.stripe_account import ensure_keyring
from billing.secrets.encryption import EncryptionKeyMissing, generate_key
from contracts.settings import (
    LOCAL,
    PRODUCTION,
    PROJECT_ROOT,
    STRIPE,
    STRIPE_MOCK,
    Settings,
    UnsafeSettings,
    is_loopback,
    require_safe_settings,
    unsafe_settings,
)


def production(**changes: object) -> Settings:
    base = dataclasses.replace(
        Settings(), environment=PRODUCTION, stripe_api_base=STRIPE, secret_encryption_keys=generate_key()
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.unit
def test_the_default_gateway_is_stripe_and_only_the_local_stack_is_stripe_mock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    monkeypatch.delenv("BILLING_ENV", raising=False)
    default = Settings()
    assert default.environment == PRODUCTION and not default.local
    assert default.stripe_api_base == STRIPE
    monkeypatch.setenv("BILLING_ENV", LOCAL)
    assert Settings().stripe_api_base == STRIPE_MOCK and Settings().local
    monkeypatch.setenv("STRIPE_API_BASE", "https://stripe.internal.example")
    assert Settings().stripe_api_base == "https://stripe.internal.example"  # an explicit setting wins everywhere


@pytest.mark.unit
def test_what_is_unsafe() -> None:
    assert unsafe_settings(production()) == []
    assert unsafe_settings(production(stripe_api_base="http://127.0.0.1:12111")) == []  # a mock on this machine
    assert unsafe_settings(production(stripe_api_base="http://localhost:12111")) == []
    assert unsafe_settings(production(stripe_api_base="http://[::1]:12111")) == []
    [no_keys] = unsafe_settings(production(secret_encryption_keys=" "))
    assert "BILLING_ENCRYPTION_KEYS is empty" in no_keys
    [clear] = unsafe_settings(production(stripe_api_base="http://stripe-mock.internal:12111"))
    assert "not HTTPS" in clear
    # plain HTTP off the machine is refused on the local stack too; missing keys are not
    local = production(environment=LOCAL, secret_encryption_keys="")
    assert unsafe_settings(local) == []
    assert len(unsafe_settings(dataclasses.replace(local, stripe_api_base="http://10.0.0.5:12111"))) == 1
    assert "neither" in unsafe_settings(production(environment="prod"))[0]
    with pytest.raises(UnsafeSettings) as raised:
        require_safe_settings(production(secret_encryption_keys="", stripe_api_base="http://example.com"))
    assert len(raised.value.problems) == 2


@pytest.mark.unit
def test_loopback_addresses() -> None:
    for url in ("http://127.0.0.1:1", "http://127.8.0.1", "http://localhost:8", "http://[::1]:9"):
        assert is_loopback(url), url
    for url in ("http://localhost.example.com", "http://10.0.0.1", "http://example.com", "http://", "not a url"):
        assert not is_loopback(url), url


@pytest.mark.unit
def test_no_key_file_appears_outside_the_local_stack(tmp_path: Path) -> None:
    with pytest.raises(EncryptionKeyMissing):
        ensure_keyring(production(data_dir=tmp_path, secret_encryption_keys=""))
    assert list(tmp_path.iterdir()) == []
    ring = ensure_keyring(production(data_dir=tmp_path))
    assert ring.decrypt(ring.encrypt("sk_test_x")) == "sk_test_x" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["api", "--port", "1"], ["consume"], ["dev", "--no-seed"]])
def test_the_processes_refuse_to_start_when_unsafe(tmp_path: Path, command: list[str]) -> None:
    """The real CLI, as a deployment without the local stack would start it."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("BILLING_ENV", "BILLING_ENCRYPTION_KEYS", "STRIPE_API_BASE")
    }
    environment |= {"BILLING_DATA_DIR": str(tmp_path), "STRIPE_API_BASE": "http://stripe.example.com"}
    billing = Path(sys.executable).parent / "billing"
    done = subprocess.run(
        [str(billing), *command], env=environment, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert done.returncode == 1 and "Traceback" not in output, output
    assert output.startswith("error: refusing to start: ") and len(output.splitlines()) == 1, output
    assert "BILLING_ENCRYPTION_KEYS is empty" in output and "not HTTPS" in output, output
    assert not (tmp_path / "encryption.keys").exists()
