"""A subscriptions websocket's credentials, and closing it when they stop being valid.

Credentials come as HTTP requests carry them, in the handshake's headers, or in the
``connection_init`` payload (``{"Authorization": "Bearer …", "X-Tenant": "…"}``: browsers cannot
set a websocket's headers), the payload's winning. They are checked again every
``check_seconds``, so a revoked key's subscriptions close within seconds.
"""

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketState

from graphql_api.auth.credentials import TENANT_HEADER, Authenticator
from graphql_api.errors import Refusal

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_UNAVAILABLE = 4503
CLOSE_TOO_SLOW = 1013
"""Try again later: graphql-ws clients reconnect (and ours resumes from its cursor)."""
CREDENTIAL_HEADERS = ("authorization", TENANT_HEADER)
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
