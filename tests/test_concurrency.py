"""Resolvers that graphql-core runs at once never share a connection, and concurrent requests stay apart."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from db.analytics import listings
from db.conversations import reads
from tests.conftest import GraphQLCall, RunningServer

MESSAGE = {"role": "user", "content": [{"text": "hi"}]}


def seed_session(graphql: GraphQLCall, session_id: str, agents: int, messages: int) -> None:
    fields = [f'createSession(session: {{sessionId: "{session_id}"}}) {{ sessionId }}']
    fields.append(
        f'g: createMultiAgent(sessionId: "{session_id}", '
        'multiAgent: {multiAgentId: "graph", state: $state}) { multiAgentId }'
    )
    batch = ", ".join(
        f'{{messageId: {n}, message: {{role: "user", content: [{{text: "{session_id}/{n}"}}]}}}}'
        for n in range(messages)
    )
    for j in range(agents):
        fields.append(
            f'a{j}: createAgent(sessionId: "{session_id}", agent: {{agentId: "agent-{j}", state: $state, '
            "conversationManagerState: $state}) { agentId }"
        )
        fields.append(
            f'm{j}: appendMessages(sessionId: "{session_id}", agentId: "agent-{j}", messages: [{batch}]) '
            "{ messageId }"
        )
    body = graphql(
        "mutation Seed($state: JSON!) {\n" + "\n".join(fields) + "\n}", {"state": {"of": session_id}}
    )
    assert "errors" not in body, body["errors"]


def text_of(message: dict[str, Any]) -> str:
    text_value: str = message["message"]["content"][0]["text"]
    return text_value


def test_sibling_root_fields_run_at_the_same_time_on_different_connections(
    server: RunningServer, graphql: GraphQLCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four sibling fields, four loaders or queries: each waits until all four are in flight, which
    only happens if they run concurrently, and each reports the backend its connection talks to."""
    session_id = f"conc-{uuid.uuid4().hex[:8]}"
    seed_session(graphql, session_id, agents=1, messages=1)
    all_in_flight = asyncio.Barrier(4)
    backends: dict[str, int] = {}

    def meet_siblings(name: str, fetch: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def fetch_with_siblings(conn: Any, *args: Any, **kwargs: Any) -> Any:
            backends[name] = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await asyncio.wait_for(all_in_flight.wait(), timeout=5)
            return await fetch(conn, *args, **kwargs)

        return fetch_with_siblings

    for module, name in (
        (reads, "get_sessions"),
        (reads, "get_agents"),
        (reads, "get_messages"),
        (listings, "list_sessions"),
    ):
        monkeypatch.setattr(module, name, meet_siblings(name, getattr(module, name)))

    body = graphql(
        f"""{{
          session(sessionId: "{session_id}") {{ sessionId }}
          agent(sessionId: "{session_id}", agentId: "agent-0") {{ agentId }}
          message(sessionId: "{session_id}", agentId: "agent-0", messageId: 0) {{ messageId }}
          sessions(first: 1) {{ edges {{ node {{ sessionId }} }} }}
        }}"""
    )

    assert "errors" not in body, body["errors"]
    assert body["data"]["session"] == {"sessionId": session_id}
    assert body["data"]["agent"] == {"agentId": "agent-0"}
    assert body["data"]["message"] == {"messageId": 0}
    assert len(body["data"]["sessions"]["edges"]) == 1
    assert sorted(backends) == ["get_agents", "get_messages", "get_sessions", "list_sessions"]
    assert len(set(backends.values())) == 4, f"concurrent fields shared a connection: {backends}"


def test_many_aliased_sibling_fields_each_answer_with_their_own_rows(graphql: GraphQLCall) -> None:
    prefix = f"alias-{uuid.uuid4().hex[:8]}"
    session_ids = [f"{prefix}-{i}" for i in range(6)]
    for session_id in session_ids:
        seed_session(graphql, session_id, agents=2, messages=3)
    fields: list[str] = []
    expected: dict[str, Any] = {}
    for i, session_id in enumerate(session_ids):
        fields.append(
            f'ag{i}: agent(sessionId: "{session_id}", agentId: "agent-{i % 2}") {{ sessionId agentId }}'
        )
        expected[f"ag{i}"] = {"sessionId": session_id, "agentId": f"agent-{i % 2}"}
        fields.append(
            f'ms{i}: message(sessionId: "{session_id}", agentId: "agent-1", messageId: {i % 3}) '
            "{ messageId message }"
        )
        expected[f"ms{i}"] = {
            "messageId": i % 3,
            "message": {"role": "user", "content": [{"text": f"{session_id}/{i % 3}"}]},
        }
        fields.append(
            f'se{i}: session(sessionId: "{session_id}") {{ sessionId agents {{ agentId messageCount '
            "messages(offset: 1, limit: 10) { messageId message } } multiAgents { multiAgentId } }"
        )
        fields.append(
            f'mu{i}: multiAgent(sessionId: "{session_id}", multiAgentId: "graph") {{ sessionId state }}'
        )
        expected[f"mu{i}"] = {"sessionId": session_id, "state": {"of": session_id}}
        fields.append(f'none{i}: agent(sessionId: "{session_id}", agentId: "missing") {{ agentId }}')
        expected[f"none{i}"] = None
    fields.append("list: sessions(first: 3) { edges { node { sessionId agents { agentId } } } }")

    body = graphql("{\n" + "\n".join(fields) + "\n}")

    assert "errors" not in body, body["errors"]
    data = body["data"]
    for alias, value in expected.items():
        assert data[alias] == value, alias
    for i, session_id in enumerate(session_ids):
        session = data[f"se{i}"]
        assert session["sessionId"] == session_id
        assert [a["agentId"] for a in session["agents"]] == ["agent-0", "agent-1"]
        for agent in session["agents"]:
            assert agent["messageCount"] == 3
            assert [text_of(m) for m in agent["messages"]] == [f"{session_id}/1", f"{session_id}/2"]
        assert session["multiAgents"] == [{"multiAgentId": "graph"}]
    assert len(data["list"]["edges"]) == 3


async def test_concurrent_requests_beyond_the_pool_size_all_get_their_own_data(
    server: RunningServer, graphql: GraphQLCall
) -> None:
    """60 deep reads and 60 writes at once: more than the pool's 30 connections, so requests queue
    for connections while their own loaders run side by side."""
    prefix = f"many-{uuid.uuid4().hex[:8]}"
    session_ids = [f"{prefix}-{i}" for i in range(12)]
    for session_id in session_ids:
        seed_session(graphql, session_id, agents=3, messages=4)
    deep = (
        "query Deep($id: String!) { session(sessionId: $id) { sessionId agents { agentId messageCount "
        "messages(limit: 10) { messageId message agent { sessionId } } "
        "messagesConnection(first: 2) { nodes { messageId } } } "
        "multiAgents { state } } }"
    )
    write = (
        "mutation Write($id: String!, $agent: String!, $n: Int!, $message: JSON!) { "
        "createMessage(sessionId: $id, agentId: $agent, message: {messageId: $n, message: $message}) "
        "{ sessionId agentId messageId message } }"
    )

    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:

        async def post(query: str, variables: dict[str, Any]) -> dict[str, Any]:
            response = await client.post("/graphql", json={"query": query, "variables": variables})
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        reads = [post(deep, {"id": session_ids[i % 12]}) for i in range(60)]
        writes = [
            post(
                write,
                {
                    "id": session_ids[i % 12],
                    "agent": f"agent-{i % 3}",
                    "n": 100 + i,
                    "message": {"role": "assistant", "content": [{"text": f"write {i}"}]},
                },
            )
            for i in range(60)
        ]
        results = await asyncio.gather(*reads, *writes)

    for i, body in enumerate(results[:60]):
        assert "errors" not in body, body["errors"]
        session = body["data"]["session"]
        session_id = session_ids[i % 12]
        assert session["sessionId"] == session_id
        assert session["multiAgents"] == [{"state": {"of": session_id}}]
        for agent in session["agents"]:
            stored = [m for m in agent["messages"] if m["messageId"] < 100]
            assert [text_of(m) for m in stored] == [f"{session_id}/{n}" for n in range(4)]
            assert {m["agent"]["sessionId"] for m in agent["messages"]} == {session_id}
            # Counts and lists are separate batches on separate connections, so a write may land
            # between them; each still sees only this session's agent's rows.
            assert 4 <= agent["messageCount"] <= 9
            assert 4 <= len(agent["messages"]) <= 9
            assert [m["messageId"] for m in agent["messagesConnection"]["nodes"]] == [0, 1]
    for i, body in enumerate(results[60:]):
        assert "errors" not in body, body["errors"]
        assert body["data"]["createMessage"] == {
            "sessionId": session_ids[i % 12],
            "agentId": f"agent-{i % 3}",
            "messageId": 100 + i,
            "message": {"role": "assistant", "content": [{"text": f"write {i}"}]},
        }
    counts = graphql(
        "{"
        + " ".join(
            f's{i}: session(sessionId: "{s}") {{ agents {{ messageCount }} }}'
            for i, s in enumerate(session_ids)
        )
        + "}"
    )
    # Every write landed once: 4 seeded messages per agent plus the 60 new ones.
    total = sum(a["messageCount"] for s in counts["data"].values() for a in s["agents"])
    assert total == 12 * 3 * 4 + 60


async def test_concurrent_identical_creates_of_one_message_all_succeed_and_store_it_once(
    server: RunningServer, graphql: GraphQLCall
) -> None:
    """A client retrying while its first attempt is still running must not see a conflict."""
    session_id = f"retry-{uuid.uuid4().hex[:8]}"
    seed_session(graphql, session_id, agents=1, messages=0)
    create = (
        f'mutation {{ createMessage(sessionId: "{session_id}", agentId: "agent-0", '
        'message: {messageId: 0, message: {role: "user", content: [{text: "once"}]}}) { messageId } }'
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        responses = await asyncio.gather(
            *(client.post("/graphql", json={"query": create}) for _ in range(20))
        )

    assert [r.json() for r in responses] == [{"data": {"createMessage": {"messageId": 0}}}] * 20
    count = graphql(f'{{ agent(sessionId: "{session_id}", agentId: "agent-0") {{ messageCount }} }}')
    assert count["data"]["agent"]["messageCount"] == 1


async def test_concurrent_batches_of_one_agent_in_opposite_orders_all_succeed(
    server: RunningServer, graphql: GraphQLCall
) -> None:
    """Batches lock their rows in message_id order, whatever order they were sent in: no deadlock.

    Unsorted, two such batches deadlock in most rounds; six rounds make a miss unlikely.
    """
    append = """
    mutation($s: String!, $m: [MessageInput!]!) {
      appendMessages(sessionId: $s, agentId: "agent-0", messages: $m) { messageId }
    }
    """
    batch = [
        {"messageId": i, "message": {"role": "user", "content": [{"text": f"m{i}"}]}} for i in range(300)
    ]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        for _ in range(6):
            session_id = f"order-{uuid.uuid4().hex[:8]}"
            seed_session(graphql, session_id, agents=1, messages=0)
            responses = await asyncio.gather(
                *(
                    client.post("/graphql", json={"query": append, "variables": {"s": session_id, "m": m}})
                    for m in (batch, batch[::-1])
                )
            )

            bodies = [r.json() for r in responses]
            assert all("errors" not in body for body in bodies), [
                b["errors"] for b in bodies if "errors" in b
            ]
            count = graphql(f'{{ agent(sessionId: "{session_id}", agentId: "agent-0") {{ messageCount }} }}')
            assert count["data"]["agent"]["messageCount"] == 300
