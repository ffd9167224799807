"""rollups: conversation statistics aggregated ahead of time, per tenant and 15-minute UTC bucket

Four aggregate tables (``message_rollups``, ``tool_rollups``, ``session_presence`` by quarter
hour, ``session_hour_presence`` by hour), an append-only ``rollup_invalidations`` log that triggers on
``session_messages``, ``session_tool_calls`` and ``sessions`` write in the writing transaction,
and ``rollup_settings`` (the label keys the rollups keep). The server folds the log into the
tables in the background (``db.analytics.rollups``).

Backfill: every bucket that holds messages is queued in the log, and the server folds them in
small transactions after it starts (answers are exact meanwhile: a queued bucket is read from the
rows). ``session-graphql rollups rebuild`` does the same work at once.

Also: indexes for the first page of sessions by total tokens and by message count.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 20:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DIMENSIONS = """
    agent_id varchar(255) NOT NULL,
    session_type varchar(32) NOT NULL,
    snapshot_backed boolean NOT NULL,
    labels jsonb NOT NULL"""
_PRESENCE = """
    session_type varchar(32) NOT NULL,
    snapshot_backed boolean NOT NULL,
    labels jsonb NOT NULL,
    agents text[] NOT NULL,
    roles text[] NOT NULL,
    tools text[] NOT NULL,
    pair_agents text[] NOT NULL,
    pair_roles text[] NOT NULL,
    call_agents text[] NOT NULL,
    call_roles text[] NOT NULL,
    call_tools text[] NOT NULL"""
_SUMS = """
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    total_tokens bigint NOT NULL,
    cache_read_tokens bigint NOT NULL,
    latency_count bigint NOT NULL,
    latency_sum bigint NOT NULL"""

UPGRADE = f"""
CREATE TABLE rollup_settings (
    id boolean DEFAULT true,
    label_keys text[] NOT NULL DEFAULT '{{}}'::text[],
    CONSTRAINT pk_rollup_settings PRIMARY KEY (id),
    CONSTRAINT ck_rollup_settings_id CHECK (id)
);
INSERT INTO rollup_settings DEFAULT VALUES;

CREATE TABLE rollup_invalidations (
    session_id varchar(255) NOT NULL,
    tenant varchar(64) NOT NULL,
    bucket_start timestamptz NOT NULL,
    entry uuid NOT NULL DEFAULT gen_random_uuid(),
    logged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT pk_rollup_invalidations PRIMARY KEY (session_id, tenant, entry)
);
CREATE INDEX ix_rollup_invalidations_tenant_bucket_start ON rollup_invalidations (tenant, bucket_start);

CREATE TABLE message_rollups (
    tenant varchar(64) NOT NULL,
    bucket_start timestamptz NOT NULL,{_DIMENSIONS},
    role text NOT NULL,
    latency_bin integer NOT NULL,
    messages bigint NOT NULL,{_SUMS},
    tool_calls bigint NOT NULL,
    tool_errors bigint NOT NULL,
    CONSTRAINT pk_message_rollups PRIMARY KEY
        (tenant, bucket_start, agent_id, role, session_type, snapshot_backed, labels, latency_bin)
);
CREATE TABLE tool_rollups (
    tenant varchar(64) NOT NULL,
    bucket_start timestamptz NOT NULL,{_DIMENSIONS},
    role text NOT NULL,
    tool_name text NOT NULL,
    latency_bin integer NOT NULL,
    calls bigint NOT NULL,
    errors bigint NOT NULL,{_SUMS},
    CONSTRAINT pk_tool_rollups PRIMARY KEY
        (tenant, bucket_start, agent_id, role, tool_name, session_type, snapshot_backed, labels, latency_bin)
);
CREATE TABLE session_presence (
    session_id varchar(255) NOT NULL,
    tenant varchar(64) NOT NULL,
    bucket_start timestamptz NOT NULL,{_PRESENCE},
    CONSTRAINT pk_session_presence PRIMARY KEY (session_id, tenant, bucket_start)
);
CREATE INDEX ix_session_presence_tenant_bucket_start ON session_presence (tenant, bucket_start);
CREATE TABLE session_hour_presence (
    session_id varchar(255) NOT NULL,
    tenant varchar(64) NOT NULL,
    bucket_start timestamptz NOT NULL,{_PRESENCE},
    CONSTRAINT pk_session_hour_presence PRIMARY KEY (session_id, tenant, bucket_start)
);
CREATE INDEX ix_session_hour_presence_tenant_bucket_start ON session_hour_presence (tenant, bucket_start);

