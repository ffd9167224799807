"""tenants, api keys, audit events, rate limit buckets

Every session table gains a ``tenant`` column, part of its primary key right after
``session_id``; existing rows move into the default tenant. The control tables for API keys,
the audit log and the shared rate limiter are created.

Rebuilding the primary keys rewrites their indexes, so on a large database this migration holds
locks on the session tables while it runs; run it in a maintenance window.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_TENANT = "default"
SESSION_TABLES = ("sessions", "session_agents", "session_messages", "session_multi_agents")


def upgrade() -> None:
    # Children's foreign keys point at the parents' primary keys, so they go first and come back last.
    op.drop_constraint(
        "fk_session_messages_session_id_agent_id_session_agents", "session_messages", type_="foreignkey"
    )
    op.drop_constraint("fk_session_agents_session_id_sessions", "session_agents", type_="foreignkey")
    op.drop_constraint(
        "fk_session_multi_agents_session_id_sessions", "session_multi_agents", type_="foreignkey"
    )
    op.drop_index("ix_session_messages_role", table_name="session_messages")
    op.drop_index("ix_sessions_created_at_session_id", table_name="sessions")

    for table in SESSION_TABLES:
        # A constant default makes adding the column a catalogue change, not a table rewrite; it
        # is dropped afterwards so that no write can land in a tenant by accident.
        op.add_column(
            table,
            sa.Column("tenant", sa.String(length=64), nullable=False, server_default=DEFAULT_TENANT),
        )
        op.alter_column(table, "tenant", server_default=None)
        op.drop_constraint(f"pk_{table}", table, type_="primary")

    op.create_primary_key("pk_sessions", "sessions", ["session_id", "tenant"])
    op.create_primary_key("pk_session_agents", "session_agents", ["session_id", "tenant", "agent_id"])
    op.create_primary_key(
        "pk_session_messages", "session_messages", ["session_id", "tenant", "agent_id", "message_id"]
    )
    op.create_primary_key(
        "pk_session_multi_agents", "session_multi_agents", ["session_id", "tenant", "multi_agent_id"]
    )
    op.create_foreign_key(
        "fk_session_agents_session_id_tenant_sessions",
        "session_agents",
        "sessions",
        ["session_id", "tenant"],
        ["session_id", "tenant"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "fk_session_multi_agents_session_id_tenant_sessions",
        "session_multi_agents",
        "sessions",
        ["session_id", "tenant"],
        ["session_id", "tenant"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "fk_session_messages_session_id_tenant_agent_id_session_agents",
        "session_messages",
        "session_agents",
        ["session_id", "tenant", "agent_id"],
        ["session_id", "tenant", "agent_id"],
        ondelete="CASCADE",
    )
    op.create_index(
        "ix_sessions_tenant_created_at_session_id", "sessions", ["tenant", "created_at", "session_id"]
    )
    op.create_index(
        "ix_sessions_created_at_session_id_tenant", "sessions", ["created_at", "session_id", "tenant"]
    )
    op.create_index(
        "ix_session_messages_role",
        "session_messages",
        ["session_id", "tenant", "agent_id", "role", "message_id"],
    )

    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("secret_sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
    )
    op.create_index(
        "ix_api_keys_tenant_label",
        "api_keys",
        [sa.text("coalesce(tenant, '')"), "label"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.create_table(
        "audit_events",
        sa.Column("event_id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column("target", postgresql.JSON(astext_type=sa.Text()), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_occurred_at_event_id", "audit_events", ["occurred_at", "event_id"])
    op.create_index(
        "ix_audit_events_tenant_occurred_at_event_id", "audit_events", ["tenant", "occurred_at", "event_id"]
    )
    op.create_table(
        "rate_limit_buckets",
        sa.Column("bucket", sa.String(length=200), nullable=False),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("granted", sa.Double(), nullable=False),
        sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_rate_limit_buckets")),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    other_tenants = op.get_bind().execute(
        sa.text("SELECT count(*) FROM sessions WHERE tenant <> :default"), {"default": DEFAULT_TENANT}
    )
    if other_tenants.scalar_one():
        # Without the tenant column their ids could collide with the default tenant's.
        raise RuntimeError("cannot downgrade below 0002: sessions exist in tenants other than 'default'")

    op.drop_table("rate_limit_buckets")
    op.drop_index("ix_audit_events_tenant_occurred_at_event_id", table_name="audit_events")
    op.drop_index("ix_audit_events_occurred_at_event_id", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_api_keys_tenant_label", table_name="api_keys")
    op.drop_table("api_keys")

    op.drop_index("ix_session_messages_role", table_name="session_messages")
    op.drop_index("ix_sessions_created_at_session_id_tenant", table_name="sessions")
    op.drop_index("ix_sessions_tenant_created_at_session_id", table_name="sessions")
    op.drop_constraint(
        "fk_session_messages_session_id_tenant_agent_id_session_agents",
        "session_messages",
        type_="foreignkey",
    )
    op.drop_constraint(
        "fk_session_multi_agents_session_id_tenant_sessions", "session_multi_agents", type_="foreignkey"
    )
    op.drop_constraint("fk_session_agents_session_id_tenant_sessions", "session_agents", type_="foreignkey")
    for table in SESSION_TABLES:
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.drop_column(table, "tenant")

    op.create_primary_key("pk_sessions", "sessions", ["session_id"])
    op.create_primary_key("pk_session_agents", "session_agents", ["session_id", "agent_id"])
    op.create_primary_key("pk_session_messages", "session_messages", ["session_id", "agent_id", "message_id"])
    op.create_primary_key("pk_session_multi_agents", "session_multi_agents", ["session_id", "multi_agent_id"])
    op.create_foreign_key(
        "fk_session_agents_session_id_sessions",
        "session_agents",
        "sessions",
        ["session_id"],
        ["session_id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "fk_session_multi_agents_session_id_sessions",
        "session_multi_agents",
        "sessions",
        ["session_id"],
        ["session_id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "fk_session_messages_session_id_agent_id_session_agents",
        "session_messages",
        "session_agents",
        ["session_id", "agent_id"],
        ["session_id", "agent_id"],
        ondelete="CASCADE",
    )
    op.create_index("ix_sessions_created_at_session_id", "sessions", ["created_at", "session_id"])
    op.create_index(
        "ix_session_messages_role", "session_messages", ["session_id", "agent_id", "role", "message_id"]
    )
