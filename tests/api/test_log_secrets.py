"""Logs hold no secrets and no card data: traffic that carries API secrets, Stripe keys,
webhook secrets and card-like numbers, through the API and a failing command's dead
letter, and not one of them in a log record (at DEBUG) or a dead-letter reason."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from consumers.app import ROUTES
from consumers.pipeline import apply_batch
from consumers.registry import Applied, CommandRouter
from contracts.commands import Command
from tests.api.conftest import TenantClient, new_tenant
from tests.api.test_card_guard import log_lines  # noqa: F401  (the fixture: every record at DEBUG)
from tests.api.test_payment_methods import connected_tenant
from tests.consumers.test_pipeline import command, record

CARD = "4000 0566 5566 5556"
leaky = CommandRouter()


class _Leak(Command[Any]):
    command_type: ClassVar[str] = "test.leak"

    value: str


@leaky.handles(_Leak)
async def _leak(session: Any, payload: _Leak) -> Applied[Any]:
    """Postgres quotes the value it refuses in its message; the handler then ends the
    transaction, so the command fails alone every time and goes to the dead letters."""
    try:
        await session.execute(text("SELECT CAST(:value AS integer)"), {"value": payload.value})
    except DBAPIError as error:
        await session.execute(text("ROLLBACK"))
        raise RuntimeError(f"could not use {payload.value}") from error
    raise AssertionError("the cast cannot succeed")


def _found(haystack: str, needles: dict[str, str]) -> list[str]:
    return [name for name, needle in needles.items() if needle in haystack]


async def test_no_secret_and_no_card_number_reaches_a_log_or_a_dead_letter(
    api: Any, api_client: TenantClient, session_factory: Any, log_lines: list[str]
) -> None:
    connected = await connected_tenant(api, session_factory, "Log scan")
    created = await api_client.post("/v1/api-keys", json={"name": "scanned"})
    new_secret = created.json()["secret"]
    live_key = "sk_live_" + secrets.token_hex(12)
    webhook_secret = "whsec_" + secrets.token_hex(12)
    needles = {
        "new API secret": new_secret,
        "tenant's API secret": api_client.tenant.secret,
        "Stripe secret key": connected.secret_key,
        "Stripe webhook secret": connected.webhook_secret,
        "made-up live key": live_key,
        "webhook secret in a body": webhook_secret,
        "card number": CARD.replace(" ", ""),
        "card number as written": CARD,
    }
    # the secrets travel as credentials, bodies, headers and query strings
    assert (await api.get("/v1/customers", headers={"Authorization": f"Bearer {new_secret}"})).status_code == 200
    assert (await api.get("/v1/customers", headers={"Authorization": f"Bearer {live_key}"})).status_code == 401
    assert (await api_client.post("/v1/customers", json={"metadata": {"card": CARD}})).status_code == 400
    assert (await api_client.get("/v1/customers", params={"email": CARD})).status_code == 400
    assert (
        await api_client.post("/v1/customers", json={"name": "x"}, headers={"Idempotency-Key": CARD})
    ).status_code == 400
    signed_wrong = {"Stripe-Signature": f"t=1,v1={webhook_secret}"}
    hook = await api.post(
        f"/v1/webhooks/stripe/{connected.client.tenant.organization_id}", content=b"{}", headers=signed_wrong
    )
    assert hook.status_code == 400
    refused = await connected.client.request(
        "PUT", "/v1/stripe-account", json={"secretKey": live_key, "webhookSecret": webhook_secret}
    )
    assert refused.status_code in (400, 200), refused.text
    # a command whose payload holds them fails in Postgres, which quotes the value, then alone until dead-lettered
    tenant = await new_tenant(session_factory, "Log scan leak")
    leak = command(tenant.organization_id, _Leak.command_type, {"value": f"{live_key} {webhook_secret} {CARD}"})
    result = await apply_batch(session_factory, {**ROUTES, **leaky.routes}, [record(leak, 0)])
    assert len(result.dead_letters) == 1
    reason = result.dead_letters[0].reason
    assert "could not use" in reason and "sk_live_****" in reason  # the reason is kept, the secret is not

    logged = "\n".join(log_lines)
    assert "failed alone" in logged  # the failure was logged, with its exception: what the scan reads
    # not vacuous: a line was written that held the secrets, and holds their marks instead
    assert any("sk_live_****" in line and "[card number]" in line for line in log_lines), log_lines
    assert _found(logged, needles) == [], [line for line in log_lines if _found(line, needles)][:3]
    assert _found(reason, needles) == [], reason
