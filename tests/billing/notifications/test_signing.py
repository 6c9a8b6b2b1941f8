"""A delivery's headers verify with the Standard Webhooks library, as a receiver checks
them; a tampered body, an old timestamp or another secret does not."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from billing import clock
from billing.notifications.signing import new_secret, signed_headers

BODY = json.dumps({"id": "evt_1", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}).encode()


def test_a_delivery_verifies_with_the_standard_webhooks_library() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    headers = signed_headers([secret], "evt_1", clock.now(), BODY)
    assert Webhook(secret).verify(BODY, headers)["id"] == "evt_1"
    assert headers["webhook-id"] == "evt_1"


def test_a_tampered_body_an_old_timestamp_or_another_secret_fails() -> None:
    secret = new_secret()
    headers = signed_headers([secret], "evt_1", clock.now(), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"cus_1", b"cus_2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    old = signed_headers([secret], "evt_1", clock.now() - timedelta(minutes=10), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, old)


def test_during_a_rotation_both_secrets_sign() -> None:
    current, previous = new_secret(), new_secret()
    headers = signed_headers([current, previous], "evt_1", clock.now(), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (current, previous):
        Webhook(secret).verify(BODY, headers)
