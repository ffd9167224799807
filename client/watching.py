"""Watching an agent's conversation as it is written: the ``messageAdded`` subscription over a
websocket (graphql-transport-ws, gql's websockets transport), resumed from the last message
received whenever the connection drops, so nothing is missed or repeated.

The credentials travel in the ``connection_init`` payload, as the server reads them there; a token
provider is asked again at each connection. Refused credentials (close codes 4401 and 4403) and
refused arguments end the watch with the repositories' typed errors; anything else (a server
restarting, a dropped connection, closed as too slow) is retried with backoff, for ever.
"""

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

from gql import Client
from gql.transport.exceptions import TransportError, TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from strands.types.session import SessionMessage
from websockets.exceptions import ConnectionClosed

from client import calls, credentials, failures, mapping
from client.errors import GraphQLSessionError, SessionForbiddenError, SessionUnauthenticatedError
from client.operations import OPERATIONS

WATCH_MESSAGES = OPERATIONS["WatchMessages"]
CREDENTIAL_HEADERS = ("authorization", "x-tenant")
FIRST_RETRY_SECONDS = 0.2
LONGEST_RETRY_SECONDS = 10.0
PING_SECONDS = 15.0
"""How often the client pings: a connection that died without closing is noticed within twice this."""
ENDING_CLOSE_CODES = {4401: SessionUnauthenticatedError, 4403: SessionForbiddenError}
"""Close codes that reconnecting cannot cure."""

LastMessageId = Callable[[], Awaitable[int]]
TokenSource = Callable[[], str | Awaitable[str]]


def websocket_url(url: str) -> str:
    """The websocket address of the GraphQL endpoint at ``url`` (http becomes ws, https wss)."""
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


def init_payload(headers: Mapping[str, str], token: str | None) -> dict[str, str]:
    """What ``connection_init`` carries: the credential headers, and a provider's fresh token."""
    payload = {name: value for name, value in headers.items() if name.lower() in CREDENTIAL_HEADERS}
    if token is not None:
        payload = {name: value for name, value in payload.items() if name.lower() != "authorization"}
        payload[credentials.AUTHORIZATION] = f"Bearer {token}"
    return payload


def _close_code(error: BaseException) -> tuple[int, str] | None:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ConnectionClosed) and cause.rcvd is not None:
            return cause.rcvd.code, cause.rcvd.reason
        cause = cause.__cause__ or cause.__context__
    return None


def _ending_failure(error: BaseException) -> GraphQLSessionError | None:
    closed = _close_code(error)
    if closed is None or closed[0] not in ENDING_CLOSE_CODES:
        return None
    code, reason = closed
    kind = ENDING_CLOSE_CODES[code]
    name = "UNAUTHENTICATED" if kind is SessionUnauthenticatedError else "FORBIDDEN"
    return kind(f"{WATCH_MESSAGES.name} refused ({code}): {reason}", code=name, operation=WATCH_MESSAGES.name)


async def watch_messages(
    url: str,
    headers: Mapping[str, str],
    token: TokenSource | None,
    session_id: str,
    agent_id: str,
    after: int | None,
    last_message_id: LastMessageId,
) -> AsyncIterator[SessionMessage]:
    """The agent's messages after ``after`` (None: only those written from now on), for ever."""
    calls.check_id(session_id, "session_id")
    calls.check_id(agent_id, "agent_id")
    if after is not None and after < -1:
        raise ValueError(f"after must be -1 or more, got {after}")
    # "From now on" is pinned to a message id first, so a connection lost before the first
    # message still resumes without a gap.
    cursor = await last_message_id() if after is None else after
    wait = FIRST_RETRY_SECONDS
    while True:
        fresh = None
        if token is not None:
            given = token()
            fresh = await given if inspect.isawaitable(given) else given
        transport = WebsocketsTransport(
            url=websocket_url(url),
            init_payload=init_payload(headers, fresh),
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
            ping_interval=PING_SECONDS,
            pong_timeout=PING_SECONDS,
        )
        variables = {"sessionId": session_id, "agentId": agent_id, "afterMessageId": cursor}
        try:
            async with Client(transport=transport, fetch_schema_from_transport=False) as session:
                async for data in session.subscribe(WATCH_MESSAGES.request(variables)):
                    message = mapping.message_from_result(data["messageAdded"])
                    cursor = message.message_id
                    wait = FIRST_RETRY_SECONDS
                    yield message
        except TransportQueryError as error:
            failure = failures.from_graphql_errors(error.errors, WATCH_MESSAGES.name)
            if not failure.retryable:
                raise failure from error
        except (TransportError, OSError, TimeoutError, ConnectionClosed) as error:
            ending = _ending_failure(error)
            if ending is not None:
                raise ending from error
        await asyncio.sleep(wait)
        wait = min(wait * 2, LONGEST_RETRY_SECONDS)


def watch_messages_blocking(messages: AsyncIterator[SessionMessage]) -> Iterator[SessionMessage]:
    """``messages`` as a generator, driven on an event loop of its own; closing the generator
    closes the watch."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(messages))
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(_close(messages))
        loop.close()


async def _close(messages: Any) -> None:
    await messages.aclose()
