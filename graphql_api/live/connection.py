"""A subscriptions websocket's credentials, and closing it when they stop being valid.

Credentials come as HTTP requests carry them, in the handshake's headers, or in the
``connection_init`` payload (``{"Authorization": "Bearer …", "X-Tenant": "…"}``: browsers cannot
set a websocket's headers), the payload's winning. They are checked again every
``check_seconds``, so a revoked key's subscriptions close within seconds.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketState
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_api.auth.credentials import TENANT_HEADER, Authenticator
from graphql_api.errors import ErrorCode, LimitError, Refusal

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_UNAVAILABLE = 4503
CLOSE_TOO_SLOW = 1013
"""Try again later: graphql-ws clients reconnect (and ours resumes from its cursor)."""
CREDENTIAL_HEADERS = ("authorization", TENANT_HEADER)
SUBSCRIPTION_TRANSPORTS = (
    "a subscription needs a websocket at /graphql (graphql-transport-ws or graphql-ws) or an "
    "event stream (POST with Accept: text/event-stream)"
)
MOST_REASON_BYTES = 123
"""A close frame's reason is at most 123 bytes."""


def credentials(handshake: Mapping[str, str], payload: Mapping[str, object] | None) -> dict[str, str]:
    """The credential headers, lowercased; a ``connection_init`` payload's override the handshake's."""
    found = {name: handshake[name] for name in CREDENTIAL_HEADERS if name in handshake}
    for name, value in (payload or {}).items():
        if isinstance(value, str) and name.lower() in CREDENTIAL_HEADERS:
            found[name.lower()] = value
    return found


def close_code(refusal: Refusal) -> int:
    if refusal.status == 401:
        return CLOSE_UNAUTHORIZED
    if refusal.status == 503:
        return CLOSE_UNAVAILABLE
    return CLOSE_FORBIDDEN


def short_reason(message: str) -> str:
    encoded = message.encode()
    if len(encoded) <= MOST_REASON_BYTES:
        return message
    return encoded[: MOST_REASON_BYTES - 3].decode(errors="ignore") + "..."


@dataclass
class LiveConnection:
    """One subscriptions websocket."""

    websocket: WebSocket
    credentials: dict[str, str] = field(default_factory=dict)
    refusal: Refusal | None = None
    """Why ``connection_init`` was refused, for the close frame's code and reason."""
    _tasks: set["asyncio.Task[None]"] = field(default_factory=set)

    def close_soon(self, code: int, reason: str) -> None:
        """Closes the websocket without waiting: a stalled client may never take the close frame
        (uvicorn's keep-alive pings then end the connection)."""
        task = asyncio.create_task(self.close(code, reason), name="websocket-close")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, code: int, reason: str) -> None:
        if self.websocket.application_state == WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(Exception):  # already closed by the client, or by another close
            await self.websocket.close(code, short_reason(reason))

    def keep_checking(self, authenticator: Authenticator, every_seconds: float) -> None:
        task = asyncio.create_task(self._check(authenticator, every_seconds), name="websocket-credentials")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check(self, authenticator: Authenticator, every_seconds: float) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await authenticator.caller(self.credentials)
            except Refusal as refusal:
                if refusal.status == 503:
                    continue  # the keys cannot be read right now; the last check stands
                logger.info("closing a websocket whose credentials no longer hold: %s", refusal.message)
                await self.close(close_code(refusal), refusal.message)
                return

    def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()


async def while_credentials_hold(
    stream: AsyncIterator[str], authenticator: Authenticator, headers: Mapping[str, str], every_seconds: float
) -> AsyncIterator[str]:
    """An SSE subscription's ``stream``, ended once its request's credentials stop being valid
    (checked every ``every_seconds`` while it waits for its next event)."""
    pending = asyncio.ensure_future(anext(stream))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=every_seconds)
            if not done:
                try:
                    await authenticator.caller(headers)
                except Refusal as refusal:
                    if refusal.status != 503:
                        logger.info(
                            "ending an event stream whose credentials no longer hold: %s", refusal.message
                        )
                        return
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                return
            yield chunk
            pending = asyncio.ensure_future(anext(stream))
    finally:
        pending.cancel()
        with contextlib.suppress(BaseException):
            await pending
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


class SubscriptionTransport(SchemaExtension):
    """Refuses a subscription sent as a plain HTTP request (``BAD_REQUEST``): it needs a websocket
    or an event stream to answer on, and graphql-core would otherwise fail it as an internal error."""

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        if execution.operation_type is OperationType.SUBSCRIPTION:
            context = execution.context
            request = getattr(context, "request", None)
            accept = "" if request is None else request.headers.get("accept", "")
            if getattr(context, "connection", None) is None and "text/event-stream" not in accept:
                raise LimitError(ErrorCode.BAD_REQUEST, SUBSCRIPTION_TRANSPORTS)
        yield
