"""Graphs and Swarms persisted as Strands snapshots through GraphQLStorage resume from them, and
``forkSession`` copies a session that an agent of either session manager resumes from.

As in ``test_storage_snapshots``, a restart is played by building new Strands objects with new
clients and the same ids; the API is then asked what it shows.
"""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from strands import Agent
from strands._identifier import new_uuid7
from strands.multiagent import GraphBuilder, Swarm
from strands.multiagent.graph import Graph
from strands.session.snapshot_session_manager import SnapshotSessionManager
from strands.types.content import Messages

from client import GraphQLSessionRepository, GraphQLStorage
from tests.client_agent_script import model_calls, new_agent, remember
from tests.conftest import GraphQLCall, RunningServer
from tests.fake_model import FakeModel, Reply, failing, scripted, text, tool_call

NewId = Callable[[str], str]
SWARM_ID = "report-team"

MULTI_AGENT_VIEW = """
query View($sessionId: String!, $multiAgentId: String!) {
  session(sessionId: $sessionId) {
    snapshotBacked
    multiAgent(multiAgentId: $multiAgentId) { multiAgentId snapshotBacked state }
  }
}"""

AGENT_VIEW = """
query View($sessionId: String!, $agentId: String!) {
  session(sessionId: $sessionId) {
    sessionId
    snapshotBacked
    agent(agentId: $agentId) {
      snapshotBacked
      messageCount
      messages { message }
      snapshots { snapshotId messageCount }
    }
  }
}"""

FORK = """
mutation Fork($source: String!, $new: String!, $agentId: String, $at: String) {
  forkSession(sourceSessionId: $source, newSessionId: $new, agentId: $agentId, atSnapshotId: $at) {
    sessionId
    snapshotBacked
    messageCount
  }
}"""


class Crash(BaseException):
    """The process dying mid-turn: not an ``Exception``, so no Strands handler records a failure."""


def crash(messages: Messages) -> Reply:
    raise Crash


def storage_manager(url: str, session_id: str, **manager_args: Any) -> SnapshotSessionManager:
    return SnapshotSessionManager(session_id=session_id, storage=GraphQLStorage(url), **manager_args)


def snapshot_agent(url: str, session_id: str, agent_id: str = "support", **manager_args: Any) -> Agent:
    return Agent(
        agent_id=agent_id,
        tools=[remember],
        model=FakeModel(),
        callback_handler=None,
        session_manager=storage_manager(url, session_id, **manager_args),
    )


def two_step_graph(url: str, session_id: str, second_step: FakeModel) -> Graph:
    """``draft`` then ``review``, persisted as snapshots in ``session_id``."""
    builder = GraphBuilder()
    builder.add_node(
        Agent(name="draft", model=FakeModel(scripted(text("a draft"))), callback_handler=None), "draft"
    )
    builder.add_node(Agent(name="review", model=second_step, callback_handler=None), "review")
    builder.add_edge("draft", "review")
    builder.set_max_node_executions(10)
    builder.set_session_manager(storage_manager(url, session_id))
    return builder.build()


def report_swarm(url: str, session_id: str, writer: FakeModel) -> Swarm:
    """A researcher who hands the task to a writer, persisted as snapshots in ``session_id``."""
    handoff = {"agent_name": "writer", "message": "write it up"}
    researcher = Agent(
        name="researcher",
        model=FakeModel(scripted(tool_call("handoff_to_agent", handoff, "handoff-1"), text("handed off"))),
        callback_handler=None,
    )
    team = [researcher, Agent(name="writer", model=writer, callback_handler=None)]
    return Swarm(team, session_manager=storage_manager(url, session_id), id=SWARM_ID)


def node_model_calls(graph: Graph, node_id: str) -> int:
    executor = graph.nodes[node_id].executor
    assert isinstance(executor, Agent)
    return model_calls(executor)


def shown(graphql: GraphQLCall, query: str, **variables: str) -> Any:
    answer = graphql(query, variables)
    assert "errors" not in answer, answer
    return answer["data"]["session"]


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def latest_key(session_id: str, scope: str, scope_id: str) -> str:
    return f"session/{session_id}/scopes/{scope}/{scope_id}/snapshots/snapshot_latest.json"


