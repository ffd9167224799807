"""Graphs and Swarms persist their state through GraphQLSessionRepository and resume from it."""

import base64
from collections.abc import Callable

import pytest
from strands import Agent
from strands.multiagent import GraphBuilder
from strands.multiagent.graph import Graph
from strands.session import RepositorySessionManager

from client import GraphQLSessionRepository
from tests.client_agent_script import SWARM_ID, model_calls, new_swarm
from tests.conftest import RunningServer
from tests.fake_model import FakeModel, failing, scripted, text

NewId = Callable[[str], str]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x02"


def two_step_graph(url: str, session_id: str, second_step: FakeModel) -> Graph:
    """``draft`` then ``review``, persisted in ``session_id``."""
    builder = GraphBuilder()
    builder.add_node(
        Agent(name="draft", model=FakeModel(scripted(text("a draft"))), callback_handler=None), "draft"
    )
    builder.add_node(Agent(name="review", model=second_step, callback_handler=None), "review")
    builder.add_edge("draft", "review")
    builder.set_max_node_executions(10)
    repository = GraphQLSessionRepository(url)
    builder.set_session_manager(
        RepositorySessionManager(session_id=session_id, session_repository=repository)
    )
    return builder.build()


def test_graph_resumes_after_a_failed_node_without_rerunning_finished_ones(
    server: RunningServer, new_id: NewId
) -> None:
    session_id = new_id("session")
    first = two_step_graph(server.url, session_id, FakeModel(failing(RuntimeError("reviewer unavailable"))))
    with pytest.raises(RuntimeError, match="reviewer unavailable"):
        first("write the release notes")
    stored = GraphQLSessionRepository(server.url).read_multi_agent(session_id, first.id)
    assert stored is not None
    assert (stored["completed_nodes"], stored["next_nodes_to_execute"]) == (["draft"], ["review"])

    second = two_step_graph(server.url, session_id, FakeModel(scripted(text("approved"))))
    result = second("write the release notes")

    assert [node.node_id for node in result.execution_order] == ["draft", "review"]
    assert {node_id: str(node.result).strip() for node_id, node in result.results.items()} == {
        "draft": "a draft",
        "review": "approved",
    }
    assert model_calls(second.nodes["draft"].executor) == 0
    assert model_calls(second.nodes["review"].executor) == 1


def test_graph_state_with_an_image_task_is_stored_as_strands_serialized_it(
    server: RunningServer, new_id: NewId
) -> None:
    session_id = new_id("session")
    graph = two_step_graph(server.url, session_id, FakeModel(scripted(text("approved"))))

    graph([{"text": "describe this chart"}, {"image": {"format": "png", "source": {"bytes": PNG}}}])

    stored = GraphQLSessionRepository(server.url).read_multi_agent(session_id, graph.id)
    assert stored == graph.serialize_state()
    envelope = {"__bytes_encoded__": True, "data": base64.b64encode(PNG).decode()}
    assert stored["current_task"][1]["image"]["source"]["bytes"] == envelope


def test_swarm_state_is_stored_as_it_runs(server: RunningServer, new_id: NewId) -> None:
    session_id = new_id("session")
    swarm = new_swarm(server.url, session_id)

    swarm("write a report")

    stored = GraphQLSessionRepository(server.url).read_multi_agent(session_id, SWARM_ID)
    assert stored == swarm.serialize_state()
    assert (stored["status"], stored["node_history"]) == ("completed", ["researcher", "writer"])
