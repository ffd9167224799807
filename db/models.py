"""Tables of the session store.

Session tables (``sessions`` and the four under it) hold the conversations. Every one of their
primary keys starts with ``session_id``, then ``tenant``, and no key is a serial, so each table
can be distributed by ``session_id`` (Citus-style) with all of one session's rows on one shard.
The same session id in two tenants is two sessions: ``tenant`` is part of every key.

Rollup tables (``message_rollups``, ``tool_rollups``) are tenant-level aggregates, keyed by
``tenant`` first (on Citus: distributed by tenant); the presence tables and the invalidation log
beside them are per session, keyed by ``session_id`` like the rows they describe.

Control tables (``api_keys``, ``audit_events``, ``rate_limit_buckets``, ``retention_rules``) hold no
conversation:
they are small, read by every replica, and keyed by their own random ids; on a distributed
PostgreSQL they are reference tables (copied to every node), not distributed ones.

JSON documents use PostgreSQL ``json`` rather than ``jsonb``: ``jsonb`` rejects strings that
contain ``\\u0000``, while ``json`` keeps the exact text it was given.
"""

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 255
TENANT_LENGTH = 64
DEFAULT_TENANT = "default"
"""Where rows live when nobody named a tenant: open mode, tenantless keys, and rows from before tenants."""


SEARCH_CONFIGURATION = "english"
"""How message text is split into words for search: English stemming (refunds finds refund)."""


def _text_list() -> Mapped[list[str]]:
    return mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'::text[]"))


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


def _updated_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


def _tenant_key() -> Mapped[str]:
    return mapped_column(String(TENANT_LENGTH), primary_key=True)


def _counter() -> Mapped[int]:
    return mapped_column(BigInteger, nullable=False, server_default=text("0"))


def _measure() -> Mapped[int | None]:
    return mapped_column(Integer, nullable=True)


def _snapshot_backed() -> Mapped[bool]:
    """Written by Strands' SnapshotSessionManager through the storage API (db.storage.objects)."""
    return mapped_column(Boolean, nullable=False, server_default=text("false"))


class SessionModel(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        # Newest (and most recently active) first within a tenant, the usual listings, and across
        # tenants for tenantless admins.
        Index("ix_sessions_tenant_created_at_session_id", "tenant", "created_at", "session_id"),
        Index("ix_sessions_created_at_session_id_tenant", "created_at", "session_id", "tenant"),
        Index("ix_sessions_tenant_last_activity_at_session_id", "tenant", "last_activity_at", "session_id"),
        Index("ix_sessions_last_activity_at_session_id_tenant", "last_activity_at", "session_id", "tenant"),
        # The first page of sessions by size (dashboards' "biggest conversations").
        Index("ix_sessions_tenant_total_tokens_session_id", "tenant", "total_tokens", "session_id"),
        Index("ix_sessions_tenant_message_count_session_id", "tenant", "message_count", "session_id"),
        Index(
            "ix_sessions_labels",
            "labels",
            postgresql_using="gin",
            postgresql_ops={"labels": "jsonb_path_ops"},
        ),
    )

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = _tenant_key()
    session_type: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    labels: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    """Who and where the conversation belongs to: short strings by short keys ({"user": "ana"})."""
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_activity_at: Mapped[datetime] = _created_at()
    """When anything inside the session was last written (messages, agents, multi-agents)."""
    snapshot_backed: Mapped[bool] = _snapshot_backed()
    # Running totals of the session's messages, kept by the statements that write them.
    message_count: Mapped[int] = _counter()
    input_tokens: Mapped[int] = _counter()
    output_tokens: Mapped[int] = _counter()
    total_tokens: Mapped[int] = _counter()
    cache_read_tokens: Mapped[int] = _counter()
    tool_calls: Mapped[int] = _counter()
    tool_errors: Mapped[int] = _counter()


