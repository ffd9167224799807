"""A dashboard's one request (recent sessions with their agents, last messages and first messages, a
chart and the tool ranking) sends as many SQL statements for 20 sessions x 5 agents x 10 messages as
for 2 x 1 x 1: every nested edge is batched."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import RunningServer

SEED_CHUNK = 40
DASHBOARD = """
query Dashboard($from: Time!, $to: Time!) {
  sessions(first: 20, orderBy: {field: LAST_ACTIVITY_AT}) {
    nodes {
      sessionId title labels totals { totalTokens } messageCount
      agents {
        agentId
        totals { totalTokens }
        lastMessage { text createdAt role }
        messagesConnection(first: 3) {
          totalCount
          nodes { text usage { totalTokens } toolCalls { name } }
        }
      }
    }
    totalCount
  }
  conversationStats(bucket: HOUR, from: $from, to: $to, groupBy: AGENT) {
    rows { bucketStart key messages totalTokens }
    totals { messages totalTokens toolCalls toolErrors }
  }
  toolStats { name calls errors errorRate }
}
"""
USAGE = {"inputTokens": 100, "outputTokens": 20, "totalTokens": 120}


def conversation(count: int) -> list[dict[str, Any]]:
    """``count`` turns of a support conversation: a question, a tool call, its result, an answer, ..."""
    turns: list[dict[str, Any]] = []
    for n in range(count):
        call_id = f"call-{n - n % 4 + 1}"
        message = [
            {"role": "user", "content": [{"text": f"question {n} about my order"}]},
            {
                "role": "assistant",
                "content": [
                    {"text": "Let me look."},
                    {"toolUse": {"toolUseId": call_id, "name": "search_orders", "input": {"n": n}}},
                ],
                "metadata": {"usage": USAGE, "metrics": {"latencyMs": 400}},
            },
            {
                "role": "user",
                "content": [{"toolResult": {"toolUseId": call_id, "status": "error", "content": []}}],
            },
            {
                "role": "assistant",
                "content": [{"text": f"answer {n}"}],
                "metadata": {"usage": USAGE, "metrics": {"latencyMs": 900}},
            },
        ][n % 4]
        turns.append({"messageId": n, "message": message})
    return turns


class Tenant:
    """The shared server, in a tenant of this test's own (X-Tenant), so other tests' rows never show."""

    def __init__(self, http: httpx.Client, name: str) -> None:
        self.http = http
        self.name = name

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers={"X-Tenant": self.name}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def seed(self, sessions: int, agents: int, messages: int) -> None:
        """Sessions with labels and a title, their agents, and each agent's conversation."""
        fields: list[str] = []
        for i in range(sessions):
            fields.append(
                f's{i}: createSession(session: {{sessionId: "s{i}", title: "Conversation {i}", '
                f'labels: {{user: "user-{i % 3}", channel: "web"}}}}) {{ sessionId }}'
            )
            for j in range(agents):
                fields.append(
                    f'a{i}_{j}: createAgent(sessionId: "s{i}", agent: {{agentId: "agent-{j}", '
                    "state: {}, conversationManagerState: {}}) { agentId }"
                )
                fields.append(
                    f'm{i}_{j}: appendMessages(sessionId: "s{i}", agentId: "agent-{j}", '
                    "messages: $messages) { messageId }"
                )
        for start in range(0, len(fields), SEED_CHUNK):
            chunk = "\n".join(fields[start : start + SEED_CHUNK])
            declared = "($messages: [MessageInput!]!)" if "$messages" in chunk else ""
            variables = {"messages": conversation(messages)} if declared else {}
            self.graphql(f"mutation Seed{declared} {{\n{chunk}\n}}", variables)


def dashboard(server: RunningServer, tenant: Tenant) -> tuple[dict[str, Any], list[str]]:
    now = datetime.now(UTC)
    variables = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    with server.count_statements() as statements:
        data = tenant.graphql(DASHBOARD, variables)
    return data, list(statements)


def assert_dashboard(data: dict[str, Any], sessions: int, agents: int, messages: int) -> None:
    listed = data["sessions"]
    assert listed["totalCount"] == sessions
    assert sorted(node["sessionId"] for node in listed["nodes"]) == sorted(f"s{i}" for i in range(sessions))
    turns = conversation(messages)
    tokens = sum(120 for turn in turns if turn["message"]["role"] == "assistant")
    calls = sum(any("toolUse" in block for block in t["message"]["content"]) for t in turns)
    errors = sum(any("toolResult" in block for block in t["message"]["content"]) for t in turns)
    for node in listed["nodes"]:
        assert node["title"] == f"Conversation {node['sessionId'][1:]}"
        assert node["labels"]["channel"] == "web"
        assert (node["messageCount"], node["totals"]["totalTokens"]) == (agents * messages, agents * tokens)
        assert [agent["agentId"] for agent in node["agents"]] == [f"agent-{j}" for j in range(agents)]
        for agent in node["agents"]:
            assert agent["totals"]["totalTokens"] == tokens
            last = turns[-1]["message"]
            assert agent["lastMessage"]["role"] == last["role"]
            page = agent["messagesConnection"]
            assert page["totalCount"] == messages
            assert [bool(n["usage"]) for n in page["nodes"]] == [
                t["message"]["role"] == "assistant" for t in turns[:3]
            ]
            assert [[c["name"] for c in n["toolCalls"]] for n in page["nodes"]][1:2] == (
                [["search_orders"]] if messages > 1 else []
            )
    stats = data["conversationStats"]
    assert stats["totals"]["messages"] == sessions * agents * messages
    assert stats["totals"]["totalTokens"] == sessions * agents * tokens
    assert {row["key"] for row in stats["rows"]} == {f"agent-{j}" for j in range(agents)}
    if calls:
        assert data["toolStats"] == [
            {
                "name": "search_orders",
                "calls": sessions * agents * calls,
                "errors": sessions * agents * errors,
                "errorRate": errors / calls,
            }
        ]
    else:
        assert data["toolStats"] == []


def test_dashboard_query_runs_as_many_statements_for_20x5x10_rows_as_for_2x1x1(
    server: RunningServer, http: httpx.Client
) -> None:
    prefix = f"dash-{uuid.uuid4().hex[:8]}"
    small, large = Tenant(http, f"{prefix}-small"), Tenant(http, f"{prefix}-large")
    small.seed(sessions=2, agents=1, messages=1)
    large.seed(sessions=20, agents=5, messages=10)
    dashboard(server, large)  # warm the pool, so that opening connections cannot blur the comparison

    small_data, small_statements = dashboard(server, small)
    large_data, large_statements = dashboard(server, large)

    assert_dashboard(small_data, sessions=2, agents=1, messages=1)
    assert_dashboard(large_data, sessions=20, agents=5, messages=10)
    listing = "\n\n".join(
        [
            f"{len(small_statements)} for 2x1x1:",
            *small_statements,
            f"{len(large_statements)} for 20x5x10:",
            *large_statements,
        ]
    )
    assert len(large_statements) == len(small_statements), listing
    # The page and its count, agents, last messages, message pages and their counts, the chart's
    # rows and its buckets, the label keys the rollups keep (the chart names a label) and the
    # memory its distinct sessions are counted in, the tool ranking: one statement each.
    assert len(large_statements) <= 11, listing
    assert len(set(large_statements)) == len(large_statements), "a loader ran more than one batch\n" + listing
