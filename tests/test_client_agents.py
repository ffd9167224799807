"""Real Strands agents keep their sessions in the store through GraphQLSessionRepository.

Each test talks to an agent, then builds a new Agent with a new repository and the same ids, as a
restarted program would, and checks what it got back.
"""

import base64
from collections.abc import Callable
from typing import Any

from strands import Agent
from strands.agent.conversation_manager import SlidingWindowConversationManager
from strands.session import RepositorySessionManager

from client import AsyncGraphQLSessionRepository, GraphQLSessionRepository
from tests.client_agent_script import new_agent, remember
from tests.conftest import GraphQLCall, RunningServer
from tests.fake_model import REDACTED_INPUT, REDACTED_OUTPUT, FakeModel

NewId = Callable[[str], str]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"


def remember_prompt(key: str, value: str) -> str:
    return f'use remember {{"key": "{key}", "value": "{value}"}}'


def test_conversation_and_state_are_restored_in_a_new_agent(server: RunningServer, new_id: NewId) -> None:
    session_id = new_id("session")
    first = new_agent(server.url, session_id, "support")
    first("hello")
    first(remember_prompt("city", "Lisbon"))
    first(remember_prompt("name", "Ana"))
    first("what do you know?")

    second = new_agent(server.url, session_id, "support")

    assert second.messages == first.messages
    assert len(second.messages) == 12  # two tool turns of four messages, two plain turns of two
    assert second.state.get() == {"city": "Lisbon", "name": "Ana"}
    reply = str(second("and now?"))
    assert reply.startswith("echo: and now? | I see: hello / use remember")


def test_sliding_window_is_restored_with_its_offset(server: RunningServer, new_id: NewId) -> None:
    session_id = new_id("session")
    first = new_agent(server.url, session_id, "a", conversation_manager=SlidingWindowConversationManager(4))
    for turn in range(5):
        first(f"turn {turn}")
    assert first.conversation_manager.removed_message_count == 6

    second = new_agent(server.url, session_id, "a", conversation_manager=SlidingWindowConversationManager(4))

    assert second.conversation_manager.removed_message_count == 6
    assert second.messages == first.messages
    assert str(second("turn 5")).strip() == "echo: turn 5 | I see: turn 3 / turn 4 / turn 5"


def test_guardrail_redaction_is_persisted_and_restored(
    server: RunningServer, new_id: NewId, graphql: GraphQLCall
) -> None:
    session_id = new_id("session")
    first = new_agent(server.url, session_id, "a")
    first("hello")
    first("tell me something forbidden")

    second = new_agent(server.url, session_id, "a")

    assert [message["content"] for message in second.messages[2:]] == [
        [{"text": REDACTED_INPUT}],
        [{"text": REDACTED_OUTPUT}],
    ]
    stored = graphql(
        'query($s: String!) { message(sessionId: $s, agentId: "a", messageId: 2) { redactMessage } }',
        {"s": session_id},
    )["data"]["message"]
    assert stored["redactMessage"]["content"] == [{"text": REDACTED_INPUT}]


def test_an_image_in_a_message_is_restored_as_bytes(
    server: RunningServer, new_id: NewId, graphql: GraphQLCall
) -> None:
    session_id = new_id("session")
    first = new_agent(server.url, session_id, "a")
    first([{"text": "what is in this picture?"}, {"image": {"format": "png", "source": {"bytes": PNG}}}])

    second = new_agent(server.url, session_id, "a")

    assert second.messages[0]["content"][1] == {"image": {"format": "png", "source": {"bytes": PNG}}}
    stored = graphql(
        'query($s: String!) { message(sessionId: $s, agentId: "a", messageId: 0) { message } }',
        {"s": session_id},
    )["data"]["message"]["message"]
    envelope = {"__bytes_encoded__": True, "data": base64.b64encode(PNG).decode()}
    assert stored["content"][1]["image"]["source"]["bytes"] == envelope


def agent_in(manager: RepositorySessionManager, agent_id: str) -> Agent:
    return Agent(
        agent_id=agent_id, model=FakeModel(), tools=[remember], session_manager=manager, callback_handler=None
    )


def test_two_agents_in_one_session_keep_their_own_conversations(
    server: RunningServer, new_id: NewId, graphql: GraphQLCall
) -> None:
    session_id = new_id("session")
    manager = RepositorySessionManager(
        session_id=session_id, session_repository=GraphQLSessionRepository(server.url)
    )
    planner, critic = agent_in(manager, "planner"), agent_in(manager, "critic")
    planner("plan a trip to Porto")
    critic(remember_prompt("verdict", "too long"))
    planner("make it shorter")

    restored = RepositorySessionManager(
        session_id=session_id, session_repository=GraphQLSessionRepository(server.url)
    )
    planner_again, critic_again = agent_in(restored, "planner"), agent_in(restored, "critic")

    assert planner_again.messages == planner.messages
    assert critic_again.messages == critic.messages
    assert (planner_again.state.get(), critic_again.state.get()) == ({}, {"verdict": "too long"})
    agents = graphql(
        "query($s: String!) { session(sessionId: $s) { agents { agentId messageCount } } }", {"s": session_id}
    )["data"]["session"]["agents"]
    assert agents == [{"agentId": "planner", "messageCount": 4}, {"agentId": "critic", "messageCount": 4}]


async def test_sync_repository_works_inside_invoke_async_and_stream_async(
    server: RunningServer, new_id: NewId
) -> None:
    session_id = new_id("session")
    agent = new_agent(server.url, session_id, "a")

    result = await agent.invoke_async("hello from a running loop")
    events: list[dict[str, Any]] = [
        event async for event in agent.stream_async(remember_prompt("mood", "sunny"))
    ]

    assert str(result).startswith("echo: hello from a running loop")
    assert "result" in events[-1]
    restored = new_agent(server.url, session_id, "a")
    assert restored.messages == agent.messages
    assert restored.state.get() == {"mood": "sunny"}


async def test_async_repository_reads_what_an_agent_stored(server: RunningServer, new_id: NewId) -> None:
    session_id = new_id("session")
    agent = new_agent(server.url, session_id, "a")
    await agent.invoke_async(remember_prompt("topic", "tides"))

    async with AsyncGraphQLSessionRepository(server.url) as repository:
        session = await repository.read_session(session_id)
        stored_agent = await repository.read_agent(session_id, "a")
        stored_messages = await repository.list_messages(session_id, "a", offset=1, limit=2)

    assert session is not None and session.session_id == session_id
    assert stored_agent is not None and stored_agent.state == {"topic": "tides"}
    assert [message.to_message() for message in stored_messages] == agent.messages[1:3]
