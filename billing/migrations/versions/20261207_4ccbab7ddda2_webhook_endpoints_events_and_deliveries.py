"""Webhook endpoints, the events kept 30 days, and each event's deliveries with their
attempts: four tenant-owned tables under row-level security.

Revision ID: 4ccbab7ddda2
Revises: e44b00f7f2a0
Create Date: 2026-12-07 18:31:08.045544
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "4ccbab7ddda2"
down_revision: str | None = "e44b00f7f2a0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "billing_tenant"
TENANT_CONDITION = "organization_id = current_setting('billing.organization_id', true)"
TABLES = ("webhook_endpoints", "events", "webhook_deliveries", "webhook_delivery_attempts")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="`{object, previousAttributes}`: any resource the API returns, so no one shape.",
        ),
        sa.Column("command_id", sa.String(length=255), nullable=True, comment="The command whose outcome it is."),
        sa.Column("created_at", postgresql.TIMESTAMP(timezone=True, precision=3), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("events_created_at_idx", "events", ["created_at"], unique=False)
    op.create_index("events_organization_id_created_at_idx", "events", ["organization_id", "created_at"], unique=False)
    op.create_index("events_organization_id_id_key", "events", ["organization_id", "id"], unique=True)
    op.create_index("events_organization_id_idx", "events", ["organization_id"], unique=False)
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=5000), nullable=True),
        sa.Column(
            "enabled_events",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment='The event types delivered, or ["*"] for every type.',
        ),
        sa.Column(
            "status",
            sa.Enum("enabled", "disabled", name="WebhookEndpointStatus"),
            server_default=sa.text("'enabled'"),
            nullable=False,
        ),
        sa.Column(
            "disabled_reason",
            sa.String(length=32),
            nullable=True,
            comment="Why it was disabled: `failing` when the platform disabled it, `manual` when the organization did.",
        ),
        sa.Column(
            "failing_since",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            nullable=True,
            comment="Since when every delivery to it has failed; null once one succeeds.",
        ),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("previous_secret_encrypted", sa.Text(), nullable=True),
        sa.Column(
            "previous_secret_expires_at",
            postgresql.TIMESTAMP(timezone=True, precision=3),
            nullable=True,
            comment="Until when the secret before the last rotation still signs deliveries, beside the new one.",
        ),
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
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "webhook_endpoints_organization_id_id_key", "webhook_endpoints", ["organization_id", "id"], unique=True
    )
    op.create_index("webhook_endpoints_organization_id_idx", "webhook_endpoints", ["organization_id"], unique=False)
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("endpoint_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "succeeded", "failed", name="WebhookDeliveryStatus"),
            server_default=sa.text("'pending'"),
            nullable=False,
        ),
        sa.Column(
            "attempt_count",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="How many attempts were made, redeliveries included.",
        ),
        sa.Column(
            "scheduled_attempts",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="How many attempts were made since the delivery was last made pending: the retry schedule's position.",
        ),
        sa.Column("next_attempt_at", postgresql.TIMESTAMP(timezone=True, precision=3), nullable=True),
        sa.Column("leased_until", postgresql.TIMESTAMP(timezone=True, precision=3), nullable=True),
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
            ["organization_id", "endpoint_id"],
            ["webhook_endpoints.organization_id", "webhook_endpoints.id"],
            name="webhook_deliveries_organization_id_endpoint_id_fkey",
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "event_id"],
            ["events.organization_id", "events.id"],
            name="webhook_deliveries_organization_id_event_id_fkey",
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "webhook_deliveries_endpoint_id_event_id_key", "webhook_deliveries", ["endpoint_id", "event_id"], unique=True
    )
    op.create_index(
        "webhook_deliveries_organization_id_event_id_idx",
        "webhook_deliveries",
        ["organization_id", "event_id"],
        unique=False,
    )
    op.create_index(
        "webhook_deliveries_organization_id_id_key", "webhook_deliveries", ["organization_id", "id"], unique=True
    )
    op.create_index("webhook_deliveries_organization_id_idx", "webhook_deliveries", ["organization_id"], unique=False)
    op.create_index(
        "webhook_deliveries_status_next_attempt_at_idx",
        "webhook_deliveries",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_table(
        "webhook_delivery_attempts",
        sa.Column("id", sa.String(length=64), autoincrement=False, nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("attempted_at", postgresql.TIMESTAMP(timezone=True, precision=3), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column(
            "response_status",
            sa.Integer(),
            nullable=True,
            comment="The HTTP status the endpoint answered; null when it did not (timeout, refused, blocked address).",
        ),
        sa.Column(
            "response_body",
            sa.String(length=1000),
            nullable=True,
            comment="The first 1,000 characters of the response body.",
        ),
        sa.Column(
            "error",
            sa.String(length=500),
            nullable=True,
            comment="Why no answer counted: timeout, connection refused, or an address the SSRF guard refuses.",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "delivery_id"],
            ["webhook_deliveries.organization_id", "webhook_deliveries.id"],
            name="webhook_delivery_attempts_organization_id_delivery_id_fkey",
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "webhook_delivery_attempts_organization_id_delivery_id_attem_idx",
        "webhook_delivery_attempts",
        ["organization_id", "delivery_id", "attempted_at"],
        unique=False,
    )
    op.create_index(
        "webhook_delivery_attempts_organization_id_idx", "webhook_delivery_attempts", ["organization_id"], unique=False
    )
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {TENANT_ROLE} "
            f"USING ({TENANT_CONDITION}) WITH CHECK ({TENANT_CONDITION})"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.drop_index("webhook_delivery_attempts_organization_id_idx", table_name="webhook_delivery_attempts")
    op.drop_index(
        "webhook_delivery_attempts_organization_id_delivery_id_attem_idx", table_name="webhook_delivery_attempts"
    )
    op.drop_table("webhook_delivery_attempts")
    op.drop_index("webhook_deliveries_status_next_attempt_at_idx", table_name="webhook_deliveries")
    op.drop_index("webhook_deliveries_organization_id_idx", table_name="webhook_deliveries")
    op.drop_index("webhook_deliveries_organization_id_id_key", table_name="webhook_deliveries")
    op.drop_index("webhook_deliveries_organization_id_event_id_idx", table_name="webhook_deliveries")
    op.drop_index("webhook_deliveries_endpoint_id_event_id_key", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("webhook_endpoints_organization_id_idx", table_name="webhook_endpoints")
    op.drop_index("webhook_endpoints_organization_id_id_key", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_index("events_organization_id_idx", table_name="events")
    op.drop_index("events_organization_id_id_key", table_name="events")
    op.drop_index("events_organization_id_created_at_idx", table_name="events")
    op.drop_index("events_created_at_idx", table_name="events")
    op.drop_table("events")
    op.execute('DROP TYPE IF EXISTS "WebhookDeliveryStatus"')
    op.execute('DROP TYPE IF EXISTS "WebhookEndpointStatus"')
