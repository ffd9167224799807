"""Storage inputs a review found wanting: each is a coded error or stored as it should be, and
leaves nothing half-written."""

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from strands import Agent
from strands.agent.conversation_manager import SlidingWindowConversationManager
from strands.session.snapshot_session_manager import SnapshotSessionManager

from client import GraphQLStorage, GraphQLStorageError
from tests.conftest import GraphQLCall, RunningServer
from tests.fake_model import FakeModel

NewId = Callable[[str], str]
WRITE = "mutation($k: String!, $d: Base64!) { writeStorageObject(key: $k, data: $d) { size } }"
READ = "query($k: String!) { storageObject(key: $k) }"


def snapshot(data: dict[str, Any], created_at: str = "2026-12-01T10:00:00Z") -> bytes:
    body = {"scope": "agent", "schema_version": "1.0", "created_at": created_at, "data": data, "app_data": {}}
    return json.dumps(body).encode()


def latest_key(session_id: str, agent_id: str = "a") -> str:
    return f"session/{session_id}/scopes/agent/{agent_id}/snapshots/snapshot_latest.json"


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("data", ["abc", "YQ", "@@@@", "YWJj\n", 7])
def test_bytes_that_are_not_base64_are_refused_and_nothing_is_stored(
    graphql: GraphQLCall, new_id: NewId, data: object
) -> None:
    key = f"{new_id('objects')}/x.bin"
    answer = graphql(WRITE, {"k": key, "d": data})
    assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", answer
    assert graphql(READ, {"k": key}) == {"data": {"storageObject": None}}


