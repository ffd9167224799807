"""Restoring an agent with more messages than the server returns in one list: the client pages."""

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from client import AsyncGraphQLSessionRepository, GraphQLSessionRepository
from client.errors import SessionLimitError
from db.migrate import upgrade
from graphql_api.settings import Limits, Settings
from tests.conftest import RunningServer
from tests.scratch_database import scratch_database

MOST = 5


@pytest.fixture(scope="module")
def small_lists(database_url: str) -> Iterator[RunningServer]:
    """A server that answers at most five messages per list."""
    with scratch_database(database_url) as url:
        upgrade(url)
        server = RunningServer(Settings(database_url=url, limits=replace(Limits(), max_list_size=MOST)))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def seeded(repository: GraphQLSessionRepository, session_id: str, count: int) -> None:
    repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
    repository.create_agent(session_id, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    for n in range(count):
        message = {"role": "user", "content": [{"text": f"m{n}"}]}
        repository.create_message(session_id, "a", SessionMessage(message=message, message_id=n))  # type: ignore[arg-type]


def texts(messages: list[SessionMessage]) -> list[str]:
    return [str(m.message["content"][0]["text"]) for m in messages]


@pytest.mark.parametrize("count", [0, 4, 5, 12])
def test_list_messages_pages_past_the_servers_largest_list(small_lists: RunningServer, count: int) -> None:
    with GraphQLSessionRepository(small_lists.url, message_page_size=MOST) as repository:
        seeded(repository, f"paged-{count}", count)

        everything = repository.list_messages(f"paged-{count}", "a")
        window = repository.list_messages(f"paged-{count}", "a", limit=7, offset=3)

    assert texts(everything) == [f"m{n}" for n in range(count)]
    assert texts(window) == [f"m{n}" for n in range(3, min(count, 10))]


async def test_the_async_client_pages_too(small_lists: RunningServer) -> None:
    with GraphQLSessionRepository(small_lists.url, message_page_size=MOST) as repository:
        seeded(repository, "paged-async", 11)
    async with AsyncGraphQLSessionRepository(small_lists.url, message_page_size=MOST) as repository:
        found: Any = await repository.list_messages("paged-async", "a")

    assert texts(found) == [f"m{n}" for n in range(11)]


def test_asking_the_server_for_more_than_its_largest_list_says_how_to_page(
    small_lists: RunningServer,
) -> None:
    with GraphQLSessionRepository(small_lists.url, message_page_size=MOST) as repository:
        seeded(repository, "unpaged", MOST + 1)
    with (
        GraphQLSessionRepository(small_lists.url, message_page_size=MOST + 1) as too_big,
        pytest.raises(Exception, match="limit") as raised,
    ):
        too_big.list_messages("unpaged", "a")

    assert getattr(raised.value, "code", None) == "BAD_USER_INPUT"


@pytest.fixture(scope="module")
def small_answers(database_url: str) -> Iterator[RunningServer]:
    """A server whose answers hold at most 64 KB: a page of large messages is over it."""
    limits = replace(Limits(), max_response_bytes=64 * 1024)
    server = RunningServer(Settings(database_url=database_url, limits=limits))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def large_messages(repository: GraphQLSessionRepository, session_id: str, count: int) -> None:
    repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
    repository.create_agent(session_id, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    for n in range(count):
        message = {"role": "user", "content": [{"text": f"m{n} " + "x" * 10_000}]}
        repository.create_message(session_id, "a", SessionMessage(message=message, message_id=n))  # type: ignore[arg-type]


def test_a_restore_over_the_servers_answer_budget_asks_again_in_smaller_pages(
    small_answers: RunningServer, new_id: Any
) -> None:
    session_id = new_id("large")
    with GraphQLSessionRepository(small_answers.url) as repository:
        large_messages(repository, session_id, 30)  # 300 KB: in pages of at most 6

        restored = repository.list_messages(session_id, "a")

    assert [text.split(" ")[0] for text in texts(restored)] == [f"m{n}" for n in range(30)]


async def test_the_async_client_asks_in_smaller_pages_too(small_answers: RunningServer, new_id: Any) -> None:
    session_id = new_id("large")
    with GraphQLSessionRepository(small_answers.url) as repository:
        large_messages(repository, session_id, 12)
    async with AsyncGraphQLSessionRepository(small_answers.url) as repository:
        found: Any = await repository.list_messages(session_id, "a", offset=2)

    assert [text.split(" ")[0] for text in texts(found)] == [f"m{n}" for n in range(2, 12)]


def test_one_message_over_the_answer_budget_is_response_too_large(
    small_answers: RunningServer, new_id: Any
) -> None:
    session_id = new_id("huge")
    with GraphQLSessionRepository(small_answers.url) as repository:
        repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
        repository.create_agent(
            session_id, SessionAgent(agent_id="a", state={}, conversation_manager_state={})
        )
        message = {"role": "user", "content": [{"text": "y" * 100_000}]}
        repository.create_message(session_id, "a", SessionMessage(message=message, message_id=0))  # type: ignore[arg-type]

        with pytest.raises(SessionLimitError) as raised:
            repository.list_messages(session_id, "a")

    assert raised.value.code == "RESPONSE_TOO_LARGE"
