"""How the clients use HTTP: one kept-alive connection, one request per call, retries only where
they are safe, credentials in headers, and clear errors when the server cannot be reached.

A real HTTP/1.1 gateway sits between client and server here, as a proxy or an auth gateway would
in production; it counts what passes and can lose answers or refuse credentials.
"""

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

import pytest
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from client import (
    AsyncGraphQLSessionRepository,
    GraphQLSessionRepository,
    SessionAlreadyExistsError,
    SessionForbiddenError,
    SessionTransportError,
    SessionUnauthenticatedError,
)
from client.operations import OPERATIONS
from tests.conftest import RunningServer
from tests.test_client_semantics import Orchestrator

NewId = Callable[[str], str]
FAST_RETRIES = {"retries": 2, "backoff": 0.01}


def read_http_message(stream: BinaryIO) -> bytes | None:
    """One request or response with a Content-Length body, or None when the peer closed."""
    lines = []
    while True:
        line = stream.readline()
        if not line:
            return None
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            break
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return b"".join(lines) + stream.read(length)


def without_authorization(request: bytes) -> bytes:
    head, _, body = request.partition(b"\r\n\r\n")
    lines = [
        line for line in head.split(b"\r\n") if line.partition(b":")[0].strip().lower() != b"authorization"
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def refusal(status: str, reason: str) -> bytes:
    body = reason.encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


class Gateway:
    """Relays HTTP/1.1 between clients and the server, one server connection per client connection."""

    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/graphql"
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.answers_to_lose = 0
        self.token: str | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="gateway", daemon=True).start()

    def operations(self) -> list[str]:
        with self._lock:
            return [request["operationName"] for request in self.requests]

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
            from_client, from_server = client.makefile("rb"), upstream.makefile("rb")
            while (request := read_http_message(from_client)) is not None:
                head, _, body = request.partition(b"\r\n\r\n")
                with self._lock:
                    self.requests.append(json.loads(body))
                refused = self._refusal(head)
                if refused:
                    client.sendall(refused)
                    continue
                if self._checks_credentials():
                    # As an auth gateway does, it consumes the credentials it checked: the server
                    # behind it (which checks bearer tokens of its own) sees none.
                    request = without_authorization(request)
                upstream.sendall(request)
                response = read_http_message(from_server)
                with self._lock:
                    lose = self.answers_to_lose > 0
                    if lose:
                        self.answers_to_lose -= 1
                if response is None or lose:
                    return  # the server did the work; the client sees its connection close unanswered
                client.sendall(response)

    def _checks_credentials(self) -> bool:
        return self.token is not None

    def _refusal(self, head: bytes) -> bytes | None:
        if self.token is None:
            return None
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
        )
        credentials = headers.get(b"authorization")
        if credentials is None:
            return refusal("401 Unauthorized", "credentials required")
        if credentials != f"Bearer {self.token}".encode():
            return refusal("403 Forbidden", "these credentials may not use the session store")
        return None


@pytest.fixture
def gateway(server: RunningServer) -> Iterator[Gateway]:
    running = Gateway(server.port)
    yield running
    running.close()


@pytest.fixture
def session_id(server: RunningServer, new_id: NewId) -> str:
    with GraphQLSessionRepository(server.url) as repository:
        session = repository.create_session(
            Session(session_id=new_id("session"), session_type=SessionType.AGENT)
        )
        repository.create_agent(session.session_id, agent_named("agent"))
    return session.session_id


def agent_named(agent_id: str) -> SessionAgent:
    return SessionAgent(agent_id=agent_id, state={}, conversation_manager_state={})


def user_message(message_id: int, said: str = "hello") -> SessionMessage:
    return SessionMessage(message={"role": "user", "content": [{"text": said}]}, message_id=message_id)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port_url() -> str:
    return f"http://127.0.0.1:{unused_port()}/graphql"


# Connections and requests


def test_sync_repository_keeps_one_connection_for_many_calls(gateway: Gateway, session_id: str) -> None:
    with GraphQLSessionRepository(gateway.url) as repository:
        for message_id in range(10):
            repository.create_message(session_id, "agent", user_message(message_id))
            repository.read_agent(session_id, "agent")

    assert len(gateway.requests) == 20
    assert gateway.connections == 1


