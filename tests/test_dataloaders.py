"""Every nested edge goes through a DataLoader: the SQL of one request does not grow with its rows."""

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from db.migrate import upgrade
from graphql_api.settings import Settings
from tests.conftest import GraphQLCall, RunningServer
from tests.scratch_database import scratch_database

MESSAGE = {"role": "user", "content": [{"text": "hello"}]}
SEED_CHUNK = 40
SEED_VALUES = {"state": {"k": 1}, "message": MESSAGE}

SESSION_FIELDS = """
fragment SessionTree on Session {
  sessionId
  agents {
    agentId
    messageCount
    messages(limit: 20) { messageId message agent { agentId } }
    messagesConnection(first: 3) { edges { cursor node { messageId } } pageInfo { hasNextPage endCursor } }
    session { sessionId }
  }
  multiAgents { multiAgentId state session { sessionId } }
}
"""


def seed(
    graphql: GraphQLCall,
    *,
    sessions: list[str],
    agents: list[tuple[str, str]],
    messages: list[tuple[str, str]],
    message_count: int,
) -> None:
    """Creates ``sessions`` (each with one multi-agent) and ``agents``, then gives each agent in
    ``messages`` the messages 0..message_count-1, all in one request (mutations run in order)."""
    fields: list[str] = []
    for i, session_id in enumerate(sessions):
        fields.append(f's{i}: createSession(session: {{sessionId: "{session_id}"}}) {{ sessionId }}')
        fields.append(
            f'm{i}: createMultiAgent(sessionId: "{session_id}", '
            f'multiAgent: {{multiAgentId: "graph", state: $state}}) {{ multiAgentId }}'
        )
    for i, (session_id, agent_id) in enumerate(agents):
        fields.append(
            f'a{i}: createAgent(sessionId: "{session_id}", agent: {{agentId: "{agent_id}", '
            f"state: $state, conversationManagerState: $state}}) {{ agentId }}"
        )
    batch = ", ".join(f"{{messageId: {n}, message: $message}}" for n in range(message_count))
    for i, (session_id, agent_id) in enumerate(messages):
        fields.append(
            f'x{i}: appendMessages(sessionId: "{session_id}", agentId: "{agent_id}", '
            f"messages: [{batch}]) {{ messageId }}"
        )
    # Mutations run in order, and chunks in turn: within the server's alias and token limits.
    for start in range(0, len(fields), SEED_CHUNK):
        chunk = "\n".join(fields[start : start + SEED_CHUNK])
        used = {name: value for name, value in SEED_VALUES.items() if f"${name}" in chunk}
        declared = ", ".join(f"${name}: JSON!" for name in used)
        body = graphql(f"mutation Seed({declared}) {{\n{chunk}\n}}", used)
        assert "errors" not in body, body["errors"]


def seed_tree(graphql: GraphQLCall, prefix: str, sessions: int, agents: int, messages: int) -> list[str]:
    session_ids = [f"{prefix}-s{i}" for i in range(sessions)]
    agent_keys = [(s, f"agent-{j}") for s in session_ids for j in range(agents)]
    seed(graphql, sessions=session_ids, agents=agent_keys, messages=agent_keys, message_count=messages)
    return session_ids


def sessions_by_id_query(session_ids: list[str]) -> str:
    roots = "\n".join(
        f's{i}: session(sessionId: "{s}") {{ ...SessionTree }}' for i, s in enumerate(session_ids)
    )
    return "query Tree {\n" + roots + "\n}\n" + SESSION_FIELDS


def statements_of(
    server: RunningServer, graphql: GraphQLCall, query: str
) -> tuple[dict[str, Any], list[str]]:
    """The answer's data, and the statements its loaders ran.

    The cost estimate's look at what looked-up sessions hold is left out: one statement, made
    before running a document that may be heavy, whatever the rows.
    """
    with server.count_statements() as statements:
        body = graphql(query)
    assert "errors" not in body, body["errors"]
    return body["data"], [sql for sql in statements if "AS most_checkpoints" not in sql]


def assert_tree(session: dict[str, Any], agents: int, messages: int) -> None:
    assert len(session["agents"]) == agents
    for agent in session["agents"]:
        assert agent["messageCount"] == messages
        assert [m["messageId"] for m in agent["messages"]] == list(range(messages))
        assert all(
            m["message"] == MESSAGE and m["agent"]["agentId"] == agent["agentId"] for m in agent["messages"]
        )
        page = agent["messagesConnection"]
        assert [e["node"]["messageId"] for e in page["edges"]] == list(range(min(3, messages)))
        assert page["pageInfo"]["hasNextPage"] is (messages > 3)
        assert agent["session"]["sessionId"] == session["sessionId"]
    assert [m["multiAgentId"] for m in session["multiAgents"]] == ["graph"]
    assert session["multiAgents"][0]["session"]["sessionId"] == session["sessionId"]


