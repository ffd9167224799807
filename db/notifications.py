"""PostgreSQL LISTEN/NOTIFY: the wake-up that tells every server process a conversation changed.

A write sends ``pg_notify`` inside its own transaction, so the notice is delivered at commit and a
rolled-back write sends nothing. Payloads carry keys, never rows (NOTIFY holds 8 KB, and identical
payloads in one transaction fold into one): the subscriber reads the rows itself, through the same
tenant-scoped reads as any request, from its own cursor. A notice lost with the listening
connection therefore loses nothing: after reconnecting, every subscriber reads from its cursor again.

Each process has one ``Listener``: one dedicated asyncpg connection, not from the pool (a pooled
connection handed back keeps listening for whoever takes it next, asyncpg#283), probed regularly
because a peer that died without closing goes unnoticed otherwise (asyncpg#519).
"""

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import ColumnElement, func, text
from sqlalchemy.ext.asyncio import AsyncConnection

logger = logging.getLogger(__name__)

CHANNEL = "session_graphql_events"
MESSAGES_ADDED = "m"
MESSAGE_UPDATED = "u"
AGENT_CHANGED = "a"
SESSION_CREATED = "s"
RECONNECT_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Waits between attempts to listen again, the last one repeated."""

NOTIFY_MESSAGES_ADDED_SQL = f"""
    SELECT pg_notify('{CHANNEL}', json_build_object(
        'k', '{MESSAGES_ADDED}', 't', CAST(:tenant AS text), 's', CAST(:session_id AS text),
        'a', CAST(:agent_id AS text), 'lo', min(message_id), 'hi', max(message_id))::text)
    FROM inserted HAVING count(*) > 0
"""
"""A CTE's body for the message insert: one notice for the rows the statement really inserted."""

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


@dataclass(frozen=True, slots=True)
class Event:
    """What a notice says: which tenant's session (and agent, and message ids) changed, and how."""

    kind: str
    tenant: str
    session_id: str
    agent_id: str | None = None
    low: int | None = None
    high: int | None = None

    @classmethod
    def parse(cls, payload: str) -> "Event | None":
        try:
            raw: dict[str, Any] = json.loads(payload)
            return cls(raw["k"], raw["t"], raw["s"], raw.get("a"), raw.get("lo"), raw.get("hi"))
        except (ValueError, KeyError, TypeError):
            return None

    def payload(self) -> str:
        raw: dict[str, Any] = {"k": self.kind, "t": self.tenant, "s": self.session_id}
        if self.agent_id is not None:
            raw["a"] = self.agent_id
        if self.low is not None:
            raw["lo"], raw["hi"] = self.low, self.high
        return json.dumps(raw, separators=(",", ":"))


async def notify(conn: AsyncConnection, event: Event) -> None:
    """Announces ``event`` when the transaction ``conn`` is in commits."""
    await conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": event.payload()})


def notifying(event: Event) -> ColumnElement[Any]:
    """A column for a write's RETURNING that announces ``event``: no round trip of its own."""
    return func.pg_notify(CHANNEL, event.payload())


def plain_url(url: str) -> str:
    """asyncpg's spelling of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class Listener:
    """Listens on ``CHANNEL`` over one connection of its own, for as long as ``run`` runs.

    ``on_event`` gets every notice, ``on_listening`` is called each time listening (re)starts: what
    was committed while no one listened is then only in the tables, and subscribers must read it.
    Both are called on the event loop and must not block.
    """

    def __init__(
        self,
        url: str,
        on_event: Callable[[Event], None],
        on_listening: Callable[[], None],
        *,
        probe_seconds: float = 5.0,
    ) -> None:
        self.url = plain_url(url)
        self.on_event = on_event
        self.on_listening = on_listening
        self.probe_seconds = probe_seconds
        self.connection: asyncpg.Connection | None = None
        self.listening = asyncio.Event()
        self.reconnects = 0

    def _received(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        event = Event.parse(payload)
        if event is not None:
            self.on_event(event)

    async def run(self) -> None:
        failures = 0
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(
                    self.url,
                    timeout=self.probe_seconds,
                    server_settings={"application_name": "session-graphql-listener"},
                )
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                await self._wait_after_failure(failures, error)
                failures += 1
                continue
            try:
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._received)
                self.connection = conn
                self.listening.set()
                if failures or self.reconnects:
                    logger.info("listening for changes again")
                self.on_listening()
                failures = 0
                await self._probe_until_lost(conn, lost)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                logger.warning("the listening connection was lost: %r", error)
            finally:
                self.listening.clear()
                self.connection = None
                self.reconnects += 1
                conn.terminate()

    async def _probe_until_lost(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), self.probe_seconds)
            except TimeoutError:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), self.probe_seconds)
        logger.warning("the listening connection was closed")

    async def _wait_after_failure(self, failures: int, error: BaseException) -> None:
        wait = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
        if failures == 0 or wait == RECONNECT_SECONDS[-1]:
            logger.warning("cannot listen for changes, retrying in %.1f s: %r", wait, error)
        await asyncio.sleep(wait)