def test_a_snapshot_nested_deeper_than_stored_json_may_be_is_json_too_deep(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    deep = base64.b64encode(snapshot({"messages": [], "state": {"x": nested(70)}})).decode()
    answer = graphql(WRITE, {"k": latest_key(session_id), "d": deep})
    assert answer["errors"][0]["extensions"]["code"] == "JSON_TOO_DEEP", answer
    session = graphql("query($s: String!) { session(sessionId: $s) { sessionId } }", {"s": session_id})
    assert session == {"data": {"session": None}}


@pytest.mark.parametrize("depth", [68, 500, 960, 5000, 100_000])
@pytest.mark.parametrize(
    ("scope", "name"),
    [
        ("agent", "snapshot_latest.json"),
        ("agent", "immutable_history/snapshot_00001.json"),
        ("multiAgent", "snapshot_latest.json"),
    ],
)
def test_a_snapshot_nested_far_deeper_than_python_reads_is_json_too_deep(
    graphql: GraphQLCall, new_id: NewId, depth: int, scope: str, name: str
) -> None:
    session_id = new_id("session")
    # Written as bytes: json.dumps cannot write 100,000 levels (json.loads gives up near 1,000).
    state = b"[" * depth + b'"leaf"' + b"]" * depth
    data = snapshot({"messages": [], "state": {}}).replace(b'"state": {}', b'"state": ' + state)
    data = data.replace(b'"scope": "agent"', f'"scope": "{scope}"'.encode())
    key = f"session/{session_id}/scopes/{scope}/a/snapshots/{name}"

    answer = graphql(WRITE, {"k": key, "d": base64.b64encode(data).decode()})

    assert answer["errors"][0]["extensions"]["code"] == "JSON_TOO_DEEP", answer
    assert "nests lists and objects more than" in answer["errors"][0]["message"], answer
    assert graphql(READ, {"k": key}) == {"data": {"storageObject": None}}


def test_any_other_json_is_stored_however_deep_it_nests(graphql: GraphQLCall, new_id: NewId) -> None:
    key = f"{new_id('objects')}/deep.json"
    data = b"[" * 5000 + b'"leaf"' + b"]" * 5000
    assert graphql(WRITE, {"k": key, "d": base64.b64encode(data).decode()}) == {
        "data": {"writeStorageObject": {"size": len(data)}}
    }
    assert base64.b64decode(graphql(READ, {"k": key})["data"]["storageObject"]) == data


def test_ids_the_api_cannot_address_leave_a_key_a_plain_object(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = new_id("ctl") + "\n1"
    key = latest_key(session_id, "a\x01b")
    data = snapshot({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
    assert "errors" not in graphql(WRITE, {"k": key, "d": base64.b64encode(data).decode()})
    listed = graphql("{ sessions(first: 1000) { nodes { sessionId } } }")["data"]["sessions"]["nodes"]
    assert session_id not in {node["sessionId"] for node in listed}
    assert base64.b64decode(graphql(READ, {"k": key})["data"]["storageObject"]) == data


def test_integers_beyond_64_bits_stay_exact_and_nan_is_refused(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    storage = GraphQLStorage(server.url)
    asyncio.run(storage.write(latest_key(session_id), snapshot({"messages": [], "state": {"big": 2**70}})))
    agent = graphql('query($s: String!) { agent(sessionId: $s, agentId: "a") { state } }', {"s": session_id})[
        "data"
    ]["agent"]
    assert agent == {"state": {"big": 2**70}}

    refused = b'{"scope": "agent", "schema_version": "1.0", "created_at": "2026-12-01T10:00:00Z", '
    refused += b'"data": {"messages": [], "state": {"x": NaN}}, "app_data": {}}'
    with pytest.raises(GraphQLStorageError) as raised:
        asyncio.run(storage.write(latest_key(session_id), refused))
    assert raised.value.code == "BAD_USER_INPUT"


def test_a_fork_cannot_be_named_dot_dot(graphql: GraphQLCall, new_id: NewId, server: RunningServer) -> None:
    session_id = new_id("session")
    asyncio.run(GraphQLStorage(server.url).write(latest_key(session_id), snapshot({"messages": []})))
    answer = graphql(
        'mutation($s: String!) { forkSession(sourceSessionId: $s, newSessionId: "..") { sessionId } }',
        {"s": session_id},
    )
    assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", answer


def test_a_sliding_window_keeps_message_ids_and_times_as_a_repository_would(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    manager = SnapshotSessionManager(session_id=session_id, storage=GraphQLStorage(server.url))
    agent = Agent(
        agent_id="a",
        model=FakeModel(),
        callback_handler=None,
        session_manager=manager,
        conversation_manager=SlidingWindowConversationManager(window_size=4),
    )
    query = """query($s: String!) { agent(sessionId: $s, agentId: "a") {
      messages { messageId text createdAt } } }"""
    agent("turn 0")
    agent("turn 1")
    before = {m["messageId"]: m for m in graphql(query, {"s": session_id})["data"]["agent"]["messages"]}
    agent("turn 2")
    agent("turn 3")
    assert agent.conversation_manager.removed_message_count > 0

    after = graphql(query, {"s": session_id})["data"]["agent"]["messages"]
    assert [m["messageId"] for m in after] == list(range(8))  # every turn, as a repository stores them
    assert [m["text"] for m in after][::2] == ["turn 0", "turn 1", "turn 2", "turn 3"]
    for message in after[:4]:
        assert message == before[message["messageId"]]  # kept as they were, times included


def test_delete_session_through_strands_leaves_no_session_however_many_keys_go_at_once(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    manager = SnapshotSessionManager(
        session_id=session_id, storage=GraphQLStorage(server.url), snapshot_trigger=lambda **_: True
    )
    agent = Agent(agent_id="a", model=FakeModel(), callback_handler=None, session_manager=manager)
    for turn in range(12):
        agent(f"turn {turn}")

    asyncio.run(manager.delete_session())  # deletes its 13 keys concurrently

    found = graphql("query($s: String!) { session(sessionId: $s) { sessionId } }", {"s": session_id})
    assert found == {"data": {"session": None}}


def test_the_context_stash_goes_with_its_session(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    storage = GraphQLStorage(server.url)
    asyncio.run(storage.write(latest_key(session_id), snapshot({"messages": []})))
    stash = f"context/{session_id}/scopes/agent/a/stash/one.json"
    asyncio.run(storage.write(stash, b'{"kept": "aside"}'))
    fork = new_id("fork")

    forked = graphql(
        "mutation($s: String!, $n: String!) {"
        " forkSession(sourceSessionId: $s, newSessionId: $n) { sessionId } }",
        {"s": session_id, "n": fork},
    )
    assert "errors" not in forked, forked
    assert asyncio.run(storage.read(f"context/{fork}/scopes/agent/a/stash/one.json")) == b'{"kept": "aside"}'

    assert graphql("mutation($s: String!) { deleteSession(sessionId: $s) }", {"s": session_id}) == {
        "data": {"deleteSession": True}
    }
    assert asyncio.run(storage.read(stash)) is None
