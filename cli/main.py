"""`billing`: the command line of the platform."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path

import typer

from analytics.cli import analytics_app  # analytics (issue 6)
from cli.heap import settle_heap
from contracts.settings import get_settings
from stack.cli import stack_app

app = typer.Typer(help="Self-hosted, Stripe-like billing: stack, migrations, API, consumers.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
org_app = typer.Typer(help="Organizations and their API keys.", no_args_is_help=True)
keys_app = typer.Typer(help="An organization's API keys.", no_args_is_help=True)
org_app.add_typer(keys_app, name="keys")
app.add_typer(org_app, name="org")
contracts_app = typer.Typer(help="Message contracts for other systems.", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
app.add_typer(analytics_app, name="analytics")  # analytics (issue 6): migrate, consume, replay, usage


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


async def _until_signalled(*runners) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(*(runner(stop) for runner in runners))


@app.command()
def migrate() -> None:
    """Apply the Alembic migrations (billing/migrations) to DATABASE_URL."""
    from billing.migrate import upgrade

    upgrade()
    typer.echo("database is at the latest migration")


@app.command()
def api(host: str = typer.Option(None), port: int = typer.Option(None)) -> None:
    """Run the HTTP API (Litestar under uvicorn)."""
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    _logging()
    application = create_app(settings)
    settle_heap()
    uvicorn.run(application, host=host or settings.api_host, port=port or settings.api_port, log_level="warning")


@app.command()
def consume() -> None:
    """Run the command consumer and the outbox relay until SIGINT/SIGTERM."""
    from consumers.app import run_command_consumer

    _logging()
    settle_heap()
    asyncio.run(_until_signalled(run_command_consumer))


async def _serve_api(stop: asyncio.Event) -> None:
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
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
    from analytics.consumer import run_analytics_consumer  # analytics (issue 6)
    from consumers.app import run_command_consumer

    settings = get_settings()
    _logging()
    if seed:
        secret = asyncio.run(_seed_demo())
        base = f"http://{settings.api_host}:{settings.api_port}"
        typer.echo(f"\n  API            {base}/v1")
        typer.echo(f"  OpenAPI docs   {base}/schema  (Swagger UI: {base}/schema/swagger)")
        typer.echo(f"  Demo API key   {secret}\n")
        typer.echo(f"  curl -s {base}/v1/customers -H 'Authorization: Bearer {secret}'\n")
        typer.echo(f"  Dashboard      {base}/dashboard  (sign in with the key)\n")
    runners = [run_command_consumer, _serve_api]
    if analytics:  # analytics (issue 6): usage.events and billing.events -> ClickHouse, beside the API
        runners.append(lambda stop: run_analytics_consumer(settings, stop))
    settle_heap()
    asyncio.run(_until_signalled(*runners))


async def _seed_demo() -> str:
    """The demo organization's key, kept in .data/ so that repeated runs show the same one."""
    from billing.db import create_engine, create_session_factory
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
def org_create(name: str) -> None:
    """Create an organization; prints its first secret key (shown once)."""

    async def run() -> None:
        from billing.db import create_engine, create_session_factory
        from billing.organizations.service import create_organization

        engine = create_engine(pool_size=1)
        try:
            async with create_session_factory(engine)() as session, session.begin():
                organization, key = await create_organization(session, name)
            typer.echo(json.dumps({"organization": organization.id, "apiKeyId": key.id, "secret": key.secret}))
        finally:
            await engine.dispose()

    asyncio.run(run())


async def _with_tenant(organization_id: str, action):  # type: ignore[no-untyped-def]
    from billing.db import create_engine, create_session_factory, tenant_session

    engine = create_engine(pool_size=1)
    try:
        async with tenant_session(create_session_factory(engine), organization_id) as session, session.begin():
            return await action(session)
    finally:
        await engine.dispose()