async def test_async_repository_keeps_one_connection_for_many_calls(
    gateway: Gateway, session_id: str
) -> None:
    async with AsyncGraphQLSessionRepository(gateway.url) as repository:
        for message_id in range(10):
            await repository.create_message(session_id, "agent", user_message(message_id))
            await repository.read_agent(session_id, "agent")

    assert len(gateway.requests) == 20
    assert gateway.connections == 1


def test_each_repository_call_is_one_request_with_only_its_own_operation(
    gateway: Gateway, new_id: NewId
) -> None:
    session = Session(session_id=new_id("session"), session_type=SessionType.AGENT)
    agent = agent_named("agent")
    message = user_message(0)
    sid = session.session_id
    calls: list[tuple[str, Callable[[GraphQLSessionRepository], object]]] = [
        ("CreateSession", lambda r: r.create_session(session)),
        ("ReadSession", lambda r: r.read_session(sid)),
        ("ListSessions", lambda r: r.list_sessions(limit=3)),
        ("UpdateSession", lambda r: r.update_session(sid, title="t", labels={"user": "ana"})),
        ("CreateAgent", lambda r: r.create_agent(sid, agent)),
        ("ReadAgent", lambda r: r.read_agent(sid, "agent")),
        ("UpdateAgent", lambda r: r.update_agent(sid, agent)),
        ("CreateMessage", lambda r: r.create_message(sid, "agent", message)),
        ("AppendMessages", lambda r: r.append_messages(sid, "agent", [user_message(1), user_message(2)])),
        ("ReadMessage", lambda r: r.read_message(sid, "agent", 0)),
        ("UpdateMessage", lambda r: r.update_message(sid, "agent", message)),
        ("ListMessages", lambda r: r.list_messages(sid, "agent", limit=2, offset=1)),
        ("CreateMultiAgent", lambda r: r.create_multi_agent(sid, Orchestrator("graph", {"step": 1}))),
        ("ReadMultiAgent", lambda r: r.read_multi_agent(sid, "graph")),
        ("UpdateMultiAgent", lambda r: r.update_multi_agent(sid, Orchestrator("graph", {"step": 2}))),
        ("DeleteAgent", lambda r: r.delete_agent(sid, "agent")),
        ("DeleteSession", lambda r: r.delete_session(sid)),
    ]
    with GraphQLSessionRepository(gateway.url) as repository:
        for expected, call in calls:
            sent_before = len(gateway.requests)
            call(repository)
            assert gateway.operations()[sent_before:] == [expected]

    # The Storage operations are GraphQLStorage's (tests/test_storage_protocol.py sends them all),
    # and those after the section mark are export's and import's (tests/test_export_import.py).
    storage = {name for name in OPERATIONS if "Storage" in name}
    moving = {name for name in OPERATIONS if name.startswith(("Export", "Restore"))} | {"CountSessions"}
    watching = {"WatchMessages", "LastMessageId"}  # watch_messages' (tests/test_client_watch.py)
    assert set(gateway.operations()) == set(OPERATIONS) - storage - moving - watching
    for request in gateway.requests:
        assert request["query"] == OPERATIONS[request["operationName"]].query
        assert "__schema" not in request["query"]


def test_one_repository_serves_many_threads(server: RunningServer, new_id: NewId) -> None:
    session = Session(session_id=new_id("session"), session_type=SessionType.AGENT)
    agent_ids = [f"agent-{i}" for i in range(8)]
    with GraphQLSessionRepository(server.url) as repository:
        repository.create_session(session)

        def converse(agent_id: str) -> list[str]:
            repository.create_agent(session.session_id, agent_named(agent_id))
            for message_id in range(10):
                repository.create_message(session.session_id, agent_id, user_message(message_id, agent_id))
            stored = repository.list_messages(session.session_id, agent_id)
            return [message.message["content"][0]["text"] for message in stored]

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(converse, agent_ids))

    assert results == [[agent_id] * 10 for agent_id in agent_ids]