class AgentModel(Base):
    __tablename__ = "session_agents"
    __table_args__ = (
        ForeignKeyConstraint(
            ["session_id", "tenant"], ["sessions.session_id", "sessions.tenant"], ondelete="CASCADE"
        ),
    )

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = _tenant_key()
    agent_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    state: Mapped[Any] = mapped_column(JSON, nullable=False)
    conversation_manager_state: Mapped[Any] = mapped_column(JSON, nullable=False)
    internal_state: Mapped[Any] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    last_activity_at: Mapped[datetime] = _created_at()
    snapshot_backed: Mapped[bool] = _snapshot_backed()
    message_count: Mapped[int] = _counter()
    input_tokens: Mapped[int] = _counter()
    output_tokens: Mapped[int] = _counter()
    total_tokens: Mapped[int] = _counter()
    cache_read_tokens: Mapped[int] = _counter()
    tool_calls: Mapped[int] = _counter()
    tool_errors: Mapped[int] = _counter()


class MessageModel(Base):
    __tablename__ = "session_messages"
    __table_args__ = (
        ForeignKeyConstraint(
            ["session_id", "tenant", "agent_id"],
            ["session_agents.session_id", "session_agents.tenant", "session_agents.agent_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("message_id >= 0", name="message_id_not_negative"),
        # Role filters stay within one agent's conversation (the primary key orders it).
        Index("ix_session_messages_role", "session_id", "tenant", "agent_id", "role", "message_id"),
        # Dashboards read by time across sessions (stats, "what happened between 14:00 and 15:00"), and
        # newest first: with the rest of the key, the index holds a tenant's messages in the order of
        # messages(orderBy: CREATED_AT) and searchMessages(orderBy: NEWEST), ties included.
        Index(
            "ix_session_messages_tenant_created_at_key",
            "tenant",
            "created_at",
            "session_id",
            "agent_id",
            "message_id",
        ),
        Index("ix_session_messages_search", "search", postgresql_using="gin"),
    )

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = _tenant_key()
    agent_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    message_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    message: Mapped[Any] = mapped_column(JSON, nullable=False)
    redact_message: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    # Facts of the message as the agent sees it (db.conversations.facts), written with it.
    plain_text: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''"))
    search: Mapped[Any] = mapped_column(
        TSVECTOR, Computed(f"to_tsvector('{SEARCH_CONFIGURATION}', plain_text)", persisted=True)
    )
    content_types: Mapped[list[str]] = _text_list()
    tool_names: Mapped[list[str]] = _text_list()
    tool_statuses: Mapped[list[str]] = _text_list()
    tool_calls: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    tool_errors: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    input_tokens: Mapped[int | None] = _measure()
    output_tokens: Mapped[int | None] = _measure()
    total_tokens: Mapped[int | None] = _measure()
    cache_read_tokens: Mapped[int | None] = _measure()
    cache_write_tokens: Mapped[int | None] = _measure()
    latency_ms: Mapped[int | None] = _measure()
    time_to_first_byte_ms: Mapped[int | None] = _measure()
    is_redacted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))


class ToolCallModel(Base):
    """One tool call and, once it came back, its result: tool statistics without reading messages."""

    __tablename__ = "session_tool_calls"
    __table_args__ = (
        ForeignKeyConstraint(
            ["session_id", "tenant", "agent_id"],
            ["session_agents.session_id", "session_agents.tenant", "session_agents.agent_id"],
            ondelete="CASCADE",
        ),
        Index("ix_session_tool_calls_tenant_called_at", "tenant", "called_at"),
    )

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = _tenant_key()
    agent_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tool_use_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    called_message_id: Mapped[int | None] = _measure()
    called_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str | None] = mapped_column(Text, nullable=True)
    """success or error once the result is stored; null while the call is open."""
    result_message_id: Mapped[int | None] = _measure()


class MultiAgentModel(Base):
    __tablename__ = "session_multi_agents"
    __table_args__ = (
        ForeignKeyConstraint(
            ["session_id", "tenant"], ["sessions.session_id", "sessions.tenant"], ondelete="CASCADE"
        ),
    )

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = _tenant_key()
    multi_agent_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    state: Mapped[Any] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    snapshot_backed: Mapped[bool] = _snapshot_backed()