def test_deep_query_runs_as_many_statements_for_20x5x10_rows_as_for_2x1x1(
    server: RunningServer, graphql: GraphQLCall
) -> None:
    prefix = f"dl-{uuid.uuid4().hex[:8]}"
    small = seed_tree(graphql, f"{prefix}-small", sessions=2, agents=1, messages=1)
    large = seed_tree(graphql, f"{prefix}-large", sessions=20, agents=5, messages=10)
    # Warm the pool, so that opening connections cannot blur the comparison.
    statements_of(server, graphql, sessions_by_id_query(large))

    small_data, small_statements = statements_of(server, graphql, sessions_by_id_query(small))
    large_data, large_statements = statements_of(server, graphql, sessions_by_id_query(large))

    for i in range(2):
        assert_tree(small_data[f"s{i}"], agents=1, messages=1)
    for i in range(20):
        assert_tree(large_data[f"s{i}"], agents=5, messages=10)
    assert len(large_statements) == len(small_statements), (small_statements, large_statements)
    # One batch per edge: sessions, agents, multi-agents, message windows, message pages, counts.
    assert len(large_statements) <= 6, large_statements
    assert len(set(large_statements)) == len(large_statements), "a loader ran more than one batch"


def test_message_agent_and_agent_session_edges_come_from_loaded_rows(
    server: RunningServer, graphql: GraphQLCall
) -> None:
    """Walking back up (message -> agent -> session) reuses what the request already loaded."""
    (session_id,) = seed_tree(graphql, f"up-{uuid.uuid4().hex[:8]}", sessions=1, agents=3, messages=4)
    query = (
        f'{{ session(sessionId: "{session_id}") {{ agents {{ messages(limit: 10) {{ messageId '
        "agent { agentId session { sessionId agents { agentId } } } } } } }"
    )
    data, statements = statements_of(server, graphql, query)

    agents = data["session"]["agents"]
    assert [len(a["messages"]) for a in agents] == [4, 4, 4]
    for message in agents[0]["messages"]:
        assert message["agent"]["session"]["sessionId"] == session_id
        assert [a["agentId"] for a in message["agent"]["session"]["agents"]] == [
            "agent-0",
            "agent-1",
            "agent-2",
        ]
    # session, agents of session, message windows: the walk back up adds nothing.
    assert len(statements) == 3, statements


@pytest.fixture(scope="module")
def private_server(database_url: str) -> Iterator[tuple[RunningServer, GraphQLCall]]:
    """A server on its own database, so that ``sessions`` lists only this module's rows."""
    with scratch_database(database_url) as url:
        upgrade(url)
        running = RunningServer(Settings(database_url=url))
        running.start()
        try:
            with httpx.Client(base_url=running.base_url, timeout=30) as client:

                def call(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
                    response = client.post("/graphql", json={"query": query, "variables": variables or {}})
                    assert response.status_code == 200, response.text
                    body: dict[str, Any] = response.json()
                    return body

                yield running, call
        finally:
            running.stop()


def test_session_listing_runs_as_many_statements_after_the_data_grows_tenfold(
    private_server: tuple[RunningServer, GraphQLCall],
) -> None:
    server, graphql = private_server
    listing = "query List { sessions(first: 50) { edges { node { ...SessionTree } } } }\n" + SESSION_FIELDS
    old = seed_tree(graphql, "old", sessions=2, agents=1, messages=1)
    statements_of(server, graphql, listing)
    small_data, small_statements = statements_of(server, graphql, listing)

    new = [f"new-s{i}" for i in range(18)]
    new_agents = [(s, f"agent-{j}") for s in new for j in range(5)]
    more_agents = [(s, f"agent-{j}") for s in old for j in range(1, 5)]
    # Resending message 0 with equal content is accepted, so old agents simply get 0..9.
    seed(
        graphql,
        sessions=new,
        agents=new_agents + more_agents,
        messages=new_agents + more_agents + [(s, "agent-0") for s in old],
        message_count=10,
    )
    statements_of(server, graphql, listing)
    large_data, large_statements = statements_of(server, graphql, listing)

    small_sessions = [e["node"] for e in small_data["sessions"]["edges"]]
    large_sessions = [e["node"] for e in large_data["sessions"]["edges"]]
    assert len(small_sessions) == 2
    for session in small_sessions:
        assert_tree(session, agents=1, messages=1)
    assert len(large_sessions) == 20
    for session in large_sessions:
        assert_tree(session, agents=5, messages=10)
    assert len(large_statements) == len(small_statements), (small_statements, large_statements)
    # The page itself, then one batch per edge.
    assert len(large_statements) <= 7, large_statements


def test_create_message_is_one_statement_and_nothing_else(
    server: RunningServer, graphql: GraphQLCall
) -> None:
    """The append path of every agent turn: one statement, no read before the write."""
    session_id = f"hot-{uuid.uuid4().hex[:8]}"
    agent = (session_id, "agent-0")
    seed(graphql, sessions=[session_id], agents=[agent], messages=[agent], message_count=1)
    create = """
    mutation($s: String!, $m: MessageInput!) {
      createMessage(sessionId: $s, agentId: "agent-0", message: $m) { messageId createdAt }
    }
    """
    graphql(create, {"s": session_id, "m": {"messageId": 1, "message": MESSAGE}})  # warm the statement cache

    with server.count_statements() as statements:
        body = graphql(create, {"s": session_id, "m": {"messageId": 2, "message": MESSAGE}})

    assert "errors" not in body, body
    # One statement stores the message and what follows from it (totals, activity, tool calls).
    assert len(statements) == 1, statements
    assert "INSERT INTO SESSION_MESSAGES" in statements[0].upper()
    assert "ON CONFLICT" in statements[0].upper()
    assert "UPDATE SESSIONS" in statements[0].upper() and "UPDATE SESSION_AGENTS" in statements[0].upper()
