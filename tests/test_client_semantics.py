"""Each rule the repositories promise, checked against the real server with both clients.

The rules are those of Strands' own FileSessionManager and S3SessionManager, so that
RepositorySessionManager works unchanged. The async client runs on its own event loop here and is
called like the sync one, so every rule holds for both.
"""

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from strands.multiagent.base import MultiAgentBase, MultiAgentResult
from strands.types.exceptions import SessionException
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from client import (
    AsyncGraphQLSessionRepository,
    GraphQLSessionRepository,
    SessionAlreadyExistsError,
    SessionBadInputError,
    SessionConflictError,
    SessionNotFoundError,
)
from tests.conftest import GraphQLCall, RunningServer

NewId = Callable[[str], str]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\xff\xfe"


class Orchestrator(MultiAgentBase):
    """A custom multi-agent whose state is whatever the test sets; Strands' extension point."""

    def __init__(self, multi_agent_id: str, state: dict[str, Any]) -> None:
        super().__init__()
        self.id = multi_agent_id
        self.state = state

    async def invoke_async(self, task: Any, invocation_state: Any = None, **kwargs: Any) -> MultiAgentResult:
        raise NotImplementedError

    def serialize_state(self) -> dict[str, Any]:
        return self.state


class AsyncOnItsOwnLoop:
    """The async repository with its coroutines run on a private loop, callable like the sync one."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="async-repository", daemon=True)
        self.thread.start()
        self.repository = AsyncGraphQLSessionRepository(url)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.repository, name)
        return lambda *args, **kwargs: asyncio.run_coroutine_threadsafe(
            method(*args, **kwargs), self.loop
        ).result()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.repository.aclose(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="module", params=["sync", "async"])
def repository(request: pytest.FixtureRequest, server: RunningServer) -> Iterator[Any]:
    if request.param == "sync":
        with GraphQLSessionRepository(server.url) as sync_repository:
            yield sync_repository
    else:
        async_repository = AsyncOnItsOwnLoop(server.url)
        yield async_repository
        async_repository.close()


@pytest.fixture
def session_id(repository: Any, new_id: NewId) -> str:
    session = Session(session_id=new_id("session"), session_type=SessionType.AGENT)
    repository.create_session(session)
    return session.session_id


@pytest.fixture
def agent_id(repository: Any, session_id: str, new_id: NewId) -> str:
    agent = SessionAgent(agent_id=new_id("agent"), state={}, conversation_manager_state={})
    repository.create_agent(session_id, agent)
    return agent.agent_id


def user_message(message_id: int, said: str = "hello") -> SessionMessage:
    return SessionMessage(message={"role": "user", "content": [{"text": said}]}, message_id=message_id)


def some_time_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def stored_ids(repository: Any, session_id: str, agent_id: str, **window: Any) -> list[int]:
    return [message.message_id for message in repository.list_messages(session_id, agent_id, **window)]


# Reading what is missing


def test_reading_anything_of_a_missing_session_returns_none(repository: Any, new_id: NewId) -> None:
    missing = new_id("missing")

    assert repository.read_session(missing) is None
    assert repository.read_agent(missing, "agent") is None
    assert repository.read_message(missing, "agent", 0) is None
    assert repository.read_multi_agent(missing, "graph") is None
    assert repository.list_messages(missing, "agent") == []


def test_reading_missing_things_of_an_existing_session_returns_none(
    repository: Any, session_id: str, agent_id: str
) -> None:
    assert repository.read_agent(session_id, "no-such-agent") is None
    assert repository.read_message(session_id, "no-such-agent", 0) is None
    assert repository.read_message(session_id, agent_id, 0) is None
    assert repository.read_multi_agent(session_id, "no-such-graph") is None
    assert repository.list_messages(session_id, "no-such-agent") == []


# Creating sessions


def test_create_session_returns_the_stored_session(repository: Any, new_id: NewId) -> None:
    session = Session(
        session_id=new_id("session"), session_type=SessionType.AGENT, created_at=some_time_ago(3)
    )

    created = repository.create_session(session)

    assert created == session
    assert repository.read_session(session.session_id) == session


def test_create_session_of_an_existing_id_raises_session_exception(repository: Any, session_id: str) -> None:
    with pytest.raises(SessionException) as raised:
        repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))

    assert isinstance(raised.value, SessionAlreadyExistsError)
    assert raised.value.code == "ALREADY_EXISTS"


# Updating what is missing, and keeping created_at


def test_update_agent_of_a_missing_agent_raises_session_exception(repository: Any, session_id: str) -> None:
    missing = SessionAgent(agent_id="no-such-agent", state={}, conversation_manager_state={})

    with pytest.raises(SessionNotFoundError):
        repository.update_agent(session_id, missing)


def test_update_message_of_a_missing_message_raises_session_exception(
    repository: Any, session_id: str, agent_id: str
) -> None:
    with pytest.raises(SessionNotFoundError):
        repository.update_message(session_id, agent_id, user_message(7))


def test_update_multi_agent_of_a_missing_state_raises_session_exception(
    repository: Any, session_id: str
) -> None:
    with pytest.raises(SessionNotFoundError):
        repository.update_multi_agent(session_id, Orchestrator("no-such-graph", {"step": 1}))


def test_update_agent_keeps_created_at(repository: Any, session_id: str, new_id: NewId) -> None:
    created_at = some_time_ago(2)
    first = SessionAgent(
        agent_id=new_id("agent"), state={"n": 1}, conversation_manager_state={}, created_at=created_at
    )
    repository.create_agent(session_id, first)
    second = SessionAgent(agent_id=first.agent_id, state={"n": 2}, conversation_manager_state={"removed": 4})

    repository.update_agent(session_id, second)

    stored = repository.read_agent(session_id, first.agent_id)
    assert (stored.state, stored.conversation_manager_state) == ({"n": 2}, {"removed": 4})
    assert stored.created_at == created_at
    assert second.created_at == created_at  # as Strands' file and S3 stores leave it


def test_update_message_keeps_created_at(repository: Any, session_id: str, agent_id: str) -> None:
    original = user_message(0, "my card is 4111 1111 1111 1111")
    original.created_at = some_time_ago(1)
    repository.create_message(session_id, agent_id, original)
    redacted = user_message(0, "my card is 4111 1111 1111 1111")
    redacted.redact_message = {"role": "user", "content": [{"text": "[redacted]"}]}

    repository.update_message(session_id, agent_id, redacted)

    stored = repository.read_message(session_id, agent_id, 0)
    assert stored.redact_message == {"role": "user", "content": [{"text": "[redacted]"}]}
    assert stored.created_at == original.created_at
    assert redacted.created_at == original.created_at


def test_update_multi_agent_keeps_created_at(repository: Any, session_id: str, graphql: GraphQLCall) -> None:
    repository.create_multi_agent(session_id, Orchestrator("graph", {"step": 1}))
    query = 'query($s: String!) { multiAgent(sessionId: $s, multiAgentId: "graph") { createdAt updatedAt } }'
    before = graphql(query, {"s": session_id})["data"]["multiAgent"]

    repository.update_multi_agent(session_id, Orchestrator("graph", {"step": 2}))

    after = graphql(query, {"s": session_id})["data"]["multiAgent"]
    assert repository.read_multi_agent(session_id, "graph") == {"step": 2}
    assert after["createdAt"] == before["createdAt"]
    assert after["updatedAt"] > before["updatedAt"]


# Listing messages


def test_list_messages_orders_by_integer_message_id(repository: Any, session_id: str, agent_id: str) -> None:
    for message_id in (10, 2, 0, 11, 1, 3):
        repository.create_message(session_id, agent_id, user_message(message_id, f"message {message_id}"))

    listed = repository.list_messages(session_id, agent_id)

    assert [m.message_id for m in listed] == [0, 1, 2, 3, 10, 11]
    assert [m.message["content"][0]["text"] for m in listed][-1] == "message 11"


def test_list_messages_offset_and_limit_are_positions_in_that_order(
    repository: Any, session_id: str, agent_id: str
) -> None:
    repository.append_messages(session_id, agent_id, [user_message(i) for i in (0, 1, 5, 7, 20)])

    assert stored_ids(repository, session_id, agent_id, offset=2) == [5, 7, 20]
    assert stored_ids(repository, session_id, agent_id, offset=1, limit=2) == [1, 5]
    assert stored_ids(repository, session_id, agent_id, limit=3) == [0, 1, 5]


def test_list_messages_with_limit_zero_returns_nothing(
    repository: Any, session_id: str, agent_id: str
) -> None:
    repository.append_messages(session_id, agent_id, [user_message(0), user_message(1)])

    assert repository.list_messages(session_id, agent_id, limit=0) == []


def test_list_messages_from_past_the_end_returns_nothing(
    repository: Any, session_id: str, agent_id: str
) -> None:
    repository.append_messages(session_id, agent_id, [user_message(0), user_message(1)])

    assert repository.list_messages(session_id, agent_id, offset=2) == []
    assert repository.list_messages(session_id, agent_id, offset=50, limit=10) == []


# Exactly as stored


def test_bytes_come_back_exactly_as_stored(repository: Any, session_id: str, new_id: NewId) -> None:
    image = {"image": {"format": "png", "source": {"bytes": PNG}}}
    agent = SessionAgent(
        agent_id=new_id("agent"),
        state={"thumbnail": PNG, "nested": [{"raw": b"\x00\x01"}]},
        conversation_manager_state={},
    )
    repository.create_agent(session_id, agent)
    message = SessionMessage(message={"role": "user", "content": [{"text": "look"}, image]}, message_id=0)
    message.redact_message = {"role": "user", "content": [{"document": {"source": {"bytes": b"%PDF-1.7"}}}]}

    repository.create_message(session_id, agent.agent_id, message)

    assert repository.read_message(session_id, agent.agent_id, 0) == message
    assert repository.list_messages(session_id, agent.agent_id) == [message]
    assert repository.read_agent(session_id, agent.agent_id).state == agent.state


def test_multi_agent_state_comes_back_exactly_as_stored(repository: Any, session_id: str) -> None:
    envelope = {"__bytes_encoded__": True, "data": "iVBORw0KGgo="}
    state = {
        "type": "custom",
        "status": "executing",
        "current_task": [{"text": "résumé ✓"}, {"image": {"format": "png", "source": {"bytes": envelope}}}],
        "execution_time": 1234,
        "ratio": 0.1,
        "big": 2**53 + 1,
        "empty": {},
        "nothing": None,
        "flags": [True, False],
    }

    repository.create_multi_agent(session_id, Orchestrator("team", state))

    assert repository.read_multi_agent(session_id, "team") == state


# Ids


@pytest.fixture(scope="module")
def unreachable_url() -> str:
    """An address where nothing listens: a request sent there would fail as a transport error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/graphql"