def test_a_graph_that_failed_resumes_from_its_snapshot_without_rerunning_finished_nodes(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    first = two_step_graph(server.url, session_id, FakeModel(failing(RuntimeError("reviewer unavailable"))))
    with pytest.raises(RuntimeError, match="reviewer unavailable"):
        first("write the release notes")
    session = shown(graphql, MULTI_AGENT_VIEW, sessionId=session_id, multiAgentId=first.id)
    assert session["snapshotBacked"] is True
    assert session["multiAgent"]["snapshotBacked"] is True
    stored = session["multiAgent"]["state"]
    assert (stored["status"], stored["completed_nodes"], stored["next_nodes_to_execute"]) == (
        "failed",
        ["draft"],
        ["review"],
    )

    second = two_step_graph(server.url, session_id, FakeModel(scripted(text("approved"))))
    result = second("write the release notes")

    assert [node.node_id for node in result.execution_order] == ["draft", "review"]
    assert {node_id: str(node.result).strip() for node_id, node in result.results.items()} == {
        "draft": "a draft",
        "review": "approved",
    }
    assert node_model_calls(second, "draft") == 0
    assert node_model_calls(second, "review") == 1
    after = shown(graphql, MULTI_AGENT_VIEW, sessionId=session_id, multiAgentId=second.id)["multiAgent"]
    assert after["state"] == as_json(second.serialize_state())
    # Strands leaves a resumed Graph's status "failed" (its failed_nodes keep the node that failed
    # before); what matters here is that the store holds what the Graph serialized, all done.
    done = after["state"]
    assert (sorted(done["completed_nodes"]), done["next_nodes_to_execute"]) == (["draft", "review"], [])
    # Only the orchestrator is stored: Strands keeps no session of a Graph's node agents.
    keys = asyncio.run(GraphQLStorage(server.url).list(f"session/{session_id}/"))
    assert keys == [latest_key(session_id, "multiAgent", second.id)]


def test_a_swarm_that_crashed_mid_turn_resumes_at_the_agent_it_handed_off_to(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    with pytest.raises(Crash):
        report_swarm(server.url, session_id, FakeModel(crash))("write a report")
    stored = shown(graphql, MULTI_AGENT_VIEW, sessionId=session_id, multiAgentId=SWARM_ID)["multiAgent"]
    assert stored["snapshotBacked"] is True
    assert (stored["state"]["node_history"], stored["state"]["next_nodes_to_execute"]) == (
        ["researcher"],
        ["writer"],
    )

    swarm = report_swarm(server.url, session_id, FakeModel(scripted(text("the report"))))
    result = swarm("write a report")

    assert [node.node_id for node in result.node_history] == ["researcher", "writer"]
    assert str(result.results["writer"].result).strip() == "the report"
    assert model_calls(swarm.nodes["researcher"].executor) == 0
    assert model_calls(swarm.nodes["writer"].executor) == 1
    session = shown(graphql, MULTI_AGENT_VIEW, sessionId=session_id, multiAgentId=SWARM_ID)
    assert session["snapshotBacked"] is True
    assert session["multiAgent"] == {
        "multiAgentId": SWARM_ID,
        "snapshotBacked": True,
        "state": as_json(swarm.serialize_state()),
    }
    assert session["multiAgent"]["state"]["status"] == "completed"


def fork(graphql: GraphQLCall, source: str, new: str, **point: str) -> dict[str, Any]:
    return graphql(FORK, {"source": source, "new": new, **point})


def forked(graphql: GraphQLCall, source: str, new: str, **point: str) -> dict[str, Any]:
    answer = fork(graphql, source, new, **point)
    assert "errors" not in answer, answer
    session: dict[str, Any] = answer["data"]["forkSession"]
    assert session["sessionId"] == new
    return session


def test_a_snapshot_agent_resumes_from_a_fork_and_goes_its_own_way(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    source, copy = new_id("session"), new_id("fork")
    original = snapshot_agent(server.url, source)
    original('use remember {"key": "city", "value": "Lisbon"}')
    original("what do you know?")

    made = forked(graphql, source, copy)

    assert made == {"sessionId": copy, "snapshotBacked": True, "messageCount": len(original.messages)}
    resumed = snapshot_agent(server.url, copy)
    assert resumed.messages == original.messages
    assert resumed.state.get() == {"city": "Lisbon"}
    resumed("and now?")
    assert len(resumed.messages) == len(original.messages) + 2
    assert snapshot_agent(server.url, copy).messages == resumed.messages
    # The source is as it was, in the graph and for Strands.
    assert snapshot_agent(server.url, source).messages == original.messages
    at_source = shown(graphql, AGENT_VIEW, sessionId=source, agentId="support")["agent"]
    at_copy = shown(graphql, AGENT_VIEW, sessionId=copy, agentId="support")["agent"]
    assert at_source["messageCount"] == len(original.messages)
    assert [m["message"] for m in at_copy["messages"]] == as_json(resumed.messages)
    keys = asyncio.run(GraphQLStorage(server.url).list(f"session/{copy}/"))
    assert keys == [latest_key(copy, "agent", "support")]


def test_a_repository_agent_resumes_from_a_fork(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    source, copy = new_id("session"), new_id("fork")
    original = new_agent(server.url, source, "support")
    original('use remember {"key": "city", "value": "Porto"}')
    original("what do you know?")

    made = forked(graphql, source, copy)

    assert made == {"sessionId": copy, "snapshotBacked": False, "messageCount": len(original.messages)}
    resumed = new_agent(server.url, copy, "support")
    assert resumed.messages == original.messages
    assert resumed.state.get() == {"city": "Porto"}
    resumed("and now?")
    repository = GraphQLSessionRepository(server.url)
    assert [m.message for m in repository.list_messages(copy, "support")] == resumed.messages
    assert [m.message for m in repository.list_messages(source, "support")] == original.messages


def test_a_fork_at_a_checkpoint_resumes_from_that_checkpoint(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    source, copy = new_id("session"), new_id("fork")
    original = snapshot_agent(server.url, source, snapshot_trigger=lambda **_: True)
    for prompt in ("one", "two", "three"):
        original(prompt)
    checkpoints = shown(graphql, AGENT_VIEW, sessionId=source, agentId="support")["agent"]["snapshots"]
    assert [c["messageCount"] for c in checkpoints] == [2, 4, 6]
    second = checkpoints[1]["snapshotId"]

    made = forked(graphql, source, copy, agentId="support", at=second)

    assert made == {"sessionId": copy, "snapshotBacked": True, "messageCount": 4}
    agent = shown(graphql, AGENT_VIEW, sessionId=copy, agentId="support")["agent"]
    assert agent["snapshots"] == checkpoints[:2]
    assert [m["message"] for m in agent["messages"]] == as_json(original.messages[:4])
    resumed = snapshot_agent(server.url, copy)
    assert resumed.messages == original.messages[:4]
    ids = asyncio.run(storage_manager(server.url, copy).list_snapshot_ids(resumed))
    assert ids == [c["snapshotId"] for c in checkpoints[:2]]
    reply = str(resumed("four")).strip()
    assert reply == "echo: four | I see: one / two / four"
    assert len(snapshot_agent(server.url, copy).messages) == 6
    assert shown(graphql, AGENT_VIEW, sessionId=source, agentId="support")["agent"]["messageCount"] == 6


def test_a_fork_of_one_agent_copies_that_agent_as_it_is_now(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    source, copy = new_id("session"), new_id("fork")
    snapshot_agent(server.url, source, agent_id="support")("hello")
    billing = snapshot_agent(server.url, source, agent_id="billing")
    billing("bill me")
    billing("and again")

    made = forked(graphql, source, copy, agentId="billing")

    assert made == {"sessionId": copy, "snapshotBacked": True, "messageCount": 4}
    agents = graphql("query($s: String!) { session(sessionId: $s) { agents { agentId } } }", {"s": copy})
    assert agents["data"]["session"]["agents"] == [{"agentId": "billing"}]
    keys = asyncio.run(GraphQLStorage(server.url).list(f"session/{copy}/"))
    assert keys == [latest_key(copy, "agent", "billing")]
    resumed = snapshot_agent(server.url, copy, agent_id="billing")
    assert resumed.messages == billing.messages
    assert snapshot_agent(server.url, copy, agent_id="support").messages == []


def assert_absent(graphql: GraphQLCall, server: RunningServer, session_id: str) -> None:
    answer = graphql("query($s: String!) { session(sessionId: $s) { sessionId } }", {"s": session_id})
    assert answer == {"data": {"session": None}}
    assert asyncio.run(GraphQLStorage(server.url).list(f"session/{session_id}/")) == []


def error_code(answer: dict[str, Any]) -> str:
    assert answer.get("data") is None, answer
    code: str = answer["errors"][0]["extensions"]["code"]
    return code


def test_a_fork_that_cannot_be_made_leaves_nothing_behind(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    source, taken, copy = new_id("session"), new_id("taken"), new_id("fork")
    original = snapshot_agent(server.url, source, snapshot_trigger=lambda **_: True)
    original("hello")
    other = snapshot_agent(server.url, taken)
    other("I was here first")

    assert error_code(fork(graphql, new_id("missing"), copy)) == "NOT_FOUND"
    assert_absent(graphql, server, copy)
    assert error_code(fork(graphql, source, taken)) == "ALREADY_EXISTS"
    assert snapshot_agent(server.url, taken).messages == other.messages
    assert error_code(fork(graphql, source, copy, at=new_uuid7())) == "BAD_USER_INPUT"
    assert_absent(graphql, server, copy)
    assert error_code(fork(graphql, source, copy, agentId="support", at=new_uuid7())) == "NOT_FOUND"
    assert_absent(graphql, server, copy)
    assert error_code(fork(graphql, source, copy, agentId="nobody", at=new_uuid7())) == "NOT_FOUND"
    assert_absent(graphql, server, copy)
    assert error_code(fork(graphql, source, copy, agentId="nobody")) == "NOT_FOUND"
    assert_absent(graphql, server, copy)
    # Strands can hold a session that is no session row yet: a checkpoint saved on its own.
    checkpointed = new_id("checkpointed")
    manager = storage_manager(server.url, checkpointed)
    lone = Agent(agent_id="support", model=FakeModel(), callback_handler=None)
    lone.messages.append({"role": "user", "content": [{"text": "a history of its own"}]})
    lone_id = asyncio.run(manager.save_snapshot(lone, is_latest=False))
    assert error_code(fork(graphql, source, checkpointed)) == "ALREADY_EXISTS"
    assert asyncio.run(manager.list_snapshot_ids(lone)) == [lone_id]
    assert asyncio.run(
        GraphQLStorage(server.url).list(f"session/{checkpointed}/scopes/agent/support/snapshots/")
    ) == [f"session/{checkpointed}/scopes/agent/support/snapshots/immutable_history/snapshot_{lone_id}.json"]
    # The same fork, asked properly, then works.
    assert forked(graphql, source, copy)["messageCount"] == 2
