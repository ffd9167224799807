"""Real Strands agents persist through SnapshotSessionManager + GraphQLStorage, and the snapshots
appear in the graph as sessions and agents like any other, with their checkpoints.

Each test talks to an agent, then builds a new Agent with a new storage client and the same ids,
as a restarted program would, and checks what it got back and what the API shows.
"""

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from strands import Agent
from strands.session.snapshot_session_manager import SnapshotSessionManager
from strands.storage import LocalFileStorage

from client import GraphQLSessionRepository, GraphQLStorage, GraphQLStorageError
from tests.client_agent_script import remember
from tests.conftest import GraphQLCall, RunningServer
from tests.fake_model import FakeModel

NewId = Callable[[str], str]
DAY = timedelta(days=1)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x03"

AGENT_VIEW = """
query View($sessionId: String!, $agentId: String!) {
  session(sessionId: $sessionId) {
    snapshotBacked
    totals { messages }
    agent(agentId: $agentId) {
      snapshotBacked
      state
      conversationManagerState
      messageCount
      messages { messageId role message text }
      snapshots { snapshotId key createdAt messageCount size }
    }
  }
}"""


def snapshot_agent(url: str, session_id: str, agent_id: str = "support", **manager_args: Any) -> Agent:
    storage = GraphQLStorage(url)
    manager = SnapshotSessionManager(session_id=session_id, storage=storage, **manager_args)
    return Agent(
        agent_id=agent_id, tools=[remember], session_manager=manager, model=FakeModel(), callback_handler=None
    )


def agent_with_checkpoints(server: RunningServer, new_id: NewId, *turns: str) -> tuple[str, Agent]:
    """A new session whose agent took a checkpoint after each of ``turns``."""
    session_id = new_id("session")
    agent = snapshot_agent(server.url, session_id, snapshot_trigger=lambda **_: True)
    for turn in turns:
        agent(turn)
    return session_id, agent


def as_json(messages: list[Any]) -> list[Any]:
    return [json.loads(json.dumps(message)) for message in messages]


def untracked(messages: list[Any]) -> list[Any]:
    return [{k: v for k, v in message.items() if k != "tracking_id"} for message in messages]


def view(graphql: GraphQLCall, session_id: str, agent_id: str = "support") -> dict[str, Any]:
    answer = graphql(AGENT_VIEW, {"sessionId": session_id, "agentId": agent_id})
    assert "errors" not in answer, answer
    session: dict[str, Any] = answer["data"]["session"]
    return session


def test_an_agent_switches_from_local_files_by_changing_the_storage_line(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId, tmp_path: Any
) -> None:
    session_id = new_id("session")
    prompts = ["hello", 'use remember {"key": "city", "value": "Lisbon"}', "what do you know?"]
    local = Agent(
        agent_id="support",
        tools=[remember],
        model=FakeModel(),
        callback_handler=None,
        session_manager=SnapshotSessionManager(
            session_id=session_id, storage=LocalFileStorage(str(tmp_path))
        ),
    )
    remote = snapshot_agent(server.url, session_id)
    for prompt in prompts:
        local(prompt)
        remote(prompt)

    restored = snapshot_agent(server.url, session_id)

    assert restored.messages == remote.messages
    # The same conversation as with local files, but for Strands' random tracking ids.
    assert untracked(remote.messages) == untracked(local.messages)
    assert restored.state.get() == {"city": "Lisbon"}
    shown = view(graphql, session_id)
    assert shown["snapshotBacked"] is True
    agent = shown["agent"]
    assert agent["snapshotBacked"] is True
    assert agent["state"] == {"city": "Lisbon"}
    assert agent["messageCount"] == len(remote.messages) == shown["totals"]["messages"]
    assert [m["message"] for m in agent["messages"]] == as_json(remote.messages)
    assert agent["messages"][0]["text"] == "hello"
    assert agent["snapshots"] == []  # no trigger: only the latest snapshot


