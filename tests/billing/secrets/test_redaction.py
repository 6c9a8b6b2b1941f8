"""redact(): secrets and card numbers never survive it; ordinary ids and text do."""

from __future__ import annotations

import logging
import string

import pytest
from hypothesis import assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from billing.organizations.keys import new_key
from billing.payments.card_numbers import luhn_valid
from billing.secrets.redaction import install_log_redaction, redact

pytestmark = pytest.mark.unit

_KEY_BODY = st.text(alphabet=string.ascii_letters + string.digits, min_size=8, max_size=60)
_PREFIX = st.sampled_from(["sk_", "sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "whsec_"])
_AROUND = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30).map(lambda t: t + " ")


@hsettings(max_examples=300)
@given(prefix=_PREFIX, body=_KEY_BODY, before=_AROUND, after=_AROUND)
def test_a_secret_anywhere_in_text_is_gone(prefix: str, body: str, before: str, after: str) -> None:
    assume(body not in before + after)
    secret = prefix + body
    clean = redact(f"{before}{secret} {after}")
    assert secret not in clean and body not in clean
    assert prefix + "****" in clean


@hsettings(max_examples=200)
@given(number=st.text(alphabet="0123456789", min_size=15, max_size=15), before=_AROUND, after=_AROUND)
def test_a_card_number_anywhere_in_text_is_gone(number: str, before: str, after: str) -> None:
    card = next(number + digit for digit in "0123456789" if luhn_valid(number + digit))
    grouped = " ".join(card[i : i + 4] for i in range(0, 16, 4))
    assume(card not in (before + after).replace(" ", ""))
    for written in (card, grouped):
        clean = redact(f"{before}{written} {after}")
        assert written not in clean and card not in clean.replace(" ", "")


def test_our_keys_bearer_credentials_and_ordinary_text() -> None:
    key = new_key()
    assert key.secret not in redact(f"key={key.secret}")
    assert redact("Authorization: Bearer abc.def-ghi_jkl") == "Authorization: Bearer ****"
    ordinary = (
        "cus_NffrFeUfNV2Hib pm_1Pgag7B7WZ01zgkW evt_3a41 123e4567-e89b-12d3-a456-426614174000 task_abcdefghij 1999"
    )
    assert redact(ordinary) == ordinary


def test_log_records_are_redacted_whoever_formats_them() -> None:
    install_log_redaction()
    secret = "sk_live_" + "A1b2C3d4E5f6"
    record = logging.getLogger("some.library").makeRecord(
        "some.library", logging.ERROR, __file__, 1, "key %s card %s", (secret, "4242424242424242"), None
    )
    assert record.getMessage() == "key sk_live_**** card [card number]"
    try:
        raise ValueError(f"refused {secret}")
    except ValueError as error:
        failed = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), (type(error), error, error.__traceback__)
        )
    assert secret not in logging.Formatter().format(failed) and "sk_live_****" in failed.exc_text  # type: ignore[operator]