@keys_app.command("list")
def keys_list(organization: str) -> None:
    """List an organization's keys (prefixes only)."""
    from billing.organizations.service import list_api_keys
    from contracts.resources import ApiKey

    keys = asyncio.run(_with_tenant(organization, list_api_keys))
    for key in keys:
        typer.echo(ApiKey.model_validate(key).model_dump_json())


@keys_app.command("create")
def keys_create(organization: str, name: str = "CLI key") -> None:
    """Create a key; prints the secret once."""
    from billing.organizations.keys import new_key
    from billing.organizations.service import issue_api_key

    key = new_key()
    asyncio.run(_with_tenant(organization, lambda s: issue_api_key(s, key.id, name, key.secret_hash, key.prefix)))
    typer.echo(json.dumps({"apiKeyId": key.id, "secret": key.secret}))


@keys_app.command("roll")
def keys_roll(organization: str, key_id: str, expires_in_seconds: int = 0) -> None:
    """Replace a key with a new secret; the old one is revoked now or after a grace period."""
    from billing.organizations.keys import new_key
    from billing.organizations.service import roll_api_key

    key = new_key()
    asyncio.run(
        _with_tenant(
            organization, lambda s: roll_api_key(s, key_id, key.id, key.secret_hash, key.prefix, expires_in_seconds)
        )
    )
    typer.echo(json.dumps({"apiKeyId": key.id, "secret": key.secret}))


@contracts_app.command("export")
def contracts_export(
    out: Path = typer.Option(..., "--out", help="Directory to write the JSON Schema and AsyncAPI files into"),
) -> None:
    """Write commands/events/usage JSON Schema and an AsyncAPI 3.0 document of the Kafka topics."""
    from consumers.app import ROUTES
    from contracts.export import export_documents
    from producers.topics import PARTITIONS

    documents = export_documents({t: r.payload_model for t, r in ROUTES.items()}, partitions=dict(PARTITIONS))
    out.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        (out / name).write_text(json.dumps(document, indent=2) + "\n")
        typer.echo(out / name)


@keys_app.command("revoke")
def keys_revoke(organization: str, key_id: str) -> None:
    """Revoke a key at once."""
    from billing.organizations.service import revoke_api_key

    asyncio.run(_with_tenant(organization, lambda s: revoke_api_key(s, key_id)))
    typer.echo(f"revoked {key_id}")


# -- exchange rates (issue 4) ------------------------------------------------------------
fx_app = typer.Typer(help="Exchange rates: reference data for reporting, never for charging.", no_args_is_help=True)
app.add_typer(fx_app, name="fx")


@fx_app.command("import")
def fx_import(
    path: str = typer.Argument(..., help="CSV with a header: base,quote,rate,source,as_of"),
    replace: bool = typer.Option(False, help="Overwrite stored rates of the same base, quote, source and as_of"),
) -> None:
    """Load exchange rates from a CSV, all or nothing (billing/fx.py parses, billing/fx_service.py stores)."""
    from pathlib import Path

    from billing.db import create_engine, create_session_factory
    from billing.fx import RatesCsvError, parse_rates_csv
    from billing.fx_service import ConflictingRates, import_rates

    try:
        rates = parse_rates_csv(Path(path).read_text(encoding="utf-8"))
    except (OSError, RatesCsvError) as error:
        typer.echo(f"{path}: {error}", err=True)
        raise typer.Exit(1) from None

    async def run():  # type: ignore[no-untyped-def]
        engine = create_engine(pool_size=1)
        try:
            async with create_session_factory(engine)() as session, session.begin():
                return await import_rates(session, rates, replace=replace)
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except ConflictingRates as error:
        typer.echo(f"{path}: nothing imported; rates differ from the stored ones (use --replace):\n{error}", err=True)
        raise typer.Exit(1) from None
    except ValueError as error:
        typer.echo(f"{path}: nothing imported: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"inserted": result.inserted, "unchanged": result.unchanged, "replaced": result.replaced}))


if __name__ == "__main__":
    app()
