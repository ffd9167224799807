"""Migration 0005 on messages stored under 0004: the tenant and time index of messages gains the rest
of their key, the rows stay as they were, and newest-first search serves them in order; downgrading
to 0004 brings the old index back."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import Connection, text

from db.migrate import alembic_config, upgrade
from graphql_api.settings import Settings
from tests.conftest import RunningServer
from tests.scratch_database import scratch_database
from tests.test_migrations import inspect, rows

T0 = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
# (session_id, tenant, agent_id, message_id, text, minutes after T0): chat-2 interleaves with chat-1,
# and two messages of each tenant share a time.
MESSAGES = [
    ("chat-1", "acme", "support", 0, "I want a refund", 0),
    ("chat-1", "acme", "support", 1, "The refund is on its way", 2),
    ("chat-1", "acme", "support", 2, "Thanks", 3),
    ("chat-1", "acme", "billing", 0, "Refund issued", 5),
    ("chat-2", "acme", "support", 0, "Another refund, please", 2),
    ("chat-2", "acme", "support", 1, "Refunded twice?", 7),
    ("chat-1", "default", "support", 0, "refund in the default tenant", 9),
]
INDEXES = (
    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'session_messages' "
    "AND indexname LIKE '%created_at%' ORDER BY indexname"
)
SEARCH = """
query($after: String) {
  searchMessages(query: "refund", orderBy: NEWEST, first: 2, after: $after) {
    edges { rank snippet node { sessionId agentId messageId createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def _fill_0004(conn: Connection) -> None:
    sessions = sorted({(s, t) for s, t, *_ in MESSAGES})
    agents = sorted({(s, t, a) for s, t, a, *_ in MESSAGES})
    conn.execute(
        text(
            "INSERT INTO sessions (session_id, tenant, session_type, created_at, updated_at) "
            "VALUES (:s, :t, 'AGENT', :at, :at)"
        ),
        [{"s": s, "t": t, "at": T0} for s, t in sessions],
    )
    conn.execute(
        text(
            "INSERT INTO session_agents (session_id, tenant, agent_id, state, conversation_manager_state, "
            "internal_state) VALUES (:s, :t, :a, '{}', '{}', '{}')"
        ),
        [{"s": s, "t": t, "a": a} for s, t, a in agents],
    )
    conn.execute(
        text(
            "INSERT INTO session_messages (session_id, tenant, agent_id, message_id, role, message, "
            "created_at, updated_at, plain_text, content_types) "
            "VALUES (:s, :t, :a, :m, 'user', CAST(:body AS json), :at, :at, :said, ARRAY['text'])"
        ),
        [
            {
                "s": s,
                "t": t,
                "a": a,
                "m": m,
                "body": json.dumps({"role": "user", "content": [{"text": said}]}),
                "said": said,
                "at": T0 + timedelta(minutes=minutes),
            }
            for s, t, a, m, said, minutes in MESSAGES
        ],
    )
    conn.commit()


def _messages(conn: Connection) -> list[tuple[Any, ...]]:
    found = conn.execute(
        text("SELECT * FROM session_messages ORDER BY session_id, tenant, agent_id, message_id")
    )
    return [tuple(row) for row in found]


@pytest.fixture
def stored_under_0004(database_url: str) -> Iterator[str]:
    with scratch_database(database_url) as url:
        upgrade(url, "0004")
        inspect(url, _fill_0004)
        yield url


def test_upgrade_gives_the_time_index_the_message_key_and_keeps_every_message(stored_under_0004: str) -> None:
    before = inspect(stored_under_0004, _messages)

    upgrade(stored_under_0004, "0005")

    assert inspect(stored_under_0004, rows("SELECT version_num FROM alembic_version")) == [("0005",)]
    assert inspect(stored_under_0004, rows(INDEXES)) == [
        (
            "ix_session_messages_tenant_created_at_key",
            "CREATE INDEX ix_session_messages_tenant_created_at_key ON public.session_messages "
            "USING btree (tenant, created_at, session_id, agent_id, message_id)",
        )
    ]
    assert inspect(stored_under_0004, _messages) == before


def test_newest_search_pages_through_messages_stored_before_the_upgrade(stored_under_0004: str) -> None:
    upgrade(stored_under_0004)
    server = RunningServer(Settings(database_url=stored_under_0004))
    server.start()
    try:
        pages = []
        after = None
        with httpx.Client(timeout=30, headers={"X-Tenant": "acme"}) as client:
            for _ in range(5):
                body = client.post(server.url, json={"query": SEARCH, "variables": {"after": after}}).json()
                assert "errors" not in body, body
                pages.append(body["data"]["searchMessages"])
                after = pages[-1]["pageInfo"]["endCursor"]
                if not pages[-1]["pageInfo"]["hasNextPage"]:
                    break
    finally:
        server.stop()

    shown = [
        [(e["node"]["sessionId"], e["node"]["agentId"], e["node"]["messageId"]) for e in page["edges"]]
        for page in pages
    ]
    # 7, 5, then 2 twice (chat-2 before chat-1), then 0; "Thanks" and the default tenant's are not shown
    assert shown == [
        [("chat-2", "support", 1), ("chat-1", "billing", 0)],
        [("chat-2", "support", 0), ("chat-1", "support", 1)],
        [("chat-1", "support", 0)],
    ]
    assert all("**" in edge["snippet"] and edge["rank"] > 0 for page in pages for edge in page["edges"])


def test_downgrade_to_0004_brings_the_old_time_index_back(stored_under_0004: str) -> None:
    before = inspect(stored_under_0004, _messages)
    upgrade(stored_under_0004)

    command.downgrade(alembic_config(stored_under_0004), "0004")

    assert inspect(stored_under_0004, rows("SELECT version_num FROM alembic_version")) == [("0004",)]
    assert inspect(stored_under_0004, rows(INDEXES)) == [
        (
            "ix_session_messages_tenant_created_at",
            "CREATE INDEX ix_session_messages_tenant_created_at ON public.session_messages "
            "USING btree (tenant, created_at)",
        )
    ]
    assert inspect(stored_under_0004, _messages) == before
    upgrade(stored_under_0004)
    assert [name for name, _ in inspect(stored_under_0004, rows(INDEXES))] == [
        "ix_session_messages_tenant_created_at_key"
    ]
