"""retention rules: each tenant's own rule for how long idle sessions are kept

One small control table, ``retention_rules``, keyed by tenant: the tenants an admin gave a rule
(``setRetentionRule``); the others follow the server's default (``SESSION_GRAPHQL_RETENTION_DAYS``).
Nothing existing changes: with no rule and no default, nothing is ever deleted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retention_rules",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("keep_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.CheckConstraint("keep_days >= 0", name=op.f("ck_retention_rules_keep_days_not_negative")),
        sa.PrimaryKeyConstraint("tenant", name=op.f("pk_retention_rules")),
    )


def downgrade() -> None:
    op.drop_table("retention_rules")
