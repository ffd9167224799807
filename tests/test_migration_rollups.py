"""Migration 0006 on conversations stored under 0005: every bucket holding messages is queued, the
server folds them, and the statistics served from the rollups equal the rows'; downgrading to 0005
removes the rollups and their triggers and leaves the rows as they were."""

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import Connection, text

from db.analytics import stats
from db.analytics.filters import ConversationFilter
from db.engine import Database, create_engine
from db.migrate import alembic_config, upgrade
from db.tenancy import Scope
from graphql_api.settings import Settings
from tests.conftest import RunningServer
from tests.scratch_database import scratch_database
from tests.test_migrations import inspect, rows
from tests.test_rollups import assert_same_stats

T0 = datetime(2026, 3, 2, 9, 50, tzinfo=UTC)
# (session, tenant, agent, message id, role, minutes after T0, tokens, latency, calls a tool)
MESSAGES = [
    ("chat-1", "acme", "support", 0, "user", 0, None, None, False),
    ("chat-1", "acme", "support", 1, "assistant", 3, 120, 800, True),
    ("chat-1", "acme", "support", 2, "user", 14, None, None, False),
    ("chat-1", "acme", "support", 3, "assistant", 15, 60, 1200, False),
    ("chat-2", "acme", "billing", 0, "user", 70, None, None, False),
    ("chat-2", "acme", "billing", 1, "assistant", 71, 30, 40, True),
    ("chat-1", "default", "support", 0, "user", 500, None, None, False),
    ("chat-1", "default", "support", 1, "assistant", 501, 10, 95, False),
]
TRIGGERS = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"
ROLLUP_TABLES = (
    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
    "AND (tablename LIKE '%rollup%' OR tablename LIKE '%presence%') ORDER BY 1"
)


def _fill_0005(conn: Connection) -> None:
    for session_id, tenant in sorted({(s, t) for s, t, *_ in MESSAGES}):
        conn.execute(
            text(
                "INSERT INTO sessions (session_id, tenant, session_type, created_at, updated_at, labels) "
                "VALUES (:s, :t, 'AGENT', :at, :at, '{\"team\": \"red\"}')"
            ),
            {"s": session_id, "t": tenant, "at": T0},
        )
    for session_id, tenant, agent_id in sorted({(s, t, a) for s, t, a, *_ in MESSAGES}):
        conn.execute(
            text(
                "INSERT INTO session_agents (session_id, tenant, agent_id, state, "
                "conversation_manager_state, internal_state) VALUES (:s, :t, :a, '{}', '{}', '{}')"
            ),
            {"s": session_id, "t": tenant, "a": agent_id},
        )
    for session_id, tenant, agent_id, message_id, role, minutes, tokens, latency, calls in MESSAGES:
        at = T0 + timedelta(minutes=minutes)
        conn.execute(
            text(
                "INSERT INTO session_messages (session_id, tenant, agent_id, message_id, role, message, "
                "created_at, updated_at, input_tokens, total_tokens, latency_ms, tool_calls, tool_names) "
                "VALUES (:s, :t, :a, :m, :role, CAST(:body AS json), :at, :at, :tokens, :tokens, :latency, "
                ":calls, :names)"
            ),
            {
                "s": session_id,
                "t": tenant,
                "a": agent_id,
                "m": message_id,
                "role": role,
                "body": json.dumps({"role": role, "content": [{"text": "hi"}]}),
                "at": at,
                "tokens": tokens,
                "latency": latency,
                "calls": int(calls),
                "names": ["lookup"] if calls else [],
            },
        )
        if calls:
            conn.execute(
                text(
                    "INSERT INTO session_tool_calls (session_id, tenant, agent_id, tool_use_id, name, "
                    "called_message_id, called_at, status) "
                    "VALUES (:s, :t, :a, :id, 'lookup', :m, :at, 'error')"
                ),
                {
                    "s": session_id,
                    "t": tenant,
                    "a": agent_id,
                    "id": f"call-{message_id}",
                    "m": message_id,
                    "at": at,
                },
            )
    conn.commit()


def _stored(conn: Connection) -> list[tuple[Any, ...]]:
    found = conn.execute(
        text("SELECT * FROM session_messages ORDER BY session_id, tenant, agent_id, message_id")
    )
    return [tuple(row) for row in found]


