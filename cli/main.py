"""`billing`: the command line of the platform."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from cli.analytics import analytics_app
from cli.errors import fail, id_of, run, run_async, text_of
from cli.heap import settle_heap
from cli.scheduler import renewals_app, scheduler
from contracts.settings import Settings, get_settings, unsafe_settings
from stack.cli import stack_app

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from billing.fx.service import ImportResult
    from billing.models import ApiKey

T = TypeVar("T")

app = typer.Typer(help="Self-hosted, Stripe-like billing: stack, migrations, API, consumers.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
org_app = typer.Typer(help="Organizations and their API keys.", no_args_is_help=True)
keys_app = typer.Typer(help="An organization's API keys.", no_args_is_help=True)
org_app.add_typer(keys_app, name="keys")
app.add_typer(org_app, name="org")
contracts_app = typer.Typer(help="Message contracts for other systems.", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
app.add_typer(analytics_app, name="analytics")  # migrate, consume, replay, usage
app.add_typer(renewals_app, name="renewals")  # run
app.command()(scheduler)

OrganizationId = Annotated[
    str, typer.Argument(metavar="ORGANIZATION", help="organization id (org_...)", callback=id_of("organization"))
]
KeyId = Annotated[str, typer.Argument(metavar="KEY_ID", help="API key id (key_...)", callback=id_of("api_key"))]
# the limit of the name columns (prisma/schema.prisma) and of the API's requests
Name = Annotated[str, typer.Argument(metavar="NAME", callback=text_of(200))]


def _logging(level: str = "INFO") -> None:
    from billing.secrets.redaction import install_log_redaction

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    install_log_redaction()  # no secret or card number in a log line, whichever library writes it


def _safe_settings() -> Settings:
    """The settings of a process that holds secrets, or a message saying why it will not start."""
    settings = get_settings()
    problems = unsafe_settings(settings)
    if problems:
        fail("refusing to start: " + " ".join(problems))
    return settings


async def _until_signalled(*runners: Callable[[asyncio.Event], Awaitable[object]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(*(runner(stop) for runner in runners))


@app.command()
def migrate() -> None:
    """Apply the Alembic migrations (billing/migrations) to DATABASE_URL."""
    from billing.db.migrate import upgrade

    run(upgrade)
    typer.echo("database is at the latest migration")


@app.command()
def api(host: str = typer.Option(None), port: int = typer.Option(None)) -> None:
    """Run the HTTP API (Litestar under uvicorn)."""
    import uvicorn

    from api.app import create_app

    settings = _safe_settings()
    _logging()
    application = create_app(settings)
    settle_heap()
    uvicorn.run(application, host=host or settings.api_host, port=port or settings.api_port, log_level="warning")


@app.command()
def consume() -> None:
    """Run the command consumer, the outbox relay, the payment worker, the scheduler, the
    webhook sender and the customer emails until SIGINT/SIGTERM."""
    from consumers.app import run_command_consumer
    from consumers.customer_emails import run_customer_emails
    from consumers.notifications import run_notifications
    from consumers.payment_worker import run_payment_worker
    from consumers.scheduler import run_scheduler

    _safe_settings()
    _logging()
    settle_heap()
    asyncio.run(
        _until_signalled(
            run_command_consumer, run_payment_worker, run_scheduler, run_notifications, run_customer_emails
        )
    )


async def _serve_api(stop: asyncio.Event) -> None:
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]  # uvicorn's hook, unannotated; _until_signalled handles the signals
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


@app.command()
def dev(
    seed: bool = typer.Option(True, help="Create the demo organization if it does not exist"),
    analytics: bool = typer.Option(
        True,
        help="Run the analytics consumer in this process too (chDB, the embedded default, lets one process "
        "open its directory; with a ClickHouse server, --no-analytics and `billing analytics consume` apart)",
    ),
) -> None:
    """The embedded default: the API and every consumer in one process."""
    from analytics.consumer import run_analytics_consumer
    from consumers.app import run_command_consumer
    from consumers.customer_emails import run_customer_emails
    from consumers.notifications import run_notifications
    from consumers.payment_worker import run_payment_worker
    from consumers.scheduler import run_scheduler

    settings = _safe_settings()
    _logging()
    if seed:
        secret = run_async(_seed_demo)
        typer.echo(dev_banner(f"http://{settings.api_host}:{settings.api_port}", secret))
    runners: list[Callable[[asyncio.Event], Awaitable[object]]] = [
        run_command_consumer,
        run_payment_worker,
        run_scheduler,
        run_notifications,
        run_customer_emails,
        _serve_api,
    ]
    if analytics:  # usage.events and billing.events -> ClickHouse, beside the API
        runners.append(lambda stop: run_analytics_consumer(settings, stop))
    settle_heap()
    asyncio.run(_until_signalled(*runners))


def dev_banner(base: str, secret: str) -> str:
    """What `billing dev` prints: each URL in it answers (tests/cli/test_errors.py asks them).
    The API line shows a route: `/v1` alone is none (404)."""
    return (
        f"\n  API            {base}/v1/customers  (and the other routes under /v1/: the docs below)\n"
        f"  Health         {base}/health\n"
        f"  OpenAPI docs   {base}/schema  (Swagger UI: {base}/schema/swagger)\n"
        f"  Demo API key   {secret}\n\n"
        f"  curl -s {base}/v1/customers -H 'Authorization: Bearer {secret}'\n\n"
        f"  Dashboard      {base}/dashboard  (sign in with the key)\n"
    )


async def _seed_demo() -> str:
    """The demo organization's key, kept in .data/ so that repeated runs show the same one."""
    from billing.db.sessions import create_engine, create_session_factory
    from billing.organizations.service import authenticate, create_organization

    key_file = get_settings().data_dir / "demo-api-key"
    engine = create_engine(pool_size=1)
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            if key_file.exists() and await authenticate(session, key_file.read_text().strip()):
                return key_file.read_text().strip()
            _, key = await create_organization(session, "Demo organization")
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(key.secret + "\n")
        key_file.chmod(0o600)
        return key.secret
    finally:
        await engine.dispose()


