"""newest message order: the tenant and time index of messages carries the rest of their key

``ix_session_messages_tenant_created_at`` (tenant, created_at) becomes
``ix_session_messages_tenant_created_at_key`` (tenant, created_at, session_id, agent_id,
message_id): a tenant's messages newest first, ties included, straight from the index, so a
newest-first search walks it without sorting what it reads. It serves every range scan the old
one served.

Building the index blocks writes to ``session_messages`` while it runs (seconds per million
messages); reads go on until the old index is dropped at the end.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_session_messages_tenant_created_at_key",
        "session_messages",
        ["tenant", "created_at", "session_id", "agent_id", "message_id"],
    )
    op.drop_index("ix_session_messages_tenant_created_at", table_name="session_messages")


def downgrade() -> None:
    op.create_index("ix_session_messages_tenant_created_at", "session_messages", ["tenant", "created_at"])
    op.drop_index("ix_session_messages_tenant_created_at_key", table_name="session_messages")