class StorageObjectModel(Base):
    """An object written through Strands' ``Storage`` protocol: its bytes as given, and what is read
    from them once, when written (db.storage.objects).

    ``session_id`` is the session a ``session/<id>/...`` key belongs to, so a session's objects
    live on its shard; keys outside sessions have ``''``. Keys list in code point order (Python's
    ``sorted``), which is the byte order of their UTF-8: the key's collation is "C".
    """

    __tablename__ = "storage_objects"
    __table_args__ = (
        Index("ix_storage_objects_tenant_key", "tenant", "key"),
        Index("ix_storage_objects_search", "search", postgresql_using="gin"),
    )

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = _tenant_key()
    key: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sha256: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    """object, or agent_latest, agent_checkpoint, multi_agent_latest for Strands snapshot keys."""
    scope_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    """The agent or orchestrator id of a snapshot key."""
    snapshot_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    snapshot_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    message_count: Mapped[int | None] = _measure()
    plain_text: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''"))
    search: Mapped[Any] = mapped_column(
        TSVECTOR, Computed(f"to_tsvector('{SEARCH_CONFIGURATION}', plain_text)", persisted=True)
    )
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class ApiKeyModel(Base):
    """An API key: only the SHA-256 of its secret is kept, so the table never holds a usable key."""

    __tablename__ = "api_keys"
    __table_args__ = (
        # A label names one key in force within its tenant (tenants do not see each other's labels).
        Index(
            "ix_api_keys_tenant_label",
            func.coalesce(text("tenant"), ""),
            "label",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    label: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    tenant: Mapped[str | None] = mapped_column(String(TENANT_LENGTH), nullable=True)
    """None: the key is not bound to a tenant (it may name one per request, and lists span all)."""
    created_at: Mapped[datetime] = _created_at()
    created_by: Mapped[str] = mapped_column(Text, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEventModel(Base):
    """Who deleted what, and who made or revoked which key: written with the change it records."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_occurred_at_event_id", "occurred_at", "event_id"),
        Index("ix_audit_events_tenant_occurred_at_event_id", "tenant", "occurred_at", "event_id"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, primary_key=True, server_default=text("gen_random_uuid()")
    )
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("now()")
    )
    tenant: Mapped[str | None] = mapped_column(String(TENANT_LENGTH), nullable=True)
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    actor_role: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    session_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    target: Mapped[Any] = mapped_column(JSON, nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RateLimitBucketModel(Base):
    """Token buckets shared by all replicas; losing them in a crash only refills them (UNLOGGED)."""

    __tablename__ = "rate_limit_buckets"
    __table_args__ = ({"prefixes": ("UNLOGGED",)},)

    bucket: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Double, nullable=False)
    granted: Mapped[float] = mapped_column(Double, nullable=False)
    refilled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class RetentionRuleModel(Base):
    """A tenant's own retention rule, set by an admin; tenants without one follow the settings'
    default (db.control.retention)."""

    __tablename__ = "retention_rules"
    __table_args__ = (CheckConstraint("keep_days >= 0", name="keep_days_not_negative"),)

    tenant: Mapped[str] = _tenant_key()
    keep_days: Mapped[int] = mapped_column(Integer, nullable=False)
    """Sessions idle this many days are deleted; 0 keeps this tenant's sessions whatever the default."""
    updated_at: Mapped[datetime] = _updated_at()
    updated_by: Mapped[str] = mapped_column(Text, nullable=False)


# Rollups (db.analytics.rollups): statistics aggregated ahead of time per tenant and 15-minute UTC
# bucket, over the dimensions dashboards filter and group by. The two rollup tables are tenant-level
# aggregates (keyed, and on Citus distributed, by tenant); presence and the invalidation log are
# per session (keyed by session_id, beside the rows they describe).


def _sum() -> Mapped[int]:
    return mapped_column(BigInteger, nullable=False)


class RollupSettingsModel(Base):
    """The label keys the rollups keep, as the last rebuild set them (one row)."""

    __tablename__ = "rollup_settings"
    __table_args__ = (CheckConstraint("id", name="id"),)

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    label_keys: Mapped[list[str]] = _text_list()


class RollupInvalidationModel(Base):
    """A bucket a write touched since the fold last read it: appended in the writing transaction
    by triggers (migration 0006), removed by the fold."""

    __tablename__ = "rollup_invalidations"
    __table_args__ = (Index("ix_rollup_invalidations_tenant_bucket_start", "tenant", "bucket_start"),)

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = _tenant_key()
    entry: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, server_default=text("gen_random_uuid()"))
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    logged_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("clock_timestamp()")
    )


class _RollupRow:
    """A rollup row's key (its bucket and dimensions, and the latency bin of its messages) and the
    sums both rollup tables keep."""

    tenant: Mapped[str] = _tenant_key()
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    role: Mapped[str] = mapped_column(Text, primary_key=True)
    session_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    snapshot_backed: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    labels: Mapped[Any] = mapped_column(JSONB, primary_key=True)
    latency_bin: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    input_tokens: Mapped[int] = _sum()
    output_tokens: Mapped[int] = _sum()
    total_tokens: Mapped[int] = _sum()
    cache_read_tokens: Mapped[int] = _sum()
    latency_count: Mapped[int] = _sum()
    latency_sum: Mapped[int] = _sum()


class MessageRollupModel(_RollupRow, Base):
    """Messages of a bucket with the same dimensions and latency bin: counts and sums."""

    __tablename__ = "message_rollups"

    messages: Mapped[int] = _sum()
    tool_calls: Mapped[int] = _sum()
    tool_errors: Mapped[int] = _sum()


class ToolRollupModel(_RollupRow, Base):
    """Tool calls of a bucket with the same dimensions, tool and latency bin of the calling message."""

    __tablename__ = "tool_rollups"

    tool_name: Mapped[str] = mapped_column(Text, primary_key=True)
    calls: Mapped[int] = _sum()
    errors: Mapped[int] = _sum()


class _Presence:
    """Which sessions wrote in a bucket: their agents, roles and tools called, and the (agent, role)
    pairs and (agent, role, tool) calls as parallel arrays, unnested together by reads that filter
    on both (``unnest(pair_agents, pair_roles)``)."""

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str] = _tenant_key()
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    session_type: Mapped[str] = mapped_column(String(32), nullable=False)
    snapshot_backed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    labels: Mapped[Any] = mapped_column(JSONB, nullable=False)
    agents: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    roles: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    tools: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    pair_agents: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    pair_roles: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    call_agents: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    call_roles: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    call_tools: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)


