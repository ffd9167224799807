"""The client's ``labels=`` and ``update_session``: who and where a conversation belongs to, set by
the program that runs the agent, and what a dashboard then filters on."""

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from strands import Agent
from strands.session import RepositorySessionManager
from strands.types.session import Session, SessionType

from client import (
    AsyncGraphQLSessionRepository,
    GraphQLSessionRepository,
    SessionBadInputError,
    SessionNotFoundError,
)
from tests.conftest import GraphQLCall, RunningServer
from tests.fake_model import FakeModel

NewId = Callable[[str], str]

SESSION = """
query($sessionId: String!) { session(sessionId: $sessionId) { labels title updatedAt lastActivityAt } }
"""
SESSIONS_LABELLED = """
query($labels: JSON!, $prefix: String!) {
  sessions(filter: {labels: $labels, sessionIdPrefix: $prefix}) { nodes { sessionId } totalCount }
}
"""


def stored(graphql: GraphQLCall, session_id: str) -> dict[str, Any]:
    body = graphql(SESSION, {"sessionId": session_id})
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]["session"]
    return found


def labelled_agent(url: str, session_id: str, labels: dict[str, str]) -> Agent:
    repository = GraphQLSessionRepository(url, labels=labels)
    manager = RepositorySessionManager(session_id=session_id, session_repository=repository)
    return Agent(agent_id="support", model=FakeModel(), session_manager=manager, callback_handler=None)


def test_sessions_an_agent_creates_carry_the_repositorys_labels_and_dashboards_find_them(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    prefix = new_id("labels")
    labelled_agent(server.url, f"{prefix}-ana", {"user": "ana", "channel": "web"})("hello")
    labelled_agent(server.url, f"{prefix}-bo", {"user": "bo", "channel": "web"})("hi")

    assert stored(graphql, f"{prefix}-ana")["labels"] == {"user": "ana", "channel": "web"}
    ana = graphql(SESSIONS_LABELLED, {"labels": {"user": "ana"}, "prefix": prefix})["data"]["sessions"]
    web = graphql(SESSIONS_LABELLED, {"labels": {"channel": "web"}, "prefix": prefix})["data"]["sessions"]
    assert [node["sessionId"] for node in ana["nodes"]] == [f"{prefix}-ana"]
    assert web["totalCount"] == 2


def test_restoring_an_agent_keeps_the_labels_it_was_created_with(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("labels")
    labelled_agent(server.url, session_id, {"user": "ana"})("hello")
    # The restored session is read, not created, so another program's labels change nothing.
    labelled_agent(server.url, session_id, {"user": "someone-else"})("again")

    assert stored(graphql, session_id)["labels"] == {"user": "ana"}


def test_update_session_sets_title_and_labels_and_leaves_out_what_it_is_not_given(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("labels")
    labelled_agent(server.url, session_id, {"user": "ana"})("my card was charged twice")
    before = stored(graphql, session_id)

    with GraphQLSessionRepository(server.url) as repository:
        repository.update_session(session_id, title="Double charge")
        assert stored(graphql, session_id)["labels"] == {"user": "ana"}
        repository.update_session(session_id, labels={"user": "ana", "topic": "billing"})
        after = stored(graphql, session_id)

    assert after["title"] == "Double charge"
    assert after["labels"] == {"user": "ana", "topic": "billing"}
    assert after["updatedAt"] > before["updatedAt"]
    # Relabelling is not conversation: recent-activity listings keep their order.
    assert after["lastActivityAt"] == before["lastActivityAt"]


def test_empty_labels_and_empty_title_remove_them(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("labels")
    labelled_agent(server.url, session_id, {"user": "ana"})("hello")
    with GraphQLSessionRepository(server.url) as repository:
        repository.update_session(session_id, title="Greeting")
        repository.update_session(session_id, labels={}, title="")

    assert stored(graphql, session_id) | {"updatedAt": None, "lastActivityAt": None} == {
        "labels": {},
        "title": None,
        "updatedAt": None,
        "lastActivityAt": None,
    }


def test_update_session_of_a_missing_session_raises_not_found(server: RunningServer, new_id: NewId) -> None:
    with GraphQLSessionRepository(server.url) as repository, pytest.raises(SessionNotFoundError):
        repository.update_session(new_id("missing"), title="nothing here")


@pytest.mark.parametrize(
    "labels",
    [{"user": 7}, {3: "x"}, ["user", "ana"]],
    ids=["number value", "number name", "not a mapping"],
)
def test_labels_that_are_not_strings_are_refused_before_anything_is_sent(labels: Any) -> None:
    # No server at this address: the mistake is reported without a request.
    with pytest.raises(ValueError, match="labels"):
        GraphQLSessionRepository("http://127.0.0.1:9/graphql", labels=labels)


def test_labels_the_server_refuses_raise_bad_input_and_create_no_session(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("labels")
    too_many = {f"k{number}": "v" for number in range(33)}
    with pytest.raises(SessionBadInputError, match="at most 32 labels"):
        labelled_agent(server.url, session_id, too_many)

    assert graphql(SESSION, {"sessionId": session_id})["data"]["session"] is None
    with GraphQLSessionRepository(server.url) as repository:
        with pytest.raises(SessionBadInputError, match="name"):
            repository.update_session(session_id, labels={"no spaces": "x"})
        with pytest.raises(ValueError, match="labels or title"):
            repository.update_session(session_id)


def test_async_repository_takes_labels_and_updates_sessions(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("labels")

    async def run() -> None:
        async with AsyncGraphQLSessionRepository(server.url, labels={"user": "ana"}) as repository:
            await repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
            await repository.update_session(session_id, title="Async", labels={"user": "ana", "env": "test"})
            with pytest.raises(SessionNotFoundError):
                await repository.update_session(f"{session_id}-missing", title="x")

    asyncio.run(run())
    found = stored(graphql, session_id)
    assert (found["labels"], found["title"]) == ({"user": "ana", "env": "test"}, "Async")