async def test_async_repository_serves_concurrent_tasks(server: RunningServer, new_id: NewId) -> None:
    session = Session(session_id=new_id("session"), session_type=SessionType.AGENT)
    async with AsyncGraphQLSessionRepository(server.url) as repository:
        await repository.create_session(session)
        await repository.create_agent(session.session_id, agent_named("agent"))

        await asyncio.gather(
            *(
                repository.create_message(session.session_id, "agent", user_message(i, f"m{i}"))
                for i in range(30)
            )
        )

        stored = await repository.list_messages(session.session_id, "agent")
    assert [(m.message_id, m.message["content"][0]["text"]) for m in stored] == [
        (i, f"m{i}") for i in range(30)
    ]


# Retries


def test_lost_answer_to_create_message_is_retried_and_the_message_stored_once(
    gateway: Gateway, server: RunningServer, session_id: str
) -> None:
    gateway.answers_to_lose = 1
    with GraphQLSessionRepository(gateway.url, **FAST_RETRIES) as repository:
        repository.create_message(session_id, "agent", user_message(0, "sent twice"))

    assert gateway.operations() == ["CreateMessage", "CreateMessage"]
    with GraphQLSessionRepository(server.url) as repository:
        assert [m.message["content"] for m in repository.list_messages(session_id, "agent")] == [
            [{"text": "sent twice"}]
        ]


async def test_async_lost_answer_to_a_read_is_retried(gateway: Gateway, session_id: str) -> None:
    gateway.answers_to_lose = 2
    async with AsyncGraphQLSessionRepository(gateway.url, **FAST_RETRIES) as repository:
        session = await repository.read_session(session_id)

    assert session is not None
    assert gateway.operations() == ["ReadSession"] * 3


def test_lost_answer_to_create_agent_is_resent_and_its_own_agent_confirmed(
    gateway: Gateway, server: RunningServer, session_id: str
) -> None:
    """Strands creates an agent, then its first messages: a lost answer must not leave only half of it."""
    gateway.answers_to_lose = 1
    with GraphQLSessionRepository(gateway.url, **FAST_RETRIES) as repository:
        repository.create_agent(session_id, agent_named("created-once"))

    # The resend meets ALREADY_EXISTS; reading the agent shows it is the one this call stored.
    assert gateway.operations() == ["CreateAgent", "CreateAgent", "ReadAgent"]
    with GraphQLSessionRepository(server.url) as repository:
        assert repository.read_agent(session_id, "created-once") is not None


def test_lost_answer_to_create_agent_over_someone_elses_agent_still_raises_already_exists(
    gateway: Gateway, server: RunningServer, session_id: str
) -> None:
    theirs = SessionAgent(agent_id="taken", state={"owner": "them"}, conversation_manager_state={})
    with GraphQLSessionRepository(server.url) as repository:
        repository.create_agent(session_id, theirs)
    gateway.answers_to_lose = 1
    mine = SessionAgent(agent_id="taken", state={"owner": "me"}, conversation_manager_state={})

    with (
        GraphQLSessionRepository(gateway.url, **FAST_RETRIES) as repository,
        pytest.raises(SessionAlreadyExistsError),
    ):
        repository.create_agent(session_id, mine)

    with GraphQLSessionRepository(server.url) as repository:
        stored = repository.read_agent(session_id, "taken")
    assert stored is not None and stored.state == {"owner": "them"}


async def test_async_lost_answer_to_create_multi_agent_is_resent_and_confirmed(
    gateway: Gateway, server: RunningServer, session_id: str
) -> None:
    gateway.answers_to_lose = 1
    orchestrator = Orchestrator("graph", {"status": "running", "nodes": ["a", "b"]})
    async with AsyncGraphQLSessionRepository(gateway.url, **FAST_RETRIES) as repository:
        await repository.create_multi_agent(session_id, orchestrator)

    assert gateway.operations() == ["CreateMultiAgent", "CreateMultiAgent", "ReadMultiAgent"]
    with GraphQLSessionRepository(server.url) as repository:
        assert repository.read_multi_agent(session_id, "graph") == {"status": "running", "nodes": ["a", "b"]}