def agent_named(agent_id: str) -> SessionAgent:
    return SessionAgent(agent_id=agent_id, state={}, conversation_manager_state={})


CALLS_WITH_BAD_IDS: dict[str, Callable[[Any], Any]] = {
    "create_session": lambda r: r.create_session(Session(session_id="a/b", session_type=SessionType.AGENT)),
    "read_session": lambda r: r.read_session("a/b"),
    "delete_session": lambda r: r.delete_session("..\\b"),
    "create_agent": lambda r: r.create_agent("s", agent_named("../etc")),
    "read_agent": lambda r: r.read_agent("s", "a/b"),
    "update_agent": lambda r: r.update_agent("a/b", agent_named("agent")),
    "delete_agent": lambda r: r.delete_agent("s", "a\\b"),
    "create_message": lambda r: r.create_message("s", "a/b", user_message(0)),
    "append_messages": lambda r: r.append_messages("a/b", "agent", [user_message(0)]),
    "read_message": lambda r: r.read_message("s/", "agent", 0),
    "update_message": lambda r: r.update_message("s", "/agent", user_message(0)),
    "list_messages": lambda r: r.list_messages("s", "a/b"),
    "create_multi_agent": lambda r: r.create_multi_agent("s", Orchestrator("g/1", {})),
    "read_multi_agent": lambda r: r.read_multi_agent("s", "g/1"),
    "update_multi_agent": lambda r: r.update_multi_agent("s/1", Orchestrator("g", {})),
}