class SessionPresenceModel(_Presence, Base):
    """Sessions present in a 15-minute bucket: distinct sessions in any zone."""

    __tablename__ = "session_presence"
    __table_args__ = (Index("ix_session_presence_tenant_bucket_start", "tenant", "bucket_start"),)


class SessionHourPresenceModel(_Presence, Base):
    """Sessions present in a UTC hour: distinct sessions in zones of whole-hour offsets, a quarter
    of the rows to read."""

    __tablename__ = "session_hour_presence"
    __table_args__ = (Index("ix_session_hour_presence_tenant_bucket_start", "tenant", "bucket_start"),)


sessions = cast(Table, SessionModel.__table__)
agents = cast(Table, AgentModel.__table__)
messages = cast(Table, MessageModel.__table__)
multi_agents = cast(Table, MultiAgentModel.__table__)
tool_calls = cast(Table, ToolCallModel.__table__)
storage_objects = cast(Table, StorageObjectModel.__table__)
api_keys = cast(Table, ApiKeyModel.__table__)
audit_events = cast(Table, AuditEventModel.__table__)
rate_limit_buckets = cast(Table, RateLimitBucketModel.__table__)
retention_rules = cast(Table, RetentionRuleModel.__table__)
rollup_settings = cast(Table, RollupSettingsModel.__table__)
rollup_invalidations = cast(Table, RollupInvalidationModel.__table__)
message_rollups = cast(Table, MessageRollupModel.__table__)
tool_rollups = cast(Table, ToolRollupModel.__table__)
session_presence = cast(Table, SessionPresenceModel.__table__)
session_hour_presence = cast(Table, SessionHourPresenceModel.__table__)

SESSION_TABLES = (sessions, agents, messages, multi_agents, tool_calls, storage_objects)
CONTROL_TABLES = (api_keys, audit_events, rate_limit_buckets, retention_rules)
ROLLUP_TABLES = (message_rollups, tool_rollups, session_presence, session_hour_presence)
