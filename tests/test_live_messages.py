"""Subscriptions to an agent's messages (``messageAdded``), across two server processes on one
database: catch-up from a cursor, live messages, no gap and no repeat."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_calls import APPEND_MESSAGES, CREATE_AGENT, CREATE_SESSION, agent_input, message_input
from tests.live_client import connected
from tests.server_process import ServerProcess


class Api:
    """GraphQL over HTTP to one server process."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.base_url, headers=server.headers, timeout=30)

    async def call(self, query: str, variables: dict[str, object]) -> dict[str, object]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, object] = response.json()
        assert response.status_code == 200 and "errors" not in body, body
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
    two_servers: tuple[ServerProcess, ServerProcess], new_id: object
) -> None:
    writer, reader = Api(two_servers[0]), two_servers[1]
    session_id, agent_id = f"live-{id(writer)}", "agent"
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
