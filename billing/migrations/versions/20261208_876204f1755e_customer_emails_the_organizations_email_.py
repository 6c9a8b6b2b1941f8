"""Customer emails: the organizations' email settings (read and written by their tenant
role, like the other billing settings), and one row per email, claimed before it is sent,
under row-level security.

Revision ID: 876204f1755e
Revises: 4ccbab7ddda2
Create Date: 2026-12-08 01:19:15.468343
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "876204f1755e"
down_revision: str | None = "4ccbab7ddda2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"
TENANT_CONDITION = "organization_id = current_setting('billing.organization_id', true)"


def upgrade() -> None:
    op.create_table(
        "customer_emails",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.String(length=32),
            nullable=False,
            comment="invoice_finalized, payment_receipt, payment_failed, trial_will_end or card_expiring.",
        ),
        sa.Column(
            "key",
            sa.String(length=128),
            nullable=False,
            comment="What it is about: the event's id, or a card's id and expiry month.",
        ),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column(
            "status",
            sa.String(length=16),
            nullable=False,
            comment="sending (claimed), sent, or failed (the server refused it for good; `error` says why).",
        ),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("sent_at", postgresql.TIMESTAMP(timezone=True, precision=3), nullable=True),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("customer_emails_organization_id_id_key", "customer_emails", ["organization_id", "id"], unique=True)
    op.create_index("customer_emails_organization_id_idx", "customer_emails", ["organization_id"], unique=False)
    op.create_index(
        "customer_emails_organization_id_kind_key_key",
        "customer_emails",
        ["organization_id", "kind", "key"],
        unique=True,
    )
    op.add_column(
        "organizations",
        sa.Column(
            "emails",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text(
                '\'{"replyTo": null, "portalUrl": null, "fromAddress": null, "cardExpiring": false, "trialWillEnd": false, "paymentFailed": false, "paymentReceipt": false, "invoiceFinalized": false}\''
            ),
            nullable=False,
            comment="Which emails its customers get, from whom, and where they manage their billing (GET/PATCH /v1/billing-settings).",
        ),
    )
    op.execute(f"GRANT SELECT (emails), UPDATE (emails) ON organizations TO {TENANT_ROLE}")
    op.execute("ALTER TABLE customer_emails ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON customer_emails TO {TENANT_ROLE} "
        f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON customer_emails")
    op.execute(f"REVOKE SELECT (emails), UPDATE (emails) ON organizations FROM {TENANT_ROLE}")
    op.drop_column("organizations", "emails")
    op.drop_index("customer_emails_organization_id_kind_key_key", table_name="customer_emails")
    op.drop_index("customer_emails_organization_id_idx", table_name="customer_emails")
    op.drop_index("customer_emails_organization_id_id_key", table_name="customer_emails")
    op.drop_table("customer_emails")