@pytest.fixture
def stored_under_0005(database_url: str) -> Iterator[str]:
    with scratch_database(database_url) as url:
        upgrade(url, "0005")
        inspect(url, _fill_0005)
        yield url


def _served_and_rows(url: str, tenant: str) -> tuple[stats.Stats, stats.Stats]:
    request = stats.StatsRequest(
        "HOUR", T0 - timedelta(hours=1), T0 + timedelta(days=1), "AGENT", None, "UTC"
    )

    async def run() -> tuple[stats.Stats, stats.Stats]:
        database = Database(create_engine(url, pool_size=1, max_overflow=0))
        try:

            async def both(conn: Any) -> tuple[stats.Stats, stats.Stats]:
                scope, f = Scope(tenant), ConversationFilter()
                served = await stats.conversation_stats(conn, scope, f, request, most_rows=1000, most_keys=10)
                computed = await stats.conversation_stats(
                    conn, scope, f, request, most_rows=1000, most_keys=10, rows_only=True
                )
                return served, computed

            return await database.run_in_snapshot(both)
        finally:
            await database.dispose()

    return asyncio.run(run())


def test_upgrade_queues_every_bucket_and_the_server_folds_them_into_answers_equal_to_the_rows(
    stored_under_0005: str,
) -> None:
    before = inspect(stored_under_0005, _stored)

    upgrade(stored_under_0005)

    assert inspect(stored_under_0005, _stored) == before
    # 09:50 and 09:53 share a quarter hour; 10:04-10:05, 11:00-11:01 and 18:10-18:11 are three more
    queued = "SELECT tenant, session_id, bucket_start FROM rollup_invalidations ORDER BY 1, 2, 3"
    assert [(t, s, b.isoformat()) for t, s, b in inspect(stored_under_0005, rows(queued))] == [
        ("acme", "chat-1", "2026-03-02T09:45:00+00:00"),
        ("acme", "chat-1", "2026-03-02T10:00:00+00:00"),
        ("acme", "chat-2", "2026-03-02T11:00:00+00:00"),
        ("default", "chat-1", "2026-03-02T18:00:00+00:00"),
    ]
    server = RunningServer(Settings(database_url=stored_under_0005))
    server.start()
    try:
        deadline = time.monotonic() + 30
        while inspect(stored_under_0005, rows("SELECT count(*) FROM rollup_invalidations")) != [(0,)]:
            assert time.monotonic() < deadline, "the server did not fold the queue"
            time.sleep(0.2)
        query = """{ conversationStats(bucket: HOUR, groupBy: AGENT, from: "2026-03-02T09:00:00Z",
                       to: "2026-03-03T00:00:00Z") {
                     fromRollups totals { messages totalTokens toolErrors } } }"""
        answer = httpx.post(
            server.url, json={"query": query}, headers={"X-Tenant": "acme"}, timeout=30
        ).json()
    finally:
        server.stop()
    assert answer["data"]["conversationStats"] == {
        "fromRollups": True,
        "totals": {"messages": 6, "totalTokens": 210, "toolErrors": 0},
    }
    for tenant in ("acme", "default"):
        served, computed = _served_and_rows(stored_under_0005, tenant)
        assert served.from_rollups and not computed.from_rollups
        assert_same_stats(served, computed)
    assert inspect(stored_under_0005, rows("SELECT count(*) FROM message_rollups")) != [(0,)]


def test_downgrade_to_0005_removes_the_rollups_and_their_triggers(stored_under_0005: str) -> None:
    before = inspect(stored_under_0005, _stored)
    upgrade(stored_under_0005)
    assert len(inspect(stored_under_0005, rows(TRIGGERS))) == 7

    command.downgrade(alembic_config(stored_under_0005), "0005")

    assert inspect(stored_under_0005, rows("SELECT version_num FROM alembic_version")) == [("0005",)]
    assert inspect(stored_under_0005, rows(TRIGGERS)) == []
    assert inspect(stored_under_0005, rows(ROLLUP_TABLES)) == []
    assert inspect(stored_under_0005, _stored) == before
    # writes work without the triggers' tables
    inspect(
        stored_under_0005,
        lambda conn: (
            conn.execute(text("DELETE FROM session_messages WHERE tenant = 'default'")),
            conn.commit(),
        ),
    )
    upgrade(stored_under_0005)
    assert len(inspect(stored_under_0005, rows("SELECT * FROM rollup_invalidations"))) == 3
