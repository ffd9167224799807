"""Restoring an agent with more messages than the server returns in one list: the client pages."""

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from client import AsyncGraphQLSessionRepository, GraphQLSessionRepository
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
