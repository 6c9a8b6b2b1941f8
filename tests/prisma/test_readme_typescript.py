"""The README's TypeScript service (section "Schema sync") type-checks and runs: the
generated Prisma Client with the tenant-scoped extension, on the test database, sees one
organization's customers, payment methods and prices and nothing of another's."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from decimal import Decimal

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.models import Customer, CustomerPaymentMethod, Organization, Price, Product
from contracts.enums import PaymentMethodType, PriceType
from contracts.settings import PROJECT_ROOT
from tests.prisma.cross_orm import TSX

SECTION = "## Schema sync"
TSC = [
    shutil.which("npx") or "npx",
    "--no-install",
    "tsc",
    "--noEmit",
    "--strict",
    "--target",
    "ES2022",
    "--module",
    "ESNext",
    "--moduleResolution",
    "Bundler",
    "--allowImportingTsExtensions",
    "--skipLibCheck",
]


def readme_example() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index(SECTION) :]
    section = section[: section.index("\n## ", 1)]
    (block,) = re.findall(r"```ts\n(.*?)```", section, re.DOTALL)
    return block


async def run(*command: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, output.decode()


async def seed(sessions: async_sessionmaker[AsyncSession], organization: str, *, address: object) -> dict[str, str]:
    keys = {name: f"{name}_{uuid.uuid4().hex[:12]}" for name in ("cus", "pm", "prod", "price")}
    async with sessions() as session:
        session.add(Organization(id=organization, name="Example"))
        await session.flush()
        session.add(Customer(id=keys["cus"], organization_id=organization, address=address))
        session.add(Product(id=keys["prod"], organization_id=organization, name="Seats"))
        await session.flush()
        session.add(
            CustomerPaymentMethod(
                id=keys["pm"],
                organization_id=organization,
                customer_id=keys["cus"],
                gateway_payment_method_id=f"pm_gw_{uuid.uuid4().hex}",
                type=PaymentMethodType.card,
            )
        )
        session.add(
            Price(
                id=keys["price"],
                organization_id=organization,
                product_id=keys["prod"],
                type=PriceType.one_time,
                currency="eur",
                unit_amount_decimal=Decimal("0.000000000001"),
            )
        )
        await session.commit()
    return keys


async def test_the_readme_typescript_service_runs_scoped_to_one_organization(
    database_url: str, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    mine, theirs = f"org_{uuid.uuid4().hex[:12]}", f"org_{uuid.uuid4().hex[:12]}"
    keys = await seed(session_factory, mine, address=None)
    await seed(session_factory, theirs, address=None)
    # beside prisma/, as the README's imports expect; removed after the run
    example = PROJECT_ROOT / f".readme-example-{uuid.uuid4().hex[:8]}.mts"
    example.write_text(readme_example())
    try:
        status, output = await run(*TSC, str(example))
        assert status == 0, output
        connection_string = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        env = {"PATH": os.environ["PATH"], "DATABASE_URL": connection_string, "ORGANIZATION_ID": mine}
        status, output = await run(str(TSX), str(example), env=env)
    finally:
        example.unlink()
    assert status == 0, output
    assert json.loads(output) == {
        "customers": [{"id": keys["cus"], "paymentMethods": [keys["pm"]]}],
        "prices": ["0.000000000001 eur"],
        "visibleCustomers": 1,
    }
