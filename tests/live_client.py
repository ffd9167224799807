"""A plain graphql-transport-ws client over ``websockets``, for the subscription tests: it shows
exactly what crosses the wire (close codes and reasons included)."""

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

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


class StalledClient:
    """A graphql-transport-ws client that stops reading once subscribed: websockets' own clients
    keep reading into memory, this one leaves what is sent in the socket (a small receive buffer,
    so it fills soon). ``resume`` reads again, up to the close frame."""

    def __init__(self, base_url: str, payload: dict[str, Any]) -> None:
        self.uri = ws_url(base_url)
        self.payload = payload
        self.protocol = ClientProtocol(
            parse_uri(self.uri), subprotocols=[Subprotocol(PROTOCOL)], max_size=None
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _flush(self) -> None:
        assert self.writer is not None
        for data in self.protocol.data_to_send():
            if data:
                self.writer.write(data)
        await self.writer.drain()

    async def _events(self) -> list[Any]:
        assert self.reader is not None
        data = await asyncio.wait_for(self.reader.read(65536), 10)
        self.protocol.receive_data(data) if data else self.protocol.receive_eof()
        return self.protocol.events_received()

    async def subscribe(self, query: str, variables: dict[str, Any]) -> None:
        uri = parse_uri(self.uri)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.connect((uri.host, uri.port))
        sock.setblocking(False)
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=32 * 1024)
        self.protocol.send_request(self.protocol.connect())
        await self._flush()
        while self.protocol.state is State.CONNECTING:
            await self._events()  # the handshake's response
        acknowledged = False
        self.protocol.send_text(json.dumps({"type": "connection_init", "payload": self.payload}).encode())
        await self._flush()
        while not acknowledged:
            for event in await self._events():
                acknowledged = acknowledged or (isinstance(event, Frame) and b"connection_ack" in event.data)
        subscribe = {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
        self.protocol.send_text(json.dumps(subscribe).encode())
        await self._flush()

    async def resume(self) -> tuple[int, int, str]:
        """Reads everything left: the number of ``next`` messages, then the close code and reason."""
        received = 0
        while True:
            for event in await self._events():
                if isinstance(event, Frame) and event.opcode == Opcode.TEXT:
                    received += b'"next"' in event.data[:40]
                elif isinstance(event, Frame) and event.opcode == Opcode.CLOSE:
                    close = Close.parse(event.data)
                    return received, close.code, close.reason
            if self.protocol.state is State.CLOSED:
                raise AssertionError("closed without a close frame")
