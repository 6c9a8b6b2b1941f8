"""Credit notes and their lines (both under row-level security), the invoices' pre- and
post-payment credit note amounts, and the invoice lines' tenant-scoped key the credit note
lines reference.

Revision ID: 3c0a7570a9e9
Revises: 91ed7c1ca9dc
Create Date: 2026-12-07 09:17:01.794410
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3c0a7570a9e9"
down_revision: str | None = "91ed7c1ca9dc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"
TENANT_CONDITION = "organization_id = current_setting('billing.organization_id', true)"


def upgrade() -> None:
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=80), nullable=False),
        sa.Column(
            "status",
            sa.Enum("issued", "void", name="CreditNoteStatus"),
            server_default=sa.text("'issued'"),
            nullable=False,
        ),
        sa.Column("type", sa.Enum("pre_payment", "post_payment", "mixed", name="CreditNoteType"), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "subtotal",
            sa.BigInteger(),
            nullable=False,
            comment="The lines' amounts (minor units, inclusive taxes within them).",
        ),
        sa.Column(
            "tax",
            sa.BigInteger(),
            nullable=False,
            comment="Every tax credited with the lines, inclusive and exclusive.",
        ),
        sa.Column(
            "total",
            sa.BigInteger(),
            nullable=False,
            comment="subtotal plus the exclusive taxes: what the credit note is worth.",
        ),
        sa.Column("pre_payment_amount", sa.BigInteger(), nullable=False),
        sa.Column("post_payment_amount", sa.BigInteger(), nullable=False),
        sa.Column("refund_amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "credit_amount",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Credited to the customer's balance (applied to its next invoices).",
        ),
        sa.Column("out_of_band_amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("refund_id", sa.String(length=64), nullable=True),
        sa.Column(
            "reason",
            sa.String(length=32),
            nullable=True,
            comment="duplicate, fraudulent, order_change or product_unsatisfactory.",
        ),
        sa.Column("memo", sa.String(length=5000), nullable=True),
        sa.Column("voided_at", postgresql.TIMESTAMP(timezone=True, precision=3), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "customer_id"],
            ["customers.organization_id", "customers.id"],
            name="credit_notes_organization_id_customer_id_fkey",
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "invoice_id"],
            ["invoices.organization_id", "invoices.id"],
            name="credit_notes_organization_id_invoice_id_fkey",
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "refund_id"],
            ["refunds.organization_id", "refunds.id"],
            name="credit_notes_organization_id_refund_id_fkey",
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("credit_notes_organization_id_id_key", "credit_notes", ["organization_id", "id"], unique=True)
    op.create_index("credit_notes_organization_id_idx", "credit_notes", ["organization_id"], unique=False)
    op.create_index(
        "credit_notes_organization_id_invoice_id_idx", "credit_notes", ["organization_id", "invoice_id"], unique=False
    )
    op.create_index(
        "credit_notes_organization_id_number_key", "credit_notes", ["organization_id", "number"], unique=True
    )
    op.create_index(
        "credit_notes_organization_id_refund_id_key", "credit_notes", ["organization_id", "refund_id"], unique=True
    )
    # the credit note lines' tenant-scoped key to their invoice line needs this first
    op.create_index(
        "invoice_line_items_organization_id_id_key", "invoice_line_items", ["organization_id", "id"], unique=True
    )
    op.create_table(
        "credit_note_line_items",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("credit_note_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.Enum("invoice_line_item", "custom_line_item", name="CreditNoteLineType"), nullable=False),
        sa.Column("invoice_line_item_id", sa.String(length=64), nullable=True),
        sa.Column(
            "position",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="The line's place on its credit note: 0, 1, 2, ...",
        ),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column(
            "unit_amount_decimal",
            sa.Numeric(precision=30, scale=12),
            nullable=True,
            comment="Minor units (a custom line's, or the invoice line's unit amount).",
        ),
        sa.Column(
            "amount", sa.BigInteger(), nullable=False, comment="Minor units credited, inclusive taxes within them."
        ),
        sa.Column(
            "tax_amounts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'"),
            nullable=False,
            comment="Each tax rate's tax credited with this line, rounded once.",
        ),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "credit_note_id"],
            ["credit_notes.organization_id", "credit_notes.id"],
            name="credit_note_line_items_organization_id_credit_note_id_fkey",
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "invoice_line_item_id"],
            ["invoice_line_items.organization_id", "invoice_line_items.id"],
            name="credit_note_line_items_organization_id_invoice_line_item_i_fkey",
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "credit_note_line_items_credit_note_id_idx", "credit_note_line_items", ["credit_note_id"], unique=False
    )
    op.create_index(
        "credit_note_line_items_organization_id_idx", "credit_note_line_items", ["organization_id"], unique=False
    )
    op.create_index(
        "credit_note_line_items_organization_id_invoice_line_item_id_idx",
        "credit_note_line_items",
        ["organization_id", "invoice_line_item_id"],
        unique=False,
    )
    op.add_column(
        "invoices",
        sa.Column(
            "pre_payment_credit_notes_amount",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="What issued credit notes took off the amount due before it was paid (minor units).",
        ),
    )
    op.add_column(
        "invoices",
        sa.Column(
            "post_payment_credit_notes_amount",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="What issued credit notes gave back of the amount paid: refunded, credited to the\ncustomer's balance or out of band (minor units).",
        ),
    )
    for table in ("credit_notes", "credit_note_line_items"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {TENANT_ROLE} "
            f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
        )


def downgrade() -> None:
    for table in ("credit_notes", "credit_note_line_items"):
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.drop_column("invoices", "post_payment_credit_notes_amount")
    op.drop_column("invoices", "pre_payment_credit_notes_amount")
    op.drop_index(
        "credit_note_line_items_organization_id_invoice_line_item_id_idx", table_name="credit_note_line_items"
    )
    op.drop_index("credit_note_line_items_organization_id_idx", table_name="credit_note_line_items")
    op.drop_index("credit_note_line_items_credit_note_id_idx", table_name="credit_note_line_items")
    op.drop_table("credit_note_line_items")
    op.drop_index("invoice_line_items_organization_id_id_key", table_name="invoice_line_items")
    op.drop_index("credit_notes_organization_id_refund_id_key", table_name="credit_notes")
    op.drop_index("credit_notes_organization_id_number_key", table_name="credit_notes")
    op.drop_index("credit_notes_organization_id_invoice_id_idx", table_name="credit_notes")
    op.drop_index("credit_notes_organization_id_idx", table_name="credit_notes")
    op.drop_index("credit_notes_organization_id_id_key", table_name="credit_notes")
    op.drop_table("credit_notes")
    for enum_name in ("CreditNoteLineType", "CreditNoteType", "CreditNoteStatus"):
        sa.Enum(name=enum_name).drop(op.get_bind(), checkfirst=True)
