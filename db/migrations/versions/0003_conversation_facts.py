"""conversation facts: labels, activity, running totals, message facts, tool calls

Sessions gain labels, a title, the time of their last activity and running totals; agents the
same totals; messages the facts dashboards filter and count by (db.conversations.facts), with a full-text
search vector; tool calls get a table of their own. Existing rows are filled in from what they
already hold.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from db.conversations.facts import facts_of
from db.conversations.message_writes import facts_json

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
FACT_NAMES = (
    "content_types",
    "tool_names",
    "tool_statuses",
    "tool_calls",
    "tool_errors",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "latency_ms",
    "time_to_first_byte_ms",
    "is_redacted",
)
COUNTERS = (
    "message_count",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "tool_calls",
    "tool_errors",
)


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.add_column(
        "sessions",
        sa.Column("labels", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    op.add_column("sessions", sa.Column("title", sa.Text(), nullable=True))
    op.add_column(
        "sessions",
        sa.Column(
            "last_activity_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
    )
    op.add_column(
        "session_agents",
        sa.Column(
            "last_activity_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
    )
    for table in ("sessions", "session_agents"):
        for name in COUNTERS:
            op.add_column(table, _counter(name))

    empty_list = sa.text("'{}'::text[]")
    op.add_column(
        "session_messages", sa.Column("plain_text", sa.Text(), server_default=sa.text("''"), nullable=False)
    )
    op.add_column(
        "session_messages",
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english', plain_text)", persisted=True),
            nullable=True,
        ),
    )
    for name in ("content_types", "tool_names", "tool_statuses"):
        op.add_column(
            "session_messages",
            sa.Column(name, postgresql.ARRAY(sa.Text()), server_default=empty_list, nullable=False),
        )
    for name in ("tool_calls", "tool_errors"):
        op.add_column(
            "session_messages", sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
    for name in (
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "latency_ms",
        "time_to_first_byte_ms",
    ):
        op.add_column("session_messages", sa.Column(name, sa.Integer(), nullable=True))
    op.add_column(
        "session_messages",
        sa.Column("is_redacted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )

    op.create_table(
        "session_tool_calls",
        sa.Column("session_id", sa.String(length=255), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=255), nullable=False),
        sa.Column("tool_use_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("called_message_id", sa.Integer(), nullable=True),
        sa.Column("called_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("result_message_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id", "tenant", "agent_id"],
            ["session_agents.session_id", "session_agents.tenant", "session_agents.agent_id"],
            name=op.f("fk_session_tool_calls_session_id_tenant_agent_id_session_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "session_id", "tenant", "agent_id", "tool_use_id", name=op.f("pk_session_tool_calls")
        ),
    )

    _fill_in()

    op.create_index(
        "ix_sessions_tenant_last_activity_at_session_id",
        "sessions",
        ["tenant", "last_activity_at", "session_id"],
    )
    op.create_index(
        "ix_sessions_last_activity_at_session_id_tenant",
        "sessions",
        ["last_activity_at", "session_id", "tenant"],
    )
    op.create_index(
        "ix_sessions_labels",
        "sessions",
        ["labels"],
        postgresql_using="gin",
        postgresql_ops={"labels": "jsonb_path_ops"},
    )
    op.create_index("ix_session_messages_tenant_created_at", "session_messages", ["tenant", "created_at"])
    op.create_index("ix_session_messages_search", "session_messages", ["search"], postgresql_using="gin")
    op.create_index("ix_session_tool_calls_tenant_called_at", "session_tool_calls", ["tenant", "called_at"])


def _fill_in() -> None:
    """Facts of the messages already stored, then the totals and activity times they add up to."""
    bind = op.get_bind()
    after: tuple[str, str, str, int] | None = None
    while True:
        where = "" if after is None else "WHERE (session_id, tenant, agent_id, message_id) > (:s, :t, :a, :m)"
        rows = bind.execute(
            sa.text(
                "SELECT session_id, tenant, agent_id, message_id, message::text AS message, "
                "redact_message::text AS redact_message, created_at FROM session_messages "
                f"{where} ORDER BY session_id, tenant, agent_id, message_id LIMIT {BATCH}"
            ),
            {} if after is None else dict(zip("stam", after, strict=True)),
        ).all()
        if not rows:
            break
        updates, calls, results = [], [], []
        for row in rows:
            message = json.loads(row.message)
            redaction = None if row.redact_message is None else json.loads(row.redact_message)
            facts = facts_json(facts_of(message, redaction), row.message_id)
            key = {"s": row.session_id, "t": row.tenant, "a": row.agent_id, "m": row.message_id}
            updates.append({**key, **{name: facts[name] for name in FACT_NAMES}, "plain_text": facts["text"]})
            calls += [
                {**key, "u": call["id"], "name": call["name"], "at": row.created_at}
                for call in facts["calls"]
            ]
            results += [{**key, "u": result["id"], "status": result["status"]} for result in facts["results"]]
        bind.execute(
            sa.text(
                "UPDATE session_messages SET plain_text = :plain_text, content_types = :content_types, "
                "tool_names = :tool_names, tool_statuses = :tool_statuses, tool_calls = :tool_calls, "
                "tool_errors = :tool_errors, input_tokens = :input_tokens, output_tokens = :output_tokens, "
                "total_tokens = :total_tokens, cache_read_tokens = :cache_read_tokens, "
                "cache_write_tokens = :cache_write_tokens, latency_ms = :latency_ms, "
                "time_to_first_byte_ms = :time_to_first_byte_ms, is_redacted = :is_redacted "
                "WHERE session_id = :s AND tenant = :t AND agent_id = :a AND message_id = :m"
            ),
            updates,
        )
        if calls:
            bind.execute(
                sa.text(
                    "INSERT INTO session_tool_calls (session_id, tenant, agent_id, tool_use_id, name, "
                    "called_message_id, called_at) VALUES (:s, :t, :a, :u, :name, :m, :at) "
                    "ON CONFLICT DO NOTHING"
                ),
                calls,
            )
        if results:
            bind.execute(
                sa.text(
                    "UPDATE session_tool_calls SET status = :status, result_message_id = :m "
                    "WHERE session_id = :s AND tenant = :t AND agent_id = :a AND tool_use_id = :u"
                ),
                results,
            )
        last = rows[-1]
        after = (last.session_id, last.tenant, last.agent_id, last.message_id)

    totals = ", ".join(f"{name} = f.{name}" for name in COUNTERS)
    sums = (
        "count(*) AS message_count, coalesce(sum(input_tokens), 0) AS input_tokens, "
        "coalesce(sum(output_tokens), 0) AS output_tokens, coalesce(sum(total_tokens), 0) AS total_tokens, "
        "coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens, "
        "coalesce(sum(tool_calls), 0) AS tool_calls, coalesce(sum(tool_errors), 0) AS tool_errors, "
        "max(updated_at) AS latest"
    )
    # Activity starts at the row's own last update, then moves to its newest message or child.
    bind.execute(sa.text("UPDATE sessions SET last_activity_at = updated_at"))
    bind.execute(sa.text("UPDATE session_agents SET last_activity_at = updated_at"))
    bind.execute(
        sa.text(
            f"UPDATE session_agents a SET {totals}, last_activity_at = greatest(a.updated_at, f.latest) "
            f"FROM (SELECT session_id, tenant, agent_id, {sums} FROM session_messages "
            "GROUP BY session_id, tenant, agent_id) f "
            "WHERE a.session_id = f.session_id AND a.tenant = f.tenant AND a.agent_id = f.agent_id"
        )
    )
    bind.execute(
        sa.text(
            f"UPDATE sessions s SET {totals}, last_activity_at = greatest(s.updated_at, f.latest) "
            f"FROM (SELECT session_id, tenant, {sums} FROM session_messages GROUP BY session_id, tenant) f "
            "WHERE s.session_id = f.session_id AND s.tenant = f.tenant"
        )
    )
    bind.execute(
        sa.text(
            "UPDATE sessions s SET last_activity_at = greatest(s.last_activity_at, x.latest) FROM ("
            "SELECT session_id, tenant, max(updated_at) AS latest FROM ("
            "SELECT session_id, tenant, updated_at FROM session_agents UNION ALL "
            "SELECT session_id, tenant, updated_at FROM session_multi_agents) children "
            "GROUP BY session_id, tenant) x WHERE s.session_id = x.session_id AND s.tenant = x.tenant"
        )
    )


def downgrade() -> None:
    op.drop_index("ix_session_tool_calls_tenant_called_at", table_name="session_tool_calls")
    op.drop_index("ix_session_messages_search", table_name="session_messages")
    op.drop_index("ix_session_messages_tenant_created_at", table_name="session_messages")
    op.drop_index("ix_sessions_labels", table_name="sessions")
    op.drop_index("ix_sessions_tenant_last_activity_at_session_id", table_name="sessions")
    op.drop_index("ix_sessions_last_activity_at_session_id_tenant", table_name="sessions")
    op.drop_table("session_tool_calls")
    for name in ("search", "plain_text", *FACT_NAMES):
        op.drop_column("session_messages", name)
    for table in ("sessions", "session_agents"):
        for name in (*COUNTERS, "last_activity_at"):
            op.drop_column(table, name)
    op.drop_column("sessions", "title")
    op.drop_column("sessions", "labels")
