"""storage objects: Strands' Storage protocol, snapshot-backed sessions

A table of the objects Strands' ``SnapshotSessionManager`` (and any other user of its ``Storage``
protocol) writes, keyed by the session their key names; sessions, agents and multi-agents say
whether they were written from snapshots. Nothing existing changes: the new flags are false.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLAGGED = ("sessions", "session_agents", "session_multi_agents")


def upgrade() -> None:
    for table in FLAGGED:
        op.add_column(
            table, sa.Column("snapshot_backed", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
    op.create_table(
        "storage_objects",
        sa.Column("session_id", sa.String(length=255), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("key", sa.Text(collation="C"), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("scope_id", sa.String(length=255), nullable=True),
        sa.Column("snapshot_id", sa.String(length=255), nullable=True),
        sa.Column("snapshot_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_count", sa.Integer(), nullable=True),
        sa.Column("plain_text", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english', plain_text)", persisted=True),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "tenant", "key", name="pk_storage_objects"),
    )
    op.create_index("ix_storage_objects_tenant_key", "storage_objects", ["tenant", "key"])
    op.create_index("ix_storage_objects_search", "storage_objects", ["search"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_index("ix_storage_objects_search", table_name="storage_objects")
    op.drop_index("ix_storage_objects_tenant_key", table_name="storage_objects")
    op.drop_table("storage_objects")
    for table in FLAGGED:
        op.drop_column(table, "snapshot_backed")
