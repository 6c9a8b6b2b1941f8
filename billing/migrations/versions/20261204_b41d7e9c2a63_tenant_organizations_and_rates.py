"""The tenant role's last open doors: `organizations` and `exchange_rates`.

As `billing_tenant` an organization sees only its own `organizations` row and never its
encrypted Stripe secrets (column privileges: it may write them, as connecting a Stripe
account does, but only sessions of the connecting role read them, by the id authentication
gave: billing.organizations.stripe_account.organization_with_secrets), and `exchange_rates`
is reference data it reads but never writes.

Revision ID: b41d7e9c2a63
Revises: 7c3e5a1d9b20
Create Date: 2026-12-04 15:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b41d7e9c2a63"
down_revision: str | None = "7c3e5a1d9b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"
ORGANIZATION_CONDITION = "id = current_setting('billing.organization_id', true)"
# every column but stripe_secret_key_encrypted and stripe_webhook_secret_encrypted
ORGANIZATION_SAFE_COLUMNS = "id, name, reporting_currency, created_at, updated_at"
# what a tenant's own commands change (connect and disconnect a Stripe account): written,
# never read back
ORGANIZATION_WRITABLE_COLUMNS = "stripe_secret_key_encrypted, stripe_webhook_secret_encrypted, updated_at"


def upgrade() -> None:
    op.execute("ALTER TABLE organizations ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON organizations TO {TENANT_ROLE} "
        f"USING ({ORGANIZATION_CONDITION}) WITH CHECK ({ORGANIZATION_CONDITION})"
    )
    # a column grant cannot narrow a table grant: the table grant goes first
    op.execute(f"REVOKE ALL ON organizations FROM {TENANT_ROLE}")
    op.execute(f"GRANT SELECT ({ORGANIZATION_SAFE_COLUMNS}) ON organizations TO {TENANT_ROLE}")
    op.execute(f"GRANT UPDATE ({ORGANIZATION_WRITABLE_COLUMNS}) ON organizations TO {TENANT_ROLE}")
    op.execute(f"REVOKE ALL ON exchange_rates FROM {TENANT_ROLE}")
    op.execute(f"GRANT SELECT ON exchange_rates TO {TENANT_ROLE}")


def downgrade() -> None:
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON exchange_rates TO {TENANT_ROLE}")
    op.execute(f"REVOKE ALL ON organizations FROM {TENANT_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON organizations TO {TENANT_ROLE}")
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON organizations")
    op.execute("ALTER TABLE organizations DISABLE ROW LEVEL SECURITY")