CREATE FUNCTION rollup_bucket(at timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_bin('15 minutes', at, TIMESTAMPTZ '2000-01-01 00:00:00+00');

CREATE FUNCTION rollups_log_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO rollup_invalidations (session_id, tenant, bucket_start)
        SELECT DISTINCT session_id, tenant, rollup_bucket(created_at) FROM new_rows
        WHERE isfinite(created_at);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO rollup_invalidations (session_id, tenant, bucket_start)
        SELECT DISTINCT session_id, tenant, rollup_bucket(created_at) FROM old_rows
        WHERE isfinite(created_at);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION rollups_log_tool_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO rollup_invalidations (session_id, tenant, bucket_start)
        SELECT DISTINCT session_id, tenant, rollup_bucket(called_at) FROM new_rows
        WHERE isfinite(called_at);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO rollup_invalidations (session_id, tenant, bucket_start)
        SELECT DISTINCT session_id, tenant, rollup_bucket(called_at) FROM old_rows
        WHERE isfinite(called_at);
    END IF;
    RETURN NULL;
END $$;

-- A session's labels, type or snapshot-backed flag are dimensions of every bucket it is in:
-- the folded ones (its presence) and the queued ones (copied, in case a fold is removing them
-- right now with the old values in its snapshot).
CREATE FUNCTION rollups_log_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_invalidations (session_id, tenant, bucket_start)
    SELECT NEW.session_id, NEW.tenant, bucket_start FROM session_presence
    WHERE session_id = NEW.session_id AND tenant = NEW.tenant
    UNION
    SELECT NEW.session_id, NEW.tenant, bucket_start FROM rollup_invalidations
    WHERE session_id = NEW.session_id AND tenant = NEW.tenant;
    RETURN NULL;
END $$;

-- Messages at +-infinity (rows from before times were checked) are in no bucket and no range.
CREATE TRIGGER rollups_insert AFTER INSERT ON session_messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rollups_log_messages();
CREATE TRIGGER rollups_update AFTER UPDATE ON session_messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollups_log_messages();
CREATE TRIGGER rollups_delete AFTER DELETE ON session_messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION rollups_log_messages();
CREATE TRIGGER rollups_insert AFTER INSERT ON session_tool_calls
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rollups_log_tool_calls();
CREATE TRIGGER rollups_update AFTER UPDATE ON session_tool_calls
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollups_log_tool_calls();
CREATE TRIGGER rollups_delete AFTER DELETE ON session_tool_calls
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION rollups_log_tool_calls();
CREATE TRIGGER rollups_dimensions AFTER UPDATE OF labels, session_type, snapshot_backed ON sessions
    FOR EACH ROW WHEN (
        OLD.labels IS DISTINCT FROM NEW.labels
        OR OLD.session_type IS DISTINCT FROM NEW.session_type
        OR OLD.snapshot_backed IS DISTINCT FROM NEW.snapshot_backed
    ) EXECUTE FUNCTION rollups_log_session();

INSERT INTO rollup_invalidations (session_id, tenant, bucket_start)
SELECT DISTINCT session_id, tenant, rollup_bucket(created_at) FROM session_messages
WHERE isfinite(created_at);

CREATE INDEX ix_sessions_tenant_total_tokens_session_id ON sessions (tenant, total_tokens, session_id);
CREATE INDEX ix_sessions_tenant_message_count_session_id ON sessions (tenant, message_count, session_id);
"""

DOWNGRADE = """
DROP INDEX ix_sessions_tenant_message_count_session_id;
DROP INDEX ix_sessions_tenant_total_tokens_session_id;
DROP TRIGGER rollups_dimensions ON sessions;
DROP TRIGGER rollups_delete ON session_tool_calls;
DROP TRIGGER rollups_update ON session_tool_calls;
DROP TRIGGER rollups_insert ON session_tool_calls;
DROP TRIGGER rollups_delete ON session_messages;
DROP TRIGGER rollups_update ON session_messages;
DROP TRIGGER rollups_insert ON session_messages;
DROP FUNCTION rollups_log_session();
DROP FUNCTION rollups_log_tool_calls();
DROP FUNCTION rollups_log_messages();
DROP FUNCTION rollup_bucket(timestamptz);
DROP TABLE session_hour_presence;
DROP TABLE session_presence;
DROP TABLE tool_rollups;
DROP TABLE message_rollups;
DROP TABLE rollup_invalidations;
DROP TABLE rollup_settings;
"""


def _statements(script: str) -> list[str]:
    """One statement each (a prepared statement holds one); a function body is one block."""
    found: list[str] = []
    for block in script.strip().split("\n\n"):
        found += [block] if "$$" in block else [part for part in block.split(";\n") if part.strip()]
    return found


def upgrade() -> None:
    for statement in _statements(UPGRADE):
        op.execute(statement)


def downgrade() -> None:
    for statement in _statements(DOWNGRADE):
        op.execute(statement)
