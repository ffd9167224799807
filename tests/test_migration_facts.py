"""Migration 0003 on rows stored under 0002: every message gets the facts
``db.conversations.facts.facts_of`` finds in it, every agent and session the totals and activity time
its rows add up to, every tool call a row, and the API serves them; downgrading to 0002 leaves the
conversations as they were."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import Connection, text

from db.conversations.facts import facts_of
from db.conversations.message_writes import facts_json
from db.migrate import alembic_config, upgrade
from graphql_api.settings import Settings
from tests.conftest import RunningServer
from tests.scratch_database import scratch_database
from tests.test_migrations import inspect, rows

T0 = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
FACT_COLUMNS = (
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
TOTALS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens", "tool_calls", "tool_errors")
UNICODE = "Ça coûte 10 € — 東京 🚀 naïve café"


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def _model(content: list[dict[str, Any]], usage: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "metadata": {"usage": usage, "metrics": metrics}}


def _result(tool_use_id: str, status: str, text: str) -> dict[str, Any]:
    content = [{"toolResult": {"toolUseId": tool_use_id, "status": status, "content": [{"text": text}]}}]
    return {"role": "user", "content": content}


SESSIONS = [
    # (session_id, tenant, created and updated at)
    ("chat-1", "acme", _at(0)),
    ("chat-2", "acme", _at(0)),
    ("chat-1", "default", _at(0)),
]
AGENTS = [
    # (session_id, tenant, agent_id, updated at)
    ("chat-1", "acme", "support", _at(0)),
    ("chat-1", "acme", "billing", _at(0)),
    ("chat-2", "acme", "idle", _at(45)),
    ("chat-1", "default", "support", _at(0)),
]
MULTI_AGENTS = [("chat-2", "acme", "graph", _at(90))]
# (session_id, tenant, agent_id, message_id, message, redact_message, created at, updated at)
MESSAGES: list[tuple[str, str, str, int, dict[str, Any], dict[str, Any] | None, datetime, datetime]] = [
    ("chat-1", "acme", "support", 0, _user("Hi, I want a refund for order 42"), None, _at(1), _at(1)),
    (
        "chat-1",
        "acme",
        "support",
        1,
        _model(
            [
                {"text": "Let me check your order."},
                {"toolUse": {"toolUseId": "t1", "name": "lookup_order", "input": {"order": 42}}},
            ],
            {
                "inputTokens": 120,
                "outputTokens": 30,
                "totalTokens": 150,
                "cacheReadInputTokens": 40,
                "cacheWriteInputTokens": 8,
            },
            {"latencyMs": 812.6, "timeToFirstByteMs": 95},
        ),
        None,
        _at(2),
        _at(2),
    ),
    ("chat-1", "acme", "support", 2, _result("t1", "success", "order 42: delivered"), None, _at(3), _at(3)),
    (
        "chat-1",
        "acme",
        "support",
        3,
        _model(
            [{"toolUse": {"toolUseId": "t2", "name": "issue_refund", "input": {"order": 42}}}],
            {"inputTokens": 200, "outputTokens": 10},  # no totalTokens: their sum
            {"latencyMs": 400},
        ),
        None,
        _at(4),
        _at(4),
    ),
    ("chat-1", "acme", "support", 4, _result("t2", "error", "refund limit exceeded"), None, _at(5), _at(5)),
    (
        "chat-1",
        "acme",
        "support",
        5,
        _model(
            [{"text": "Sorry, I could not refund it."}],
            {"inputTokens": 300, "outputTokens": 25, "totalTokens": 325},
            {"latencyMs": 1200, "timeToFirstByteMs": 150},
        ),
        None,
        _at(6),
        _at(6),
    ),
    (
        "chat-1",
        "acme",
        "support",
        6,
        _user("my card is 4111 1111 1111 1111"),
        _user("my card is [REDACTED]"),
        _at(7),
        _at(30),  # redacted later: the latest write of the session
    ),
    ("chat-1", "acme", "support", 7, _user(UNICODE), None, _at(8), _at(8)),
    (
        "chat-1",
        "acme",
        "billing",
        0,
        _model(
            [
                {"reasoningContent": {"reasoningText": {"text": "The invoice looks duplicated."}}},
                {"text": "Your invoice was sent twice."},
                {"toolUse": {"name": "send_email", "input": {}}},  # no toolUseId
            ],
            {"inputTokens": 50, "outputTokens": 5, "totalTokens": 55},
            {"latencyMs": 100},
        ),
        None,
        _at(10),
        _at(10),
    ),
    (
        "chat-1",
        "default",
        "support",
        0,
        _user("hi \u0000 there from the default tenant"),
        None,
        _at(2),
        _at(2),
    ),
]


def _fill_0002(conn: Connection) -> None:
    conn.execute(
        text(
            "INSERT INTO sessions (session_id, tenant, session_type, created_at, updated_at) "
            "VALUES (:s, :t, 'AGENT', :at, :at)"
        ),
        [{"s": s, "t": t, "at": at} for s, t, at in SESSIONS],
    )
    conn.execute(
        text(
            "INSERT INTO session_agents (session_id, tenant, agent_id, state, conversation_manager_state, "
            """internal_state, created_at, updated_at) VALUES (:s, :t, :a, '{"n": 1}', '{}', '{}', :c, :u)"""
        ),
        [{"s": s, "t": t, "a": a, "c": _at(0), "u": at} for s, t, a, at in AGENTS],
    )
    conn.execute(
        text(
            "INSERT INTO session_multi_agents (session_id, tenant, multi_agent_id, state, created_at, "
            """updated_at) VALUES (:s, :t, :m, '{"status": "completed"}', :c, :u)"""
        ),
        [{"s": s, "t": t, "m": m, "c": _at(0), "u": at} for s, t, m, at in MULTI_AGENTS],
    )
    conn.execute(
        text(
            "INSERT INTO session_messages (session_id, tenant, agent_id, message_id, role, message, "
            "redact_message, created_at, updated_at) "
            "VALUES (:s, :t, :a, :m, :role, CAST(:body AS json), CAST(:redaction AS json), :c, :u)"
        ),
        [
            {
                "s": s,
                "t": t,
                "a": a,
                "m": m,
                "role": body["role"],
                # Unicode as itself, NUL as the \u0000 escape: as the json column keeps them.
                "body": json.dumps(body, ensure_ascii=False),
                "redaction": None if redaction is None else json.dumps(redaction, ensure_ascii=False),
                "c": created,
                "u": updated,
            }
            for s, t, a, m, body, redaction, created, updated in MESSAGES
        ],
    )
    conn.commit()


def _table(name: str, order: str) -> Any:
    return lambda conn: {
        tuple(row[column] for column in order.split(", ")): dict(row)
        for row in conn.execute(text(f"SELECT * FROM {name} ORDER BY {order}")).mappings()
    }


def _facts() -> dict[tuple[str, str, str, int], dict[str, Any]]:
    return {
        (s, t, a, m): facts_json(facts_of(body, redaction), m)
        for s, t, a, m, body, redaction, _, _ in MESSAGES
    }


def _expected_totals(key_length: int) -> dict[tuple[str, ...], dict[str, Any]]:
    """The totals of each agent (key (session, tenant, agent)) or session (key (session, tenant))."""
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for (s, t, a, _), facts in _facts().items():
        key = (s, t, a)[:key_length]
        sums = found.setdefault(key, {"message_count": 0, **dict.fromkeys(TOTALS, 0)})
        sums["message_count"] += 1
        for name in TOTALS:
            sums[name] += facts[name] or 0
    return found


@pytest.fixture
def migrated_from_0002(database_url: str) -> Iterator[str]:
    with scratch_database(database_url) as url:
        upgrade(url, "0002")
        inspect(url, _fill_0002)
        upgrade(url)
        yield url


def test_upgrade_gives_every_stored_message_the_facts_db_derived_finds_in_it(migrated_from_0002: str) -> None:
    stored = inspect(
        migrated_from_0002, _table("session_messages", "session_id, tenant, agent_id, message_id")
    )

    assert set(stored) == set(_facts())
    for key, facts in _facts().items():
        row = stored[key]
        assert row["plain_text"] == facts["text"], key
        assert {name: row[name] for name in FACT_COLUMNS} == {name: facts[name] for name in FACT_COLUMNS}, key
    # A few by hand, so that a fault shared by facts_of and the migration still shows.
    support = {m: stored[("chat-1", "acme", "support", m)] for m in range(8)}
    assert support[1]["content_types"] == ["text", "toolUse"]
    assert (support[1]["tool_names"], support[1]["tool_calls"]) == (["lookup_order"], 1)
    assert [support[1][n] for n in ("input_tokens", "output_tokens", "total_tokens")] == [120, 30, 150]
    assert [support[1][n] for n in ("cache_read_tokens", "cache_write_tokens")] == [40, 8]
    assert (support[1]["latency_ms"], support[1]["time_to_first_byte_ms"]) == (813, 95)
    assert (support[3]["total_tokens"], support[3]["time_to_first_byte_ms"]) == (210, None)
    assert (support[4]["tool_statuses"], support[4]["tool_errors"]) == (["error"], 1)
    assert support[4]["plain_text"] == "refund limit exceeded"
    assert (support[6]["plain_text"], support[6]["is_redacted"]) == ("my card is [REDACTED]", True)
    assert support[7]["plain_text"] == UNICODE
    assert support[0]["input_tokens"] is None and support[0]["content_types"] == ["text"]
    billing = stored[("chat-1", "acme", "billing", 0)]
    assert billing["plain_text"] == "The invoice looks duplicated.\nYour invoice was sent twice."
    assert billing["content_types"] == ["reasoningContent", "text", "toolUse"]
    assert stored[("chat-1", "default", "support", 0)]["plain_text"] == "hi  there from the default tenant"


def test_upgrade_makes_the_search_vector_of_the_text_the_agent_sees(migrated_from_0002: str) -> None:
    mismatched = "SELECT count(*) FROM session_messages WHERE search <> to_tsvector('english', plain_text)"
    assert inspect(migrated_from_0002, rows(mismatched)) == [(0,)]

    def matching(words: str) -> Any:
        return rows(
            "SELECT tenant, agent_id, message_id FROM session_messages "
            f"WHERE search @@ websearch_to_tsquery('english', '{words}') ORDER BY 1, 2, 3"
        )

    refunds = [("acme", "support", 0), ("acme", "support", 4), ("acme", "support", 5)]
    assert inspect(migrated_from_0002, matching("refund")) == refunds
    assert inspect(migrated_from_0002, matching("card")) == [("acme", "support", 6)]
    assert inspect(migrated_from_0002, matching("4111")) == []  # only the redaction is searched
    assert inspect(migrated_from_0002, matching("tokyo OR 東京")) == [("acme", "support", 7)]
    assert inspect(migrated_from_0002, matching("duplicated invoice")) == [("acme", "billing", 0)]


def test_upgrade_records_each_tool_call_with_its_result(migrated_from_0002: str) -> None:
    expected: dict[tuple[str, ...], dict[str, Any]] = {}
    for s, t, a, m, body, redaction, created, _ in MESSAGES:
        facts = facts_json(facts_of(body, redaction), m)
        for call in facts["calls"]:
            expected.setdefault((s, t, a, call["id"]), {}).update(
                name=call["name"], called_message_id=m, called_at=created
            )
        for result in facts["results"]:
            expected.setdefault((s, t, a, result["id"]), {}).update(
                status=result["status"], result_message_id=m
            )
    stored = inspect(
        migrated_from_0002, _table("session_tool_calls", "session_id, tenant, agent_id, tool_use_id")
    )

    assert {key: {name: row[name] for name in expected[key]} for key, row in stored.items()} == expected
    assert {key[3]: (row["name"], row["status"]) for key, row in stored.items()} == {
        "t1": ("lookup_order", "success"),
        "t2": ("issue_refund", "error"),
        "message-0-0": ("send_email", None),  # a call without an id still counts; nothing answered it
    }


def test_upgrade_adds_up_each_agents_and_sessions_messages_and_their_last_activity(
    migrated_from_0002: str,
) -> None:
    agents = inspect(migrated_from_0002, _table("session_agents", "session_id, tenant, agent_id"))
    sessions = inspect(migrated_from_0002, _table("sessions", "session_id, tenant"))

    counters = ("message_count", *TOTALS)
    for totals, table in ((_expected_totals(3), agents), (_expected_totals(2), sessions)):
        for key, row in table.items():
            assert {name: row[name] for name in counters} == totals.get(key, dict.fromkeys(counters, 0)), key
    assert {n: sessions[("chat-1", "acme")][n] for n in counters} == {
        "message_count": 9,
        "input_tokens": 670,
        "output_tokens": 70,
        "total_tokens": 740,
        "cache_read_tokens": 40,
        "tool_calls": 3,
        "tool_errors": 1,
    }
    # Activity: the newest write among the row itself, its messages and (for a session) its children.
    assert agents[("chat-1", "acme", "support")]["last_activity_at"] == _at(30)
    assert agents[("chat-1", "acme", "billing")]["last_activity_at"] == _at(10)
    assert agents[("chat-2", "acme", "idle")]["last_activity_at"] == _at(45)
    assert sessions[("chat-1", "acme")]["last_activity_at"] == _at(30)
    assert sessions[("chat-2", "acme")]["last_activity_at"] == _at(90)
    assert sessions[("chat-1", "default")]["last_activity_at"] == _at(2)
    assert all(row["labels"] == {} and row["title"] is None for row in sessions.values())


DASHBOARD = """
query Migrated($from: Time!, $to: Time!) {
  sessions(first: 10, orderBy: {field: LAST_ACTIVITY_AT}) {
    nodes { sessionId lastActivityAt messageCount totals { totalTokens toolCalls toolErrors } }
  }
  session(sessionId: "chat-1") {
    agents {
      agentId
      totals { inputTokens cacheReadTokens }
      lastMessage { messageId text isRedacted }
      messagesConnection(first: 10, filter: {toolStatus: ERROR}) {
        nodes { messageId toolResults { status } }
      }
    }
  }
  searchMessages(query: "refund") { edges { node { agentId messageId } snippet } }
  conversationStats(bucket: HOUR, from: $from, to: $to, groupBy: AGENT) {
    rows { bucketStart key messages totalTokens p95LatencyMs }
    totals { messages sessions inputTokens totalTokens cacheReadTokens avgLatencyMs toolCalls toolErrors }
  }
  toolStats { name calls errors errorRate }
}
"""


def test_the_api_serves_the_totals_search_and_stats_of_migrated_rows(migrated_from_0002: str) -> None:
    server = RunningServer(Settings(database_url=migrated_from_0002))
    server.start()
    try:
        response = httpx.post(
            server.url,
            json={
                "query": DASHBOARD,
                "variables": {"from": T0.isoformat(), "to": (T0 + timedelta(hours=2)).isoformat()},
            },
            headers={"X-Tenant": "acme"},
        )
    finally:
        server.stop()
    body = response.json()
    assert "errors" not in body, body
    data = body["data"]

    assert data["sessions"]["nodes"] == [
        {
            "sessionId": "chat-2",
            "lastActivityAt": _at(90).isoformat(),
            "messageCount": 0,
            "totals": {"totalTokens": 0, "toolCalls": 0, "toolErrors": 0},
        },
        {
            "sessionId": "chat-1",
            "lastActivityAt": _at(30).isoformat(),
            "messageCount": 9,
            "totals": {"totalTokens": 740, "toolCalls": 3, "toolErrors": 1},
        },
    ]
    support, billing = sorted(data["session"]["agents"], key=lambda agent: agent["agentId"], reverse=True)
    assert support["totals"] == {"inputTokens": 620, "cacheReadTokens": 40}
    assert support["lastMessage"] == {"messageId": 7, "text": UNICODE, "isRedacted": False}
    assert support["messagesConnection"]["nodes"] == [{"messageId": 4, "toolResults": [{"status": "error"}]}]
    assert billing["totals"] == {"inputTokens": 50, "cacheReadTokens": 0}
    found = {(edge["node"]["agentId"], edge["node"]["messageId"]) for edge in data["searchMessages"]["edges"]}
    assert found == {("support", 0), ("support", 4), ("support", 5)}
    assert all("**refund**" in edge["snippet"] for edge in data["searchMessages"]["edges"])
    stats = data["conversationStats"]
    assert stats["totals"] == {
        "messages": 9,
        "sessions": 1,
        "inputTokens": 670,
        "totalTokens": 740,
        "cacheReadTokens": 40,
        "avgLatencyMs": pytest.approx((813 + 400 + 1200 + 100) / 4),
        "toolCalls": 3,
        "toolErrors": 1,
    }
    ten_o_clock = {row["key"]: row for row in stats["rows"] if row["bucketStart"] == T0.isoformat()}
    assert (ten_o_clock["support"]["messages"], ten_o_clock["support"]["totalTokens"]) == (8, 685)
    assert (ten_o_clock["billing"]["messages"], ten_o_clock["billing"]["totalTokens"]) == (1, 55)
    assert {tool["name"]: (tool["calls"], tool["errors"]) for tool in data["toolStats"]} == {
        "lookup_order": (1, 0),
        "issue_refund": (1, 1),
        "send_email": (1, 0),
    }


def test_downgrade_to_0002_keeps_the_conversations_and_upgrading_again_derives_the_same(
    migrated_from_0002: str,
) -> None:
    derived = inspect(
        migrated_from_0002, _table("session_messages", "session_id, tenant, agent_id, message_id")
    )

    command.downgrade(alembic_config(migrated_from_0002), "0002")

    assert inspect(migrated_from_0002, rows("SELECT version_num FROM alembic_version")) == [("0002",)]
    kept = inspect(migrated_from_0002, _table("session_messages", "session_id, tenant, agent_id, message_id"))
    assert {key: (row["message"], row["redact_message"]) for key, row in kept.items()} == {
        (s, t, a, m): (body, redaction) for s, t, a, m, body, redaction, _, _ in MESSAGES
    }
    assert all("plain_text" not in row and "total_tokens" not in row for row in kept.values())
    assert inspect(migrated_from_0002, rows("SELECT to_regclass('session_tool_calls')")) == [(None,)]
    assert inspect(migrated_from_0002, rows("SELECT session_id, tenant FROM sessions ORDER BY 1, 2")) == [
        ("chat-1", "acme"),
        ("chat-1", "default"),
        ("chat-2", "acme"),
    ]
    assert inspect(migrated_from_0002, rows("SELECT count(*) FROM session_multi_agents")) == [(1,)]

    upgrade(migrated_from_0002)
    again = inspect(
        migrated_from_0002, _table("session_messages", "session_id, tenant, agent_id, message_id")
    )
    assert again == derived