@pytest.mark.parametrize("client_kind", ["sync", "async"])
@pytest.mark.parametrize("method", sorted(CALLS_WITH_BAD_IDS))
def test_ids_with_path_separators_raise_value_error_before_any_request(
    unreachable_url: str, client_kind: str, method: str
) -> None:
    if client_kind == "sync":
        with (
            GraphQLSessionRepository(unreachable_url, retries=0) as sync_repository,
            pytest.raises(ValueError),
        ):
            CALLS_WITH_BAD_IDS[method](sync_repository)
        return
    async_repository = AsyncOnItsOwnLoop(unreachable_url)
    try:
        with pytest.raises(ValueError, match="path separators"):
            CALLS_WITH_BAD_IDS[method](async_repository)
    finally:
        async_repository.close()


# Server errors


def test_a_missing_thing_raises_not_found(repository: Any, new_id: NewId) -> None:
    with pytest.raises(SessionNotFoundError) as raised:
        repository.delete_session(new_id("missing"))

    assert raised.value.code == "NOT_FOUND"
    assert raised.value.operation == "DeleteSession"


def test_creating_an_agent_in_a_missing_session_raises_not_found(repository: Any, new_id: NewId) -> None:
    with pytest.raises(SessionNotFoundError):
        repository.create_agent(new_id("missing"), agent_named("agent"))


