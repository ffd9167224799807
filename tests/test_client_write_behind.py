"""Write-behind: message writes and agent updates return at once and are delivered in order later.

Everything is checked against the real server, and what was stored is read back through the
server (or its database, for the order the rows were written in), never through the repository
under test.
"""

import asyncio
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import uvicorn
from strands import Agent
from strands.session import RepositorySessionManager
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from client import (
    AsyncGraphQLSessionRepository,
    GraphQLSessionRepository,
    SessionBadInputError,
    SessionTransportError,
)
from graphql_api.settings import Limits, Settings
from tests.client_agent_script import remember
from tests.conftest import GraphQLCall, RunningServer
from tests.fake_model import REDACTED_INPUT, FakeModel
from tests.test_client_transport import Gateway, unused_port

NewId = Callable[[str], str]
REPO_ROOT = Path(__file__).resolve().parent.parent
FAST = {"backoff": 0.02}

STORED = """
query($s: String!, $a: String!) {
  agent(sessionId: $s, agentId: $a) { messageCount state messages { messageId message redactMessage } }
}"""


def said(message_id: int, text: str | None = None) -> SessionMessage:
    content = [{"text": f"message {message_id}" if text is None else text}]
    return SessionMessage({"role": "user", "content": content}, message_id)  # type: ignore[typeddict-item]


def new_session(url: str, new_id: NewId, agent_id: str = "agent") -> str:
    session_id = new_id("session")
    with GraphQLSessionRepository(url) as repository:
        repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
        repository.create_agent(
            session_id, SessionAgent(agent_id=agent_id, state={}, conversation_manager_state={})
        )
    return session_id


def stored_texts(graphql: GraphQLCall, session_id: str, agent_id: str = "agent") -> list[str]:
    """The agent's messages as the server has them, each one's text, checked against its count."""
    agent = graphql(STORED, {"s": session_id, "a": agent_id})["data"]["agent"]
    assert agent["messageCount"] == len(agent["messages"])  # the totals counted no resend twice
    assert [m["messageId"] for m in agent["messages"]] == list(range(len(agent["messages"])))
    return [m["message"]["content"][0]["text"] for m in agent["messages"]]


def agent_with(repository: GraphQLSessionRepository, session_id: str) -> Agent:
    manager = RepositorySessionManager(session_id=session_id, session_repository=repository)
    return Agent(
        agent_id="support",
        model=FakeModel(),
        tools=[remember],
        session_manager=manager,
        callback_handler=None,
    )


# With Strands


def test_an_agents_conversation_written_behind_is_restored_by_a_new_agent(
    server: RunningServer, new_id: NewId
) -> None:
    session_id = new_id("session")
    repository = GraphQLSessionRepository(server.url, write_behind=True)
    first = agent_with(repository, session_id)
    first("hello")
    first('use remember {"key": "city", "value": "Lisbon"}')
    first("tell me something forbidden")  # a redaction: update_message after its create_message

    # Through the same repository, the restore waits for the writes still queued.
    from_same_repository = agent_with(repository, session_id)
    repository.close()
    restored = agent_with(GraphQLSessionRepository(server.url), session_id)

    assert len(first.messages) == 8
    assert from_same_repository.messages == first.messages
    assert restored.messages == first.messages
    assert restored.messages[6]["content"] == [{"text": REDACTED_INPUT}]
    assert restored.state.get() == {"city": "Lisbon"}
    assert str(restored("and now?")).startswith("echo: and now? | I see: hello / use remember")


# Reading, flushing, closing


def test_reads_of_a_session_wait_for_its_pending_writes(server: RunningServer, new_id: NewId) -> None:
    session_id = new_id("session")
    with GraphQLSessionRepository(server.url, write_behind=True) as repository:
        repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
        agent = SessionAgent(agent_id="agent", state={}, conversation_manager_state={})
        repository.create_agent(session_id, agent)
        for message_id in range(300):
            repository.create_message(session_id, "agent", said(message_id))
        redacted = said(7)
        redacted.redact_message = {"role": "user", "content": [{"text": "[redacted]"}]}
        repository.update_message(session_id, "agent", redacted)
        agent.state = {"turns": 300}
        repository.update_agent(session_id, agent)

        listed = repository.list_messages(session_id, "agent")
        stored_agent = repository.read_agent(session_id, "agent")
        seventh = repository.read_message(session_id, "agent", 7)

    assert [m.message["content"][0]["text"] for m in listed] == [f"message {i}" for i in range(300)]
    assert stored_agent is not None and stored_agent.state == {"turns": 300}
    assert seventh is not None and seventh.to_message()["content"] == [{"text": "[redacted]"}]