def test_a_refused_connection_is_retried_even_for_writes(server: RunningServer, session_id: str) -> None:
    port = unused_port()
    restarted: list[Gateway] = []
    # The server comes back (here: its gateway starts listening) while the client is retrying.
    threading.Timer(0.2, lambda: restarted.append(Gateway(server.port, port=port))).start()
    changed = SessionAgent(agent_id="agent", state={"after": "restart"}, conversation_manager_state={})

    with GraphQLSessionRepository(f"http://127.0.0.1:{port}/graphql", retries=6, backoff=0.05) as repository:
        repository.update_agent(session_id, changed)

    restarted[0].close()
    assert restarted[0].operations() == ["UpdateAgent"]
    with GraphQLSessionRepository(server.url) as repository:
        stored = repository.read_agent(session_id, "agent")
    assert stored is not None and stored.state == {"after": "restart"}


def test_unreachable_server_raises_transport_error_naming_url_and_cause() -> None:
    url = closed_port_url()
    started = time.monotonic()
    repository = GraphQLSessionRepository(url, retries=3, backoff=0.05)
    with pytest.raises(SessionTransportError) as raised:
        repository.read_session("s-1")

    message = str(raised.value)
    assert url in message
    assert "ConnectError" in message
    assert "after 4 attempts" in message
    assert time.monotonic() - started >= 0.05 / 2 + 0.1 / 2 + 0.2 / 2
    assert raised.value.url == url
    assert raised.value.code == "TRANSPORT_FAILED"
    assert raised.value.__cause__ is not None


async def test_async_unreachable_server_raises_transport_error_naming_url() -> None:
    url = closed_port_url()
    async with AsyncGraphQLSessionRepository(url, **FAST_RETRIES) as repository:
        with pytest.raises(SessionTransportError, match="after 3 attempts") as raised:
            await repository.list_messages("s-1", "agent")

    assert url in str(raised.value)


def test_a_server_that_never_answers_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/graphql"
        with GraphQLSessionRepository(url, timeout=0.2, retries=1, backoff=0.01) as repository:
            started = time.monotonic()
            with pytest.raises(SessionTransportError, match="Timeout"):
                repository.read_session("s-1")

    assert 0.4 <= time.monotonic() - started < 5


def test_a_closed_repository_raises_transport_error(server: RunningServer) -> None:
    repository = GraphQLSessionRepository(server.url)
    repository.close()

    with pytest.raises(SessionTransportError, match="closed"):
        repository.read_session("s-1")


async def test_a_closed_async_repository_raises_transport_error(server: RunningServer) -> None:
    repository = AsyncGraphQLSessionRepository(server.url)
    await repository.read_session("s-1")
    await repository.aclose()

    with pytest.raises(SessionTransportError, match="closed"):
        await repository.read_session("s-1")


# Credentials


def test_headers_are_sent_with_every_request(gateway: Gateway, session_id: str) -> None:
    gateway.token = "s3cret"
    with GraphQLSessionRepository(gateway.url, headers={"Authorization": "Bearer s3cret"}) as repository:
        assert repository.read_session(session_id) is not None
        repository.create_message(session_id, "agent", user_message(0))


def test_missing_credentials_raise_unauthenticated(gateway: Gateway, session_id: str) -> None:
    gateway.token = "s3cret"
    repository = GraphQLSessionRepository(gateway.url, **FAST_RETRIES)
    with pytest.raises(SessionUnauthenticatedError) as raised:
        repository.read_session(session_id)

    assert raised.value.code == "UNAUTHENTICATED"
    assert gateway.operations() == ["ReadSession"]


async def test_wrong_credentials_raise_forbidden(gateway: Gateway, session_id: str) -> None:
    gateway.token = "s3cret"
    async with AsyncGraphQLSessionRepository(
        gateway.url, headers={"Authorization": "Bearer guess"}
    ) as repository:
        with pytest.raises(SessionForbiddenError) as raised:
            await repository.read_session(session_id)

    assert raised.value.code == "FORBIDDEN"
