"""A plain graphql-transport-ws client over ``websockets``, for the subscription tests: it shows
exactly what crosses the wire (close codes and reasons included)."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

PROTOCOL = "graphql-transport-ws"
MESSAGE_ADDED = """
subscription($s: String!, $a: String!, $after: Int) {
  messageAdded(sessionId: $s, agentId: $a, afterMessageId: $after) { sessionId agentId messageId message }
}
"""


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/graphql"


class Socket:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.next_id = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, seconds: float = 10.0) -> dict[str, Any]:
        while True:
            raw = await asyncio.wait_for(self.connection.recv(), seconds)
            message: dict[str, Any] = json.loads(raw)
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            return message

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self.next_id += 1
        operation_id = str(self.next_id)
        await self.send(
            {
                "id": operation_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables or {}},
            }
        )
        return operation_id

    async def messages_added(self, session_id: str, agent_id: str, after: int | None = None) -> str:
        return await self.subscribe(MESSAGE_ADDED, {"s": session_id, "a": agent_id, "after": after})

    async def next_ids(self, count: int, seconds: float = 10.0) -> list[int]:
        """The message ids of the next ``count`` ``next`` messages (failing on anything else)."""
        ids: list[int] = []
        while len(ids) < count:
            message = await self.receive(seconds)
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            ids.append(message["payload"]["data"]["messageAdded"]["messageId"])
        return ids

    async def nothing_more(self, seconds: float = 0.5) -> None:
        try:
            message = await self.receive(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected: {message}")


@asynccontextmanager
async def connected(
    base_url: str,
    payload: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    *,
    acknowledged: bool = True,
    **options: Any,
) -> AsyncIterator[Socket]:
    """A websocket at ``/graphql`` with ``connection_init`` sent (and its ack awaited)."""
    async with websockets.connect(
        ws_url(base_url),
        subprotocols=[PROTOCOL],
        additional_headers=headers,
        **options,  # type: ignore[list-item]
    ) as connection:
        socket = Socket(connection)
        await socket.send({"type": "connection_init", "payload": payload or {}})
        if acknowledged:
            ack = await socket.receive()
            assert ack["type"] == "connection_ack", ack
        yield socket