def test_creating_an_existing_agent_raises_already_exists(
    repository: Any, session_id: str, agent_id: str
) -> None:
    with pytest.raises(SessionAlreadyExistsError) as raised:
        repository.create_agent(session_id, agent_named(agent_id))

    assert raised.value.code == "ALREADY_EXISTS"


def test_resending_an_equal_message_succeeds(repository: Any, session_id: str, agent_id: str) -> None:
    message = user_message(0, "once")
    repository.create_message(session_id, agent_id, message)

    repository.create_message(session_id, agent_id, message)

    assert repository.list_messages(session_id, agent_id) == [message]


def test_a_changed_message_under_a_stored_id_raises_conflict(
    repository: Any, session_id: str, agent_id: str
) -> None:
    repository.create_message(session_id, agent_id, user_message(0, "first"))

    with pytest.raises(SessionConflictError) as raised:
        repository.create_message(session_id, agent_id, user_message(0, "second"))

    assert raised.value.code == "CONFLICT"
    assert repository.read_message(session_id, agent_id, 0).message["content"] == [{"text": "first"}]


def test_bad_input_raises_bad_input_naming_the_field(repository: Any, session_id: str, agent_id: str) -> None:
    with pytest.raises(SessionBadInputError) as raised:
        repository.list_messages(session_id, agent_id, offset=-1)

    assert raised.value.code == "BAD_USER_INPUT"
    assert raised.value.field == "offset"


def test_a_value_that_is_not_json_raises_bad_input_without_a_request(
    repository: Any, session_id: str, new_id: NewId
) -> None:
    agent = SessionAgent(agent_id=new_id("agent"), state={"seen": {1, 2}}, conversation_manager_state={})

    with pytest.raises(SessionBadInputError, match="could not be sent"):
        repository.create_agent(session_id, agent)

    assert repository.read_agent(session_id, agent.agent_id) is None


# The methods beyond Strands' interface


def test_append_messages_stores_all_of_them_or_none(repository: Any, session_id: str, agent_id: str) -> None:
    repository.append_messages(session_id, agent_id, [user_message(0), user_message(1)])

    with pytest.raises(SessionConflictError):
        repository.append_messages(session_id, agent_id, [user_message(2), user_message(1, "changed")])

    assert stored_ids(repository, session_id, agent_id) == [0, 1]


def test_delete_agent_removes_it_and_its_messages(repository: Any, session_id: str, agent_id: str) -> None:
    repository.create_message(session_id, agent_id, user_message(0))

    repository.delete_agent(session_id, agent_id)

    assert repository.read_agent(session_id, agent_id) is None
    assert repository.read_message(session_id, agent_id, 0) is None
    with pytest.raises(SessionNotFoundError):
        repository.delete_agent(session_id, agent_id)


def test_delete_session_removes_everything_in_it(repository: Any, session_id: str, agent_id: str) -> None:
    repository.create_message(session_id, agent_id, user_message(0))
    repository.create_multi_agent(session_id, Orchestrator("graph", {"step": 1}))

    repository.delete_session(session_id)

    assert repository.read_session(session_id) is None
    assert repository.read_agent(session_id, agent_id) is None
    assert repository.read_multi_agent(session_id, "graph") is None


def test_list_sessions_pages_to_the_limit_newest_first(repository: Any, new_id: NewId) -> None:
    mine = [Session(session_id=new_id("listed"), session_type=SessionType.AGENT) for _ in range(5)]
    for session in mine:
        repository.create_session(session)
    everything = repository.list_sessions()

    paged = repository.list_sessions(limit=7, page_size=2)

    assert paged == everything[:7]
    listed_ids = [session.session_id for session in everything]
    positions = [listed_ids.index(session.session_id) for session in mine]
    assert positions == sorted(positions, reverse=True)


def test_list_sessions_without_limit_returns_every_session_once(repository: Any, session_id: str) -> None:
    listed = repository.list_sessions()

    created = [session.created_at for session in listed]
    assert created == sorted(created, reverse=True)
    assert len({session.session_id for session in listed}) == len(listed)
    assert session_id in {session.session_id for session in listed}