def test_flush_and_close_deliver_what_was_written_as_it_was_when_written(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_session(server.url, new_id)
    repository = GraphQLSessionRepository(server.url, write_behind=True)
    changed_later = said(0, "as written")
    repository.create_message(session_id, "agent", changed_later)
    changed_later.message["content"][0]["text"] = "changed after the call returned"
    for message_id in range(1, 200):
        repository.create_message(session_id, "agent", said(message_id))

    repository.flush()
    after_flush = stored_texts(graphql, session_id)
    for message_id in range(200, 300):
        repository.create_message(session_id, "agent", said(message_id))
    repository.close()

    assert after_flush == ["as written"] + [f"message {i}" for i in range(1, 200)]
    assert stored_texts(graphql, session_id)[200:] == [f"message {i}" for i in range(200, 300)]
    with pytest.raises(SessionTransportError, match="closed"):
        repository.create_message(session_id, "agent", said(300))


def test_writes_of_a_repository_never_closed_are_delivered_at_exit(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_session(server.url, new_id)
    program = textwrap.dedent(
        f"""
        from strands.types.session import SessionMessage
        from client import GraphQLSessionRepository

        repository = GraphQLSessionRepository({server.url!r}, write_behind=True)
        for i in range(200):
            message = {{"role": "user", "content": [{{"text": f"message {{i}}"}}]}}
            repository.create_message({session_id!r}, "agent", SessionMessage(message, i))
        repository.create_message({session_id!r}, "agent", SessionMessage(message, -1))
        """
    )

    finished = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )

    assert finished.returncode == 0, finished.stderr
    assert stored_texts(graphql, session_id) == [f"message {i}" for i in range(200)]
    # The write the server refused is not dropped silently: the exit logs it.
    assert "not delivered before exit" in finished.stderr
    assert "BAD_USER_INPUT" in finished.stderr


# Failures


def test_a_refused_write_is_raised_by_the_next_call_for_its_session_and_later_writes_are_not_sent(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, other_session = new_session(server.url, new_id), new_session(server.url, new_id)
    repository = GraphQLSessionRepository(server.url, write_behind=True)
    for message_id in (0, 1, 2, -1, 3, 4):  # the server refuses a negative message id
        repository.create_message(session_id, "agent", said(message_id))
    repository.create_message(other_session, "agent", said(0))

    assert repository.read_session(other_session) is not None  # another session's failure is not its own
    with pytest.raises(SessionBadInputError) as raised:
        repository.read_session(session_id)
    assert raised.value.field == "message.messageId"
    assert "nor the 2 writes of the session queued after it" in "\n".join(raised.value.__notes__)

    # Raised once; the session then takes writes again, after the last one stored.
    assert [m.message_id for m in repository.list_messages(session_id, "agent")] == [0, 1, 2]
    repository.create_message(session_id, "agent", said(3))
    repository.close()
    assert stored_texts(graphql, session_id) == [f"message {i}" for i in range(4)]
    assert stored_texts(graphql, other_session) == ["message 0"]


def test_a_refused_write_is_raised_by_flush_or_by_the_next_write(
    server: RunningServer, new_id: NewId
) -> None:
    session_id = new_session(server.url, new_id)
    repository = GraphQLSessionRepository(server.url, write_behind=True)
    repository.create_message(session_id, "agent", said(-1))
    with pytest.raises(SessionBadInputError):
        repository.flush()
    repository.flush()  # raised once

    repository.create_message(session_id, "agent", said(-2))
    repository.list_sessions(limit=1)  # waits for every session's writes, raises none of their failures
    with pytest.raises(SessionBadInputError):
        repository.create_message(session_id, "agent", said(0))
    repository.close()


# The bound on pending writes, and a server that is away


def test_a_full_queue_blocks_the_next_write_until_the_server_is_back(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_session(server.url, new_id)
    port = unused_port()
    repository = GraphQLSessionRepository(
        f"http://127.0.0.1:{port}/graphql", write_behind=True, max_pending=2, **FAST
    )
    started = time.monotonic()
    repository.create_message(session_id, "agent", said(0))
    repository.create_message(session_id, "agent", said(1))
    returned_at_once = time.monotonic() - started
    gateways: list[Gateway] = []
    threading.Timer(0.5, lambda: gateways.append(Gateway(server.port, port=port))).start()

    repository.create_message(session_id, "agent", said(2))  # blocks: two writes already wait
    blocked = time.monotonic() - started
    repository.close()
    gateways[0].close()

    assert returned_at_once < 0.1
    assert blocked >= 0.45
    assert stored_texts(graphql, session_id) == ["message 0", "message 1", "message 2"]


def test_a_write_that_finds_no_server_fails_after_write_behind_retry_seconds(new_id: NewId) -> None:
    url = f"http://127.0.0.1:{unused_port()}/graphql"
    repository = GraphQLSessionRepository(
        url, write_behind=True, max_pending=2, write_behind_retry_seconds=0.3, **FAST
    )
    started = time.monotonic()  # the sender's first attempt starts its 0.3 s
    repository.create_message("lost", "agent", said(0))
    repository.create_message("lost", "agent", said(1))

    with pytest.raises(SessionTransportError) as raised:
        repository.create_message("lost", "agent", said(2))  # blocks until the sender gives up

    assert 0.25 <= time.monotonic() - started < 5
    assert raised.value.never_sent
    repository.close()


def test_consecutive_messages_of_an_agent_go_as_one_append_messages_request(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_session(server.url, new_id)
    port = unused_port()
    repository = GraphQLSessionRepository(f"http://127.0.0.1:{port}/graphql", write_behind=True, **FAST)
    for message_id in range(250):
        repository.create_message(session_id, "agent", said(message_id))
    agent = SessionAgent(agent_id="agent", state={"after": 250}, conversation_manager_state={})
    repository.update_agent(session_id, agent)
    for message_id in range(250, 260):
        repository.create_message(session_id, "agent", said(message_id))
    gateway = Gateway(server.port, port=port)  # the server "comes back" with all of them queued
    repository.close()
    gateway.close()

    sent: list[Any] = []
    for request in gateway.requests:
        variables = request["variables"]
        if request["operationName"] == "UpdateAgent":
            sent.append("update")
        else:
            messages = variables.get("messages") or [variables["message"]]
            assert len(messages) <= 100
            sent.extend(message["messageId"] for message in messages)
    assert sent == [*range(250), "update", *range(250, 260)]
    assert len(gateway.requests) <= 6  # 250 messages in batches of 100, the first maybe alone
    assert gateway.operations()[-1] == "AppendMessages"
    assert len(stored_texts(graphql, session_id)) == 260


def test_a_batch_whose_answer_was_lost_is_resent_and_stored_once(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_session(server.url, new_id)
    port = unused_port()
    repository = GraphQLSessionRepository(f"http://127.0.0.1:{port}/graphql", write_behind=True, **FAST)
    for message_id in range(50):
        repository.create_message(session_id, "agent", said(message_id))
    gateway = Gateway(server.port, port=port)
    gateway.answers_to_lose = 2  # the server stores the batch; the sender never hears so
    repository.close()
    gateway.close()

    assert len(gateway.requests) >= 3
    assert stored_texts(graphql, session_id) == [f"message {i}" for i in range(50)]


def new_agents(url: str, new_id: NewId, sessions: int, agents: tuple[str, ...] = ("agent",)) -> list[str]:
    made = []
    with GraphQLSessionRepository(url) as repository:
        for _ in range(sessions):
            session_id = new_id("session")
            repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
            for agent_id in agents:
                agent = SessionAgent(agent_id=agent_id, state={}, conversation_manager_state={})
                repository.create_agent(session_id, agent)
            made.append(session_id)
    return made


def first_write_sent_alone(
    repository: GraphQLSessionRepository, session_id: str, agent_id: str = "agent"
) -> None:
    """Message 0: the sender takes it as soon as it is queued, alone, and retries it until a server
    answers; the writes queued after it then wait together."""
    repository.create_message(session_id, agent_id, said(0))
    time.sleep(0.2)


def appended(request: dict[str, Any]) -> list[tuple[str, str, list[int]]]:
    """The agents a request appends to, in its order, with the message ids each one gets."""
    variables = request["variables"]
    if request["operationName"] == "AppendMessages":
        return [
            (variables["sessionId"], variables["agentId"], [m["messageId"] for m in variables["messages"]])
        ]
    if request["operationName"] == "CreateMessage":
        return [(variables["sessionId"], variables["agentId"], [variables["message"]["messageId"]])]
    assert request["operationName"] == "AppendMessagesOfAgents"
    return [
        (variables[f"s{n}"], variables[f"a{n}"], [m["messageId"] for m in variables[f"m{n}"]])
        for n in range(len(variables) // 3)
    ]


def test_messages_of_several_agents_go_in_one_request_each_agents_in_order(
    server: RunningServer, graphql: GraphQLCall, database_url: str, new_id: NewId
) -> None:
    sessions = new_agents(server.url, new_id, 3)
    [pair] = new_agents(server.url, new_id, 1, ("planner", "coder"))
    port = unused_port()
    repository = GraphQLSessionRepository(f"http://127.0.0.1:{port}/graphql", write_behind=True, **FAST)
    first_write_sent_alone(repository, sessions[0])
    for message_id in range(30):  # three agents taking turns, each in its own session
        for session_id in sessions:
            if (session_id, message_id) != (sessions[0], 0):
                repository.create_message(session_id, "agent", said(message_id))
    for agent_id in ("planner", "coder"):  # two agents of one session, one after the other
        for message_id in range(10):
            repository.create_message(pair, agent_id, said(message_id))
    gateway = Gateway(server.port, port=port)  # the server "comes back" with all of them queued
    repository.close()
    gateway.close()

    assert gateway.operations() == ["CreateMessage", "AppendMessagesOfAgents"]
    assert appended(gateway.requests[1]) == [
        *((session_id, "agent", list(range(30))) for session_id in sessions[1:]),
        (sessions[0], "agent", list(range(1, 30))),
        (pair, "planner", list(range(10))),
        (pair, "coder", list(range(10))),
    ]
    for session_id in sessions:
        assert stored_texts(graphql, session_id) == [f"message {i}" for i in range(30)]
    assert stored_texts(graphql, pair, "planner") == stored_texts(graphql, pair, "coder")
    assert asyncio.run(insertion_order(database_url, pair)) == [*range(10), *range(10)]


def test_a_sessions_agents_taking_turns_keep_the_sessions_order_of_writes(
    server: RunningServer, graphql: GraphQLCall, database_url: str, new_id: NewId
) -> None:
    [session_id] = new_agents(server.url, new_id, 1, ("a", "b"))
    [other] = new_agents(server.url, new_id, 1)
    port = unused_port()
    repository = GraphQLSessionRepository(f"http://127.0.0.1:{port}/graphql", write_behind=True, **FAST)
    first_write_sent_alone(repository, other)
    repository.create_message(session_id, "a", said(0))
    repository.create_message(session_id, "b", said(0))
    repository.create_message(session_id, "a", said(1))  # "a" again after "b": in the next request
    repository.create_message(other, "agent", said(1))
    repository.create_message(session_id, "b", said(1))
    gateway = Gateway(server.port, port=port)
    repository.close()
    gateway.close()

    assert [appended(request) for request in gateway.requests] == [
        [(other, "agent", [0])],
        [(session_id, "a", [0]), (session_id, "b", [0])],
        [(session_id, "a", [1]), (other, "agent", [1]), (session_id, "b", [1])],
    ]
    assert stored_texts(graphql, session_id, "a") == stored_texts(graphql, session_id, "b")
    assert asyncio.run(insertion_order(database_url, session_id)) == [0, 0, 1, 1]


def test_a_refused_message_in_a_request_of_several_agents_fails_only_its_session(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, other_session = new_agents(server.url, new_id, 2)
    port = unused_port()
    repository = GraphQLSessionRepository(f"http://127.0.0.1:{port}/graphql", write_behind=True, **FAST)
    first_write_sent_alone(repository, other_session)
    for number, message_id in enumerate((0, 1, -1, 2, 3)):  # the server refuses a negative message id
        repository.create_message(session_id, "agent", said(message_id))
        if number:
            repository.create_message(other_session, "agent", said(number))
    gateway = Gateway(server.port, port=port)
    with pytest.raises(SessionBadInputError) as raised:
        repository.flush()
    repository.close()
    gateway.close()

    assert "nor the 2 writes of the session queued after it" in "\n".join(raised.value.__notes__)
    assert gateway.operations()[1] == "AppendMessagesOfAgents"  # then each agent's by itself
    assert stored_texts(graphql, session_id) == ["message 0", "message 1"]
    assert stored_texts(graphql, other_session) == [f"message {i}" for i in range(5)]


def test_a_server_refusing_that_many_aliases_gets_fewer_agents_a_request(
    database_url: str, graphql: GraphQLCall, new_id: NewId
) -> None:
    narrow = RunningServer(Settings(database_url=database_url, limits=Limits(max_aliases=4)))
    narrow.start()
    try:
        sessions = new_agents(narrow.url, new_id, 12)
        port = unused_port()
        repository = GraphQLSessionRepository(f"http://127.0.0.1:{port}/graphql", write_behind=True, **FAST)
        first_write_sent_alone(repository, sessions[0])
        for message_id in range(2):
            for session_id in sessions:
                if (session_id, message_id) != (sessions[0], 0):
                    repository.create_message(session_id, "agent", said(message_id))
            agent = SessionAgent(agent_id="agent", state={"turn": message_id}, conversation_manager_state={})
            repository.update_agent(sessions[0], agent)  # ends the batch
        gateway = Gateway(narrow.port, port=port)
        repository.close()
        gateway.close()
    finally:
        narrow.stop()

    # The first alone; 11 agents: refused, each alone; the next 12: 5 refused, each alone, then 2 by 2.
    assert [len(appended(r)) for r in gateway.requests if r["operationName"] != "UpdateAgent"] == [
        1,
        11,
        *[1] * 11,
        5,
        *[1] * 5,
        2,
        2,
        2,
        1,
    ]
    for session_id in sessions:
        assert stored_texts(graphql, session_id) == ["message 0", "message 1"]


async def test_async_messages_of_several_agents_go_in_one_request(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    sessions = new_agents(server.url, new_id, 4)
    port = unused_port()
    async with AsyncGraphQLSessionRepository(
        f"http://127.0.0.1:{port}/graphql", write_behind=True, **FAST
    ) as repository:
        await repository.create_message(sessions[0], "agent", said(0))
        await asyncio.sleep(0.2)  # the sender takes it alone
        for message_id in range(5):
            for session_id in sessions:
                if (session_id, message_id) != (sessions[0], 0):
                    await repository.create_message(session_id, "agent", said(message_id))
        gateway = Gateway(server.port, port=port)
    gateway.close()

    assert gateway.operations() == ["CreateMessage", "AppendMessagesOfAgents"]
    assert appended(gateway.requests[1]) == [
        *((session_id, "agent", list(range(5))) for session_id in sessions[1:]),
        (sessions[0], "agent", [1, 2, 3, 4]),
    ]
    for session_id in sessions:
        assert stored_texts(graphql, session_id) == [f"message {i}" for i in range(5)]


# Through a server restart


class ServerOnPort(RunningServer):
    """A test server on a port of the test's choosing, so a new one can take over a stopped one's."""

    def __init__(self, settings: Settings, port: int) -> None:
        super().__init__(settings)
        self.port = port
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)


class Restarts:
    """Stops the server when ``begin`` is set, and starts a new one on its port a moment later."""

    def __init__(self, database_url: str) -> None:
        self.settings = Settings(database_url=database_url)
        self.port = unused_port()
        self.running = ServerOnPort(self.settings, self.port)
        self.running.start()
        self.begin = threading.Event()
        self.down = threading.Event()
        self.back = threading.Event()
        self.thread = threading.Thread(target=self._restart, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return self.running.url

    def _restart(self) -> None:
        self.begin.wait()
        self.running.stop()
        self.down.set()
        time.sleep(0.5)
        self.running = ServerOnPort(self.settings, self.port)
        self.running.start()
        self.back.set()

    def stop(self) -> None:
        self.begin.set()
        self.thread.join(30)
        self.running.stop()


@pytest.fixture
def restarts(database_url: str) -> Iterator[Restarts]:
    running = Restarts(database_url)
    yield running
    running.stop()


async def insertion_order(database_url: str, session_id: str) -> list[int]:
    """Message ids in the order their rows were written: by the transaction that wrote them."""
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT message_id FROM session_messages WHERE session_id = $1 "
            "ORDER BY xmin::text::bigint, message_id",
            session_id,
        )
    finally:
        await conn.close()
    return [row["message_id"] for row in rows]


MESSAGES = 1000
RESTART_AT = 300


def test_a_thousand_messages_through_a_server_restart_are_all_stored_once_in_order(
    restarts: Restarts, database_url: str, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_session(restarts.url, new_id)
    repository = GraphQLSessionRepository(restarts.url, write_behind=True, **FAST)
    while_down = 0
    call_seconds = []
    for message_id in range(MESSAGES):
        if message_id == RESTART_AT:
            restarts.begin.set()
        started = time.perf_counter()
        repository.create_message(session_id, "agent", said(message_id))
        call_seconds.append(time.perf_counter() - started)
        while_down += restarts.down.is_set() and not restarts.back.is_set()
        time.sleep(0.001)  # the agent's model thinks between messages
    repository.close()

    assert restarts.back.is_set() and while_down > 0
    assert stored_texts(graphql, session_id) == [f"message {i}" for i in range(MESSAGES)]
    assert asyncio.run(insertion_order(database_url, session_id)) == list(range(MESSAGES))
    assert statistics.median(call_seconds) < 0.001


async def test_async_a_thousand_messages_through_a_server_restart_are_all_stored_once_in_order(
    restarts: Restarts, database_url: str, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_session(restarts.url, new_id)
    while_down = 0
    async with AsyncGraphQLSessionRepository(restarts.url, write_behind=True, **FAST) as repository:
        for message_id in range(MESSAGES):
            if message_id == RESTART_AT:
                restarts.begin.set()
            await repository.create_message(session_id, "agent", said(message_id))
            while_down += restarts.down.is_set() and not restarts.back.is_set()
            await asyncio.sleep(0.001)

    assert restarts.back.is_set() and while_down > 0
    assert stored_texts(graphql, session_id) == [f"message {i}" for i in range(MESSAGES)]
    assert await insertion_order(database_url, session_id) == list(range(MESSAGES))


# The async repository


async def test_async_reads_wait_for_pending_writes_and_async_with_delivers_the_rest(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_session(server.url, new_id)
    async with AsyncGraphQLSessionRepository(server.url, write_behind=True) as repository:
        for message_id in range(200):
            await repository.create_message(session_id, "agent", said(message_id))
        agent = SessionAgent(agent_id="agent", state={"turns": 200}, conversation_manager_state={})
        await repository.update_agent(session_id, agent)
        listed = await repository.list_messages(session_id, "agent")
        stored_agent = await repository.read_agent(session_id, "agent")
        for message_id in range(200, 300):
            await repository.create_message(session_id, "agent", said(message_id))

    assert len(listed) == 200
    assert stored_agent is not None and stored_agent.state == {"turns": 200}
    assert stored_texts(graphql, session_id) == [f"message {i}" for i in range(300)]


async def test_async_a_refused_write_is_raised_by_the_next_call_and_by_flush(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_session(server.url, new_id)
    repository = AsyncGraphQLSessionRepository(server.url, write_behind=True)
    for message_id in (0, 1, -1, 2):
        await repository.create_message(session_id, "agent", said(message_id))
    with pytest.raises(SessionBadInputError):
        await repository.list_messages(session_id, "agent")
    await repository.create_message(session_id, "agent", said(-1))
    with pytest.raises(SessionBadInputError):
        await repository.flush()
    await repository.flush()
    await repository.aclose()

    assert stored_texts(graphql, session_id) == ["message 0", "message 1"]


async def test_async_a_full_queue_waits_until_the_server_is_back(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_session(server.url, new_id)
    port = unused_port()
    url = f"http://127.0.0.1:{port}/graphql"
    gateways: list[Gateway] = []
    async with AsyncGraphQLSessionRepository(url, write_behind=True, max_pending=2, **FAST) as repository:
        await repository.create_message(session_id, "agent", said(0))
        await repository.create_message(session_id, "agent", said(1))
        started = time.monotonic()
        threading.Timer(0.5, lambda: gateways.append(Gateway(server.port, port=port))).start()
        await repository.create_message(session_id, "agent", said(2))
        blocked = time.monotonic() - started
    gateways[0].close()

    assert blocked >= 0.45
    assert stored_texts(graphql, session_id) == ["message 0", "message 1", "message 2"]


async def test_async_a_write_that_finds_no_server_fails_after_write_behind_retry_seconds() -> None:
    url = f"http://127.0.0.1:{unused_port()}/graphql"
    repository = AsyncGraphQLSessionRepository(url, write_behind=True, write_behind_retry_seconds=0.3, **FAST)
    started = time.monotonic()
    await repository.create_message("lost", "agent", said(0))

    with pytest.raises(SessionTransportError):
        await repository.aclose()

    assert 0.25 <= time.monotonic() - started < 5
