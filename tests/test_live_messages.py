"""Subscriptions to an agent's messages (``messageAdded``), across two server processes on one
database: catch-up from a cursor, live messages, no gap and no repeat."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from db.notifications import CHANNEL, plain_url
from tests.api_calls import (
    APPEND_MESSAGES,
    CREATE_AGENT,
    CREATE_SESSION,
    agent_input,
    message_input,
    user_message,
)
from tests.live_client import Socket, connected
from tests.server_process import ServerProcess


class Api:
    """GraphQL over HTTP to one server process."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.base_url, headers=server.headers, timeout=30)

    async def post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        return body

    async def call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = await self.post(query, variables)
        assert "errors" not in body, body
        return body

    async def new_agent(self, session_id: str, agent_id: str) -> None:
        await self.call(CREATE_SESSION, {"session": {"sessionId": session_id}})
        await self.call(CREATE_AGENT, {"sessionId": session_id, "agent": agent_input(agent_id)})

    async def append(self, session_id: str, agent_id: str, ids: range) -> None:
        await self.call(
            APPEND_MESSAGES,
            {"sessionId": session_id, "agentId": agent_id, "messages": [message_input(i) for i in ids]},
        )


@pytest.fixture(scope="module")
def two_servers(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    logs = tmp_path_factory.mktemp("live")
    first = ServerProcess(database_url, Path(logs / "first.log")).start()
    second = ServerProcess(database_url, Path(logs / "second.log")).start()
    yield first, second
    first.stop()
    second.stop()


async def test_a_message_written_on_one_process_reaches_a_subscriber_on_the_other(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    writer, reader = Api(two_servers[0]), two_servers[1]
    session_id, agent_id = f"live-{uuid.uuid4().hex[:8]}", "agent"
    await writer.new_agent(session_id, agent_id)
    await writer.append(session_id, agent_id, range(0, 3))
    async with connected(reader.base_url) as socket:
        await socket.messages_added(session_id, agent_id, after=0)
        assert await socket.next_ids(2) == [1, 2]
        loop = asyncio.get_running_loop()
        started = loop.time()
        await writer.append(session_id, agent_id, range(3, 4))
        assert await socket.next_ids(1, seconds=1.0) == [3]
        assert loop.time() - started < 1.0
        await socket.nothing_more()


async def collect(socket: Socket, until: int, seconds: float = 20.0) -> list[int]:
    """Message ids received until ``until`` is among them."""
    ids: list[int] = []
    while not ids or ids[-1] < until:
        ids += await socket.next_ids(1, seconds)
    return ids


async def test_resuming_after_a_dropped_connection_loses_and_repeats_nothing(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    writer, reader = Api(two_servers[0]), two_servers[1]
    session_id, agent_id = f"resume-{uuid.uuid4().hex[:8]}", "agent"
    await writer.new_agent(session_id, agent_id)

    async def write() -> None:
        for n in range(200):
            await writer.append(session_id, agent_id, range(n, n + 1))
            await asyncio.sleep(0.002)

    writing = asyncio.create_task(write())
    received: list[int] = []
    while not received or received[-1] < 199:  # dropped after 40, 80 and 120 messages
        async with connected(reader.base_url) as socket:
            await socket.messages_added(session_id, agent_id, after=received[-1] if received else -1)
            if len(received) < 120:
                received += await socket.next_ids(40)
                socket.connection.transport.abort()  # a dropped connection, no closing handshake
                continue
            received += await collect(socket, 199)
    await writing
    assert received == list(range(200))


async def test_two_hundred_subscribers_see_every_message_of_sixteen_writers_once_in_order(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    writer, reader = Api(two_servers[0]), two_servers[1]
    prefix = f"many-{uuid.uuid4().hex[:8]}"
    agents = [(f"{prefix}-{n}", "agent") for n in range(16)]
    for session_id, agent_id in agents:
        await writer.new_agent(session_id, agent_id)
    per_writer = 25
    sockets = [await stack_connect(reader.base_url) for _ in range(200)]
    try:
        for n, (socket, _) in enumerate(sockets):
            await socket.messages_added(*agents[n % 16], after=-1)

        async def write(session_id: str, agent_id: str) -> None:
            for n in range(per_writer):
                await writer.append(session_id, agent_id, range(n, n + 1))

        async def watch(socket: Socket) -> list[int]:
            return await collect(socket, per_writer - 1, 30)

        watching = [asyncio.create_task(watch(socket)) for socket, _ in sockets]
        await asyncio.gather(*(write(*agent) for agent in agents))
        seen = await asyncio.gather(*watching)
        assert all(ids == list(range(per_writer)) for ids in seen)
        for socket, _ in sockets[:20]:
            await socket.nothing_more(0.05)
    finally:
        for _, closing in sockets:
            await closing.aclose()


async def stack_connect(base_url: str) -> tuple[Socket, AsyncExitStack]:
    stack = AsyncExitStack()
    socket = await stack.enter_async_context(connected(base_url))
    return socket, stack


async def test_a_rolled_back_write_publishes_nothing(
    two_servers: tuple[ServerProcess, ServerProcess], database_url: str
) -> None:
    writer, reader = Api(two_servers[0]), two_servers[1]
    session_id, agent_id = f"rollback-{uuid.uuid4().hex[:8]}", "agent"
    await writer.new_agent(session_id, agent_id)
    await writer.append(session_id, agent_id, range(0, 1))
    notices: list[str] = []
    listening = await asyncpg.connect(plain_url(database_url))
    await listening.add_listener(CHANNEL, lambda *args: notices.append(args[-1]))
    try:
        async with connected(reader.base_url) as socket:
            await socket.messages_added(session_id, agent_id, after=0)
            await asyncio.sleep(0.3)
            # Message 1 is inserted, then message 0 conflicts: the transaction rolls back.
            conflicting = [message_input(1), {**message_input(0), "message": user_message("other")}]
            body = await writer.post(
                APPEND_MESSAGES, {"sessionId": session_id, "agentId": agent_id, "messages": conflicting}
            )
            assert body["errors"][0]["extensions"]["code"] == "CONFLICT"
            await socket.nothing_more(1.0)
            assert [n for n in notices if session_id in n] == []
            await writer.append(session_id, agent_id, range(1, 2))
            assert await socket.next_ids(1) == [1]
            assert [json.loads(n) for n in notices if session_id in n] == [
                {"k": "m", "t": "default", "s": session_id, "a": agent_id, "lo": 1, "hi": 1}
            ]
    finally:
        await listening.close()


async def test_a_listener_that_loses_its_connection_recovers_with_no_gap(
    two_servers: tuple[ServerProcess, ServerProcess], database_url: str
) -> None:
    writer, reader = Api(two_servers[0]), two_servers[1]
    session_id, agent_id = f"relisten-{uuid.uuid4().hex[:8]}", "agent"
    await writer.new_agent(session_id, agent_id)
    admin = await asyncpg.connect(plain_url(database_url))
    try:
        async with connected(reader.base_url) as socket:
            await socket.messages_added(session_id, agent_id, after=-1)

            async def write() -> None:
                for n in range(100):
                    await writer.append(session_id, agent_id, range(n, n + 1))
                    if n in (30, 60):
                        killed = await admin.fetchval(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = 'session-graphql-listener'"
                        )
                        assert killed >= 2  # both servers' listeners
                    await asyncio.sleep(0.005)

            writing = asyncio.create_task(write())
            received = await collect(socket, 99)
            await writing
            assert received == list(range(100))
            await socket.nothing_more()
    finally:
        await admin.close()