@org_app.command("create")
def org_create(name: Name) -> None:
    """Create an organization; prints its first secret key (shown once)."""

    async def create() -> None:
        from billing.db.sessions import create_engine, create_session_factory
        from billing.organizations.service import create_organization

        engine = create_engine(pool_size=1)
        try:
            async with create_session_factory(engine)() as session, session.begin():
                organization, key = await create_organization(session, name)
            typer.echo(json.dumps({"organization": organization.id, "apiKeyId": key.id, "secret": key.secret}))
        finally:
            await engine.dispose()

    run_async(create)


def _with_tenant(organization_id: str, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """`action(session)` in a tenant session of an organization that exists (a tenant
    session of a made-up one would simply see no rows)."""
    return run_async(lambda: _in_tenant(organization_id, action))


async def _in_tenant(organization_id: str, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from billing.db.sessions import create_engine, create_session_factory, tenant_session
    from billing.organizations.service import require_organization

    engine = create_engine(pool_size=1)
    try:
        async with tenant_session(create_session_factory(engine), organization_id) as session, session.begin():
            await require_organization(session, organization_id)
            return await action(session)
    finally:
        await engine.dispose()


@keys_app.command("list")
def keys_list(organization: OrganizationId) -> None:
    """List an organization's keys (prefixes only)."""
    from billing.organizations.service import list_api_keys
    from contracts.resources import ApiKey

    keys = _with_tenant(organization, list_api_keys)
    for key in keys:
        typer.echo(ApiKey.model_validate(key).model_dump_json())


@keys_app.command("create")
def keys_create(
    organization: OrganizationId, name: Annotated[str, typer.Option(callback=text_of(200))] = "CLI key"
) -> None:
    """Create a key; prints the secret once."""
    from billing.organizations.keys import new_key
    from billing.organizations.service import issue_api_key

    key = new_key()
    _with_tenant(organization, lambda s: issue_api_key(s, key.id, name, key.secret_hash, key.prefix))
    typer.echo(json.dumps({"apiKeyId": key.id, "secret": key.secret}))


def _with_active_key(organization: str, key_id: str, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """`_with_tenant` for an action on one of the organization's active keys: a missing
    key says where to look (a revoked or expired key, or another organization's, is missing too)."""
    from billing.errors import ResourceMissing

    async def hinted(session: AsyncSession) -> T:
        try:
            return await action(session)
        except ResourceMissing as error:
            error.message += f" among the active keys of {organization} (`billing org keys list {organization}`)"
            raise

    return _with_tenant(organization, hinted)


@keys_app.command("roll")
def keys_roll(
    organization: OrganizationId,
    key_id: KeyId,
    expires_in_seconds: Annotated[
        int, typer.Option(min=0, max=7 * 24 * 3600, help="how long the old key keeps working (0: revoked now)")
    ] = 0,
) -> None:
    """Roll a key: a NEW key (new id, new secret) replaces it; prints both, the secret once.

    The new key takes the old one's name; the old one stops now or after --expires-in-seconds."""
    from billing.db.sessions import get_one
    from billing.models import ApiKey
    from billing.organizations.keys import new_key
    from billing.organizations.service import roll_api_key

    key = new_key()

    async def roll(session: AsyncSession) -> ApiKey:
        await roll_api_key(session, key_id, key.id, key.secret_hash, key.prefix, expires_in_seconds)
        old = await get_one(session, ApiKey, ApiKey.id, key_id)
        assert old is not None  # roll_api_key refuses a key that is not there
        return old

    old = _with_active_key(organization, key_id, roll)
    stops = old.revoked_at or old.expires_at
    assert stops is not None  # rolled: revoked now or expiring
    typer.echo(
        json.dumps(
            {
                "apiKeyId": key.id,
                "secret": key.secret,
                "replaces": key_id,
                "oldKeyStopsWorkingAt": stops.isoformat().replace("+00:00", "Z"),
            }
        )
    )


@contracts_app.command("export")
def contracts_export(
    out: Path = typer.Option(..., "--out", help="Directory to write the JSON Schema and AsyncAPI files into"),
) -> None:
    """Write commands/events/usage JSON Schema and an AsyncAPI 3.0 document of the Kafka topics."""
    from contracts.commands import all_commands
    from contracts.export import export_documents
    from producers.topics import PARTITIONS

    documents = export_documents(all_commands(), partitions=dict(PARTITIONS))
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, document in documents.items():
            (out / name).write_text(json.dumps(document, indent=2) + "\n")
            typer.echo(out / name)
    except OSError as error:
        fail(f"cannot write to {out}: {error.strerror or error}")


@keys_app.command("revoke")
def keys_revoke(organization: OrganizationId, key_id: KeyId) -> None:
    """Revoke a key at once."""
    from billing.organizations.service import revoke_api_key

    _with_active_key(organization, key_id, lambda s: revoke_api_key(s, key_id))
    typer.echo(f"revoked {key_id}")


# -- exchange rates ---------------------------------------------------------------------
fx_app = typer.Typer(help="Exchange rates: reference data for reporting, never for charging.", no_args_is_help=True)
app.add_typer(fx_app, name="fx")


@fx_app.command("import")
def fx_import(
    path: str = typer.Argument(..., help="CSV with a header: base,quote,rate,source,as_of"),
    replace: bool = typer.Option(False, help="Overwrite stored rates of the same base, quote, source and as_of"),
) -> None:
    """Load exchange rates from a CSV, all or nothing (billing/fx/rates.py parses, billing/fx/service.py stores)."""
    from pathlib import Path

    from billing.db.sessions import create_engine, create_session_factory
    from billing.fx.rates import RatesCsvError, parse_rates_csv
    from billing.fx.service import ConflictingRates, import_rates

    try:
        rates = parse_rates_csv(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RatesCsvError) as error:
        fail(f"{path}: {error}")

    async def store() -> ImportResult:
        engine = create_engine(pool_size=1)
        try:
            async with create_session_factory(engine)() as session, session.begin():
                return await import_rates(session, rates, replace=replace)
        finally:
            await engine.dispose()

    try:
        result = run_async(store)
    except ConflictingRates as error:
        fail(f"{path}: nothing imported; rates differ from the stored ones (use --replace):\n{error}")
    except ValueError as error:
        fail(f"{path}: nothing imported: {error}")
    typer.echo(json.dumps({"inserted": result.inserted, "unchanged": result.unchanged, "replaced": result.replaced}))


if __name__ == "__main__":
    app()