def test_the_latest_snapshot_replaces_the_agents_messages_from_the_first_that_changed(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    agent = snapshot_agent(server.url, session_id)
    agent("first")
    agent("second")
    assert view(graphql, session_id)["agent"]["messageCount"] == 4

    agent.messages[:] = agent.messages[:1]  # history rewritten, as a summarizing manager does
    agent("again")

    shown = view(graphql, session_id)
    assert len(agent.messages) == 3
    assert [m["message"] for m in shown["agent"]["messages"]] == as_json(agent.messages)
    assert shown["agent"]["messageCount"] == len(agent.messages) == shown["totals"]["messages"]


def test_checkpoints_are_listed_readable_and_restorable(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent = agent_with_checkpoints(server, new_id, "one", "two", "three")

    checkpoints = view(graphql, session_id)["agent"]["snapshots"]
    assert [c["messageCount"] for c in checkpoints] == [2, 4, 6]
    first = checkpoints[0]["snapshotId"]
    answer = graphql(
        """query($s: String!, $id: String!) { agent(sessionId: $s, agentId: "support") {
             snapshot(snapshotId: $id) {
               checkpoint { snapshotId messageCount } messages { messageId text message } }
             missing: snapshot(snapshotId: "nope") { checkpoint { snapshotId } } } }""",
        {"s": session_id, "id": first},
    )
    assert "errors" not in answer, answer
    at_first = answer["data"]["agent"]["snapshot"]
    assert at_first["checkpoint"] == {"snapshotId": first, "messageCount": 2}
    assert at_first["messages"][0]["text"] == "one"
    assert [m["message"] for m in at_first["messages"]] == as_json(agent.messages[:2])
    assert answer["data"]["agent"]["missing"] is None

    manager = SnapshotSessionManager(session_id=session_id, storage=GraphQLStorage(server.url))
    back = Agent(agent_id="support", model=FakeModel(), callback_handler=None)
    ids = asyncio.run(manager.list_snapshot_ids(back))
    assert ids == [c["snapshotId"] for c in checkpoints]
    assert asyncio.run(manager.restore_snapshot(back, snapshot_id=first)) is True
    assert back.messages == agent.messages[:2]


def test_agent_checkpoints_is_the_list_its_deprecated_snapshots_field_gives(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, _ = agent_with_checkpoints(server, new_id, "one", "two")

    answer = graphql(
        """query($s: String!) { agent(sessionId: $s, agentId: "support") {
             checkpoints { snapshotId messageCount } snapshots { snapshotId messageCount }
             second: checkpoints(offset: 1, limit: 1) { messageCount } } }""",
        {"s": session_id},
    )
    assert "errors" not in answer, answer
    found = answer["data"]["agent"]
    assert [c["messageCount"] for c in found["checkpoints"]] == [2, 4]
    assert found["snapshots"] == found["checkpoints"]
    assert found["second"] == [{"messageCount": 4}]

    fields = graphql(
        """{ __type(name: "Agent") { fields(includeDeprecated: true) {
             name isDeprecated deprecationReason } } }"""
    )["data"]["__type"]["fields"]
    deprecated = {f["name"]: f["deprecationReason"] for f in fields if f["isDeprecated"]}
    assert deprecated == {"snapshots": "Use checkpoints: the same list, named for what it holds."}


def test_search_and_stats_cover_snapshot_backed_agents(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    word = new_id("zebra").replace("-", "")
    agent = snapshot_agent(server.url, session_id)
    agent(f"tell me about {word}")

    found = graphql(
        """query($q: String!) {
             searchMessages(query: $q) { edges { node { sessionId agentId messageId } } } }""",
        {"q": word},
    )
    assert "errors" not in found, found
    nodes = [edge["node"] for edge in found["data"]["searchMessages"]["edges"]]
    assert {"sessionId": session_id, "agentId": "support", "messageId": 0} in nodes

    hits = asyncio.run(GraphQLStorage(server.url).search(word))
    assert [hit.key for hit in hits] == [
        f"session/{session_id}/scopes/agent/support/snapshots/snapshot_latest.json"
    ]
    assert hits[0].score > 0

    now = datetime.now(UTC)
    stats = graphql(
        """query($f: ConversationFilter, $from: Time!, $to: Time!) { conversationStats(bucket: HOUR,
             from: $from, to: $to, groupBy: AGENT, filter: $f) { totals { messages sessions } } }""",
        {
            "f": {"sessionIdPrefix": session_id},
            "from": f"{now - DAY:%Y-%m-%dT%H:%M:%SZ}",
            "to": f"{now + DAY:%Y-%m-%dT%H:%M:%SZ}",
        },
    )
    assert "errors" not in stats, stats
    assert stats["data"]["conversationStats"]["totals"] == {"messages": 2, "sessions": 1}


def test_bytes_in_messages_round_trip_through_snapshots(server: RunningServer, new_id: NewId) -> None:
    session_id = new_id("session")
    agent = snapshot_agent(server.url, session_id)
    agent([{"text": "what is this?"}, {"image": {"format": "png", "source": {"bytes": PNG}}}])

    restored = snapshot_agent(server.url, session_id)

    assert restored.messages[0]["content"][1]["image"]["source"]["bytes"] == PNG
    assert restored.messages == agent.messages


def test_a_snapshot_cannot_replace_an_agent_stored_message_by_message(
    server: RunningServer, new_id: NewId
) -> None:
    session_id = new_id("session")
    from strands.session import RepositorySessionManager

    repository = GraphQLSessionRepository(server.url)
    logged = Agent(
        agent_id="support",
        model=FakeModel(),
        callback_handler=None,
        session_manager=RepositorySessionManager(session_id=session_id, session_repository=repository),
    )
    logged("hello")

    with pytest.raises(GraphQLStorageError) as raised:
        snapshot_agent(server.url, session_id)("hi")
    assert raised.value.code == "CONFLICT"
    assert (
        GraphQLSessionRepository(server.url).list_messages(session_id, "support")[0].message
        == logged.messages[0]
    )


def test_deleting_the_session_removes_it_from_the_graph(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    manager = SnapshotSessionManager(session_id=session_id, storage=GraphQLStorage(server.url))
    agent = Agent(agent_id="support", model=FakeModel(), callback_handler=None, session_manager=manager)
    agent("hello")
    assert view(graphql, session_id)["agent"]["messageCount"] == 2

    asyncio.run(manager.delete_session())

    assert graphql(AGENT_VIEW, {"sessionId": session_id, "agentId": "support"})["data"]["session"] is None
    assert asyncio.run(GraphQLStorage(server.url).list(f"session/{session_id}/")) == []


def _snapshot_bytes(texts: list[str]) -> bytes:
    messages = [{"role": "user", "content": [{"text": text}]} for text in texts]
    snapshot = {
        "scope": "agent",
        "schema_version": "1.0",
        "created_at": "2026-12-01T10:00:00Z",
        "data": {"messages": messages, "state": {"n": len(texts)}, "conversation_manager_state": {}},
        "app_data": {},
    }
    return json.dumps(snapshot).encode()


def test_concurrent_latest_snapshots_leave_the_agent_as_the_last_one_written(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    key = f"session/{session_id}/scopes/agent/support/snapshots/snapshot_latest.json"
    versions = [_snapshot_bytes([f"turn {n}" for n in range(length)]) for length in (3, 8, 1, 5, 8, 2)]
    storage = GraphQLStorage(server.url)

    async def all_at_once() -> None:
        await asyncio.gather(*(storage.write(key, data) for data in versions))

    asyncio.run(all_at_once())

    stored = asyncio.run(storage.read(key))
    assert stored in versions
    expected = json.loads(stored or b"")["data"]
    agent = view(graphql, session_id)["agent"]
    assert agent["state"] == expected["state"]
    assert [m["message"] for m in agent["messages"]] == expected["messages"]
    assert view(graphql, session_id)["totals"]["messages"] == len(expected["messages"])


def test_delete_session_removes_its_snapshots_from_storage(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    agent = snapshot_agent(server.url, session_id, snapshot_trigger=lambda **_: True)
    agent("hello")
    storage = GraphQLStorage(server.url)
    assert len(asyncio.run(storage.list(f"session/{session_id}/"))) == 2

    answer = graphql("mutation($s: String!) { deleteSession(sessionId: $s) }", {"s": session_id})

    assert answer == {"data": {"deleteSession": True}}
    assert asyncio.run(storage.list(f"session/{session_id}/")) == []
    assert snapshot_agent(server.url, session_id).messages == []  # nothing to come back from


def test_dashboards_can_pick_snapshot_backed_sessions(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    prefix = new_id("pick")
    snapshot_agent(server.url, f"{prefix}-snap")("hello")
    from strands.session import RepositorySessionManager

    repository = GraphQLSessionRepository(server.url)
    Agent(
        agent_id="support",
        model=FakeModel(),
        callback_handler=None,
        session_manager=RepositorySessionManager(session_id=f"{prefix}-log", session_repository=repository),
    )("hello")
    query = """query($f: ConversationFilter) {
      sessions(first: 10, filter: $f) { nodes { sessionId } }
      messages(first: 10, filter: $f) { totalCount }
    }"""

    def picked(backed: bool | None) -> tuple[list[str], int]:
        answer = graphql(query, {"f": {"sessionIdPrefix": prefix, "snapshotBacked": backed}})
        assert "errors" not in answer, answer
        data = answer["data"]
        return sorted(n["sessionId"] for n in data["sessions"]["nodes"]), data["messages"]["totalCount"]

    assert picked(True) == ([f"{prefix}-snap"], 2)
    assert picked(False) == ([f"{prefix}-log"], 2)
    assert picked(None) == ([f"{prefix}-log", f"{prefix}-snap"], 4)
