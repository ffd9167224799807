"""The Alembic migrations build exactly what ``db.models`` describes, and both keep keys shardable."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Integer, PrimaryKeyConstraint, UniqueConstraint, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from db.migrate import alembic_config, upgrade
from db.models import Base
from graphql_api.settings import Settings
from tests.conftest import RunningServer
from tests.scratch_database import scratch_database

SESSION_TABLES = {
    "sessions",
    "session_agents",
    "session_messages",
    "session_multi_agents",
    "session_tool_calls",
    "storage_objects",
    # rollups: what sessions were in which bucket, and which buckets a write touched
    "session_presence",
    "session_hour_presence",
    "rollup_invalidations",
}
CONTROL_TABLES = {"api_keys", "audit_events", "rate_limit_buckets", "rollup_settings", "retention_rules"}
TENANT_AGGREGATES = {"message_rollups", "tool_rollups"}
"""Keyed by tenant first: on a distributed PostgreSQL, distributed by tenant."""
TABLES = SESSION_TABLES | CONTROL_TABLES | TENANT_AGGREGATES


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    with scratch_database(database_url) as url:
        yield url


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("postgresql+asyncpg://unused/x")).get_heads()
    assert len(heads) == 1, f"the migrations have {len(heads)} heads: {heads}"
    return heads[0]


def inspect(url: str, look: Any) -> Any:
    """Runs ``look(sync_connection)`` against ``url`` and returns what it returns."""

    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(look)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def differences_from_models(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, Base.metadata))


def rows(sql: str) -> Any:
    return lambda conn: [tuple(row) for row in conn.execute(text(sql))]


def test_migrated_database_matches_the_models_exactly(empty_database: str) -> None:
    upgrade(empty_database)

    assert inspect(empty_database, differences_from_models) == [], (
        "db/models.py and db/migrations disagree; add a migration "
        "(alembic revision --autogenerate) or fix the model"
    )
    assert inspect(empty_database, rows("SELECT version_num FROM alembic_version")) == [(head_revision(),)]


def test_downgrade_to_base_removes_every_table_and_upgrade_rebuilds_them(empty_database: str) -> None:
    public_tables = rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    upgrade(empty_database)

    command.downgrade(alembic_config(empty_database), "base")
    assert inspect(empty_database, public_tables) == [("alembic_version",)]
    assert inspect(empty_database, rows("SELECT version_num FROM alembic_version")) == []

    upgrade(empty_database)
    assert {name for (name,) in inspect(empty_database, public_tables)} == TABLES | {"alembic_version"}
    assert inspect(empty_database, differences_from_models) == []


def test_replicas_migrating_at_once_all_succeed_and_apply_the_migrations_once(empty_database: str) -> None:
    """Replicas are processes (Alembic's context is global to one), each running the deploy step."""
    replicas = [
        subprocess.Popen(
            [sys.executable, "-m", "graphql_api.cli", "migrate"],
            env={**os.environ, "DATABASE_URL": empty_database},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        outputs = [replica.communicate(timeout=60)[0] for replica in replicas]
    finally:
        for replica in replicas:
            replica.kill()
            replica.wait()

    assert [replica.returncode for replica in replicas] == [0] * 4, outputs
    assert inspect(empty_database, rows("SELECT version_num FROM alembic_version")) == [(head_revision(),)]
    assert inspect(empty_database, differences_from_models) == []


def test_upgrade_accepts_a_url_whose_password_has_percent_signs(database_url: str) -> None:
    url = make_url(database_url)
    if url.password:
        pytest.skip("the test database needs its real password")
    with scratch_database(database_url) as scratch:
        # The embedded server trusts local connections, so any password works; ConfigParser
        # interpolation would choke on the %25 the URL carries for it.
        with_percent = make_url(scratch).set(password="50%off").render_as_string(hide_password=False)
        assert "%25" in with_percent
        upgrade(with_percent)
        assert inspect(scratch, rows("SELECT version_num FROM alembic_version")) == [(head_revision(),)]


def test_every_session_table_key_starts_with_session_id_then_tenant_and_no_column_counts_itself() -> None:
    """Rows of one session can live on one shard (distributed by session_id), tenants cannot meet in
    a key, and ids come from the client, never from a sequence that a sharded table could not share.
    Control tables (keys, audit, rate limits) are reference tables: keyed by their own random ids."""
    assert {table.name for table in Base.metadata.sorted_tables} == TABLES
    for table in Base.metadata.sorted_tables:
        keys: list[Any] = [
            c for c in table.constraints if isinstance(c, PrimaryKeyConstraint | UniqueConstraint)
        ]
        keys += [index for index in table.indexes if index.unique]
        assert table.primary_key.columns, table.name
        if table.name in SESSION_TABLES:
            for key in keys:
                assert [c.name for c in key.columns][:2] == ["session_id", "tenant"], (table.name, key.name)
            for foreign_key in table.foreign_key_constraints:
                columns = set(foreign_key.column_keys)
                assert {"session_id", "tenant"} <= columns, (table.name, foreign_key.name)
        else:
            assert not table.foreign_key_constraints, table.name
        assert table.autoincrement_column is None, table.name
        for column in table.columns:
            assert column.identity is None, (table.name, column.name)
            if isinstance(column.type, Integer) and column.primary_key:
                assert column.autoincrement is False, (table.name, column.name)


def test_every_live_session_key_starts_with_session_id_and_no_column_has_a_sequence(
    empty_database: str,
) -> None:
    upgrade(empty_database)
    keys = inspect(
        empty_database,
        rows(
            """
            SELECT c.conrelid::regclass::text, c.conname, c.contype::text,
                   array_agg(a.attname ORDER BY k.ord)::text[]
            FROM pg_constraint c
            CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
            WHERE c.connamespace = 'public'::regnamespace AND c.contype IN ('p', 'u', 'f')
              AND c.conrelid::regclass::text <> 'alembic_version'
            GROUP BY 1, 2, 3
            """
        ),
    )
    unique_indexes = inspect(
        empty_database,
        rows(
            """
            SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text,
                   (SELECT attname FROM pg_attribute WHERE attrelid = i.indrelid AND attnum = i.indkey[0])
            FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
            WHERE t.relnamespace = 'public'::regnamespace AND i.indisunique AND t.relname <> 'alembic_version'
            """
        ),
    )
    counters = inspect(
        empty_database,
        rows(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = 'public'
              AND (is_identity = 'YES' OR column_default LIKE 'nextval(%' OR is_generated = 'ALWAYS')
            """
        ),
    )
    sequences = inspect(
        empty_database, rows("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
    )

    assert {table for table, _, kind, _ in keys if kind == "p"} == TABLES
    for table, name, kind, columns in keys:
        if table not in SESSION_TABLES:
            assert kind == "p", (table, name)
        elif kind == "f":
            assert {"session_id", "tenant"} <= set(columns), (table, name)
        else:
            assert columns[:2] == ["session_id", "tenant"], (table, name, columns)
    session_unique = [index for index in unique_indexes if index[0] in SESSION_TABLES]
    assert len(session_unique) == len(SESSION_TABLES)  # the primary keys' indexes, no others
    for table, index, first_column in session_unique:
        assert first_column == "session_id", (table, index)
    # Columns the database computes are derived from the row itself, never counters: only the search vector.
    assert counters == [("session_messages", "search"), ("storage_objects", "search")]
    assert sequences == []


def _fill_0001(conn: Connection) -> None:
    """Rows as the previous schema held them, before tenants."""
    conn.execute(
        text(
            "INSERT INTO sessions (session_id, session_type, created_at, updated_at) "
            "VALUES ('old-1', 'AGENT', '2026-01-02T03:04:05+00', '2026-01-02T03:04:05+00'), "
            "('old-2', 'AGENT', '2026-01-03T03:04:05+00', '2026-01-03T03:04:05+00')"
        )
    )
    conn.execute(
        text(
            "INSERT INTO session_agents "
            "(session_id, agent_id, state, conversation_manager_state, internal_state) "
            """VALUES ('old-1', 'support', '{"n": 1}', '{}', '{}')"""
        )
    )
    conn.execute(
        text(
            "INSERT INTO session_messages (session_id, agent_id, message_id, role, message) VALUES "
            "('old-1', 'support', 0, 'user', "
            """'{"role": "user", "content": [{"text": "hi \\u0000 there"}]}'), """
            "('old-1', 'support', 1, 'assistant', "
            """'{"role": "assistant", "content": [{"text": "hello"}]}')"""
        )
    )
    conn.execute(
        text(
            "INSERT INTO session_multi_agents (session_id, multi_agent_id, state) "
            """VALUES ('old-2', 'graph', '{"status": "completed"}')"""
        )
    )
    conn.commit()


def test_upgrade_moves_existing_rows_into_the_default_tenant_and_the_api_serves_them(
    empty_database: str,
) -> None:
    upgrade(empty_database, "0001")
    inspect(empty_database, _fill_0001)

    upgrade(empty_database)

    assert inspect(empty_database, rows("SELECT DISTINCT tenant FROM sessions")) == [("default",)]
    in_default = rows("SELECT count(*) FROM session_messages WHERE tenant = 'default'")
    assert inspect(empty_database, in_default) == [(2,)]
    server = RunningServer(Settings(database_url=empty_database))
    server.start()
    try:
        query = """{
          sessions(first: 10) { nodes { sessionId tenant } }
          session(sessionId: "old-1") {
            agents { agentId state messages { messageId message } }
          }
          multiAgent(sessionId: "old-2", multiAgentId: "graph") { state }
        }"""
        body = httpx.post(server.url, json={"query": query}).json()
    finally:
        server.stop()
    assert "errors" not in body, body
    data = body["data"]
    assert data["sessions"]["nodes"] == [
        {"sessionId": "old-2", "tenant": "default"},
        {"sessionId": "old-1", "tenant": "default"},
    ]
    (agent,) = data["session"]["agents"]
    assert agent["state"] == {"n": 1}
    assert [m["message"]["content"][0]["text"] for m in agent["messages"]] == ["hi \x00 there", "hello"]
    assert data["multiAgent"]["state"] == {"status": "completed"}


def test_downgrade_below_tenants_refuses_while_other_tenants_hold_sessions(empty_database: str) -> None:
    upgrade(empty_database)
    inspect(
        empty_database,
        lambda conn: (
            conn.execute(
                text("INSERT INTO sessions (session_id, tenant, session_type) VALUES ('s', 'acme', 'AGENT')")
            ),
            conn.commit(),
        ),
    )

    with pytest.raises(RuntimeError, match="tenants other than 'default'"):
        command.downgrade(alembic_config(empty_database), "0001")

    assert inspect(empty_database, rows("SELECT version_num FROM alembic_version")) == [(head_revision(),)]
    assert inspect(empty_database, rows("SELECT session_id, tenant FROM sessions")) == [("s", "acme")]
