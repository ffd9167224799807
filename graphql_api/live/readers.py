"""What each subscription reads when woken, through ``db.conversations.changes``, in the caller's
tenant: the notices only say where to look."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from db.analytics.filters import ConversationFilter
from db.conversations import changes, reads
from db.notifications import AGENT_CHANGED, MESSAGE_UPDATED, MESSAGES_ADDED, SESSION_CREATED, Event
from db.records import AgentKey, AgentRecord, MessageKey, MessageRecord, SessionKey, SessionRecord
from graphql_api.live.streams import Live, Reader

V = TypeVar("V")
PAGE = 200
"""Rows per read."""
MOST_RESUMED_SESSIONS = 1000
"""Sessions an overview's subscriber is told to refresh after listening was lost."""
CLOCK_SLACK = timedelta(seconds=5)
"""How far the server's clock and the database's may differ, for what happened while not listening."""


class MessagesAdded(Reader[MessageRecord]):
    """An agent's messages in id order from ``after`` (None: from the newest one on)."""

    def __init__(self, live: Live, key: AgentKey, after: int | None) -> None:
        self.live = live
        self.key = key
        self.cursor = after

    async def start(self) -> None:
        if self.cursor is None:
            key = self.key
            self.cursor = await self.live.database.run(
                lambda conn: changes.last_message_id(conn, key), idempotent=True
            )

    async def read(self, events: list[Event], everything: bool) -> tuple[list[MessageRecord], bool]:
        assert self.cursor is not None
        cursor, key = self.cursor, self.key
        if not everything and all(
            e.kind != MESSAGES_ADDED or e.high is None or e.high <= cursor for e in events
        ):
            return [], False
        # Every viewer of the agent is woken by the same notice, usually at the same cursor: one read.
        rows = await self.live.shared_read(
            ("messages", key, cursor),
            lambda: self.live.database.run(
                lambda conn: changes.messages_after(conn, key, cursor, PAGE), idempotent=True
            ),
        )
        if rows:
            self.cursor = rows[-1].message_id
        return rows, len(rows) == PAGE


class MessagesUpdated(Reader[MessageRecord]):
    """An agent's messages as they are replaced (redactions), in the order of their updates."""

    def __init__(self, live: Live, key: AgentKey) -> None:
        self.live = live
        self.key = key

    async def read(self, events: list[Event], everything: bool) -> tuple[list[MessageRecord], bool]:
        ids = _unique(e.low for e in events if e.kind == MESSAGE_UPDATED and e.low is not None)
        if not ids:
            return [], False
        keys = [MessageKey(*self.key, message_id) for message_id in ids]
        found = await self.live.database.run(lambda conn: reads.get_messages(conn, keys), idempotent=True)
        return [found[key] for key in keys if key in found], False


class AgentsUpdated(Reader[AgentRecord]):
    """A session's agents as they are created or their state changes."""

    def __init__(self, live: Live, key: SessionKey) -> None:
        self.live = live
        self.key = key
        self.seen: dict[str, datetime] = {}
        self.started = False

    async def read(self, events: list[Event], everything: bool) -> tuple[list[AgentRecord], bool]:
        key = self.key
        if everything:
            # After a loss of the listening connection: the agents that changed meanwhile.
            found = await self.live.database.run(
                lambda conn: changes.agents_of_session(conn, key), idempotent=True
            )
            changed = [a for a in found if self.seen.get(a.agent_id) != a.updated_at]
            if not self.started:
                changed, self.started = [], True
        else:
            ids = _unique(e.agent_id for e in events if e.kind == AGENT_CHANGED and e.agent_id is not None)
            if not ids:
                return [], False
            keys = [AgentKey(*key, agent_id) for agent_id in ids]
            by_key = await self.live.database.run(lambda conn: reads.get_agents(conn, keys), idempotent=True)
            changed = [by_key[k] for k in keys if k in by_key]
            self.started = True
        for agent in changed:
            self.seen[agent.agent_id] = agent.updated_at
        if everything and not changed:
            for agent in found:
                self.seen[agent.agent_id] = agent.updated_at
        return changed, False


class ActivityKind(StrEnum):
    SESSION_CREATED = "SESSION_CREATED"
    MESSAGES_ADDED = "MESSAGES_ADDED"
    RESUMED = "RESUMED"


@dataclass(frozen=True)
class Activity:
    kind: ActivityKind
    session: SessionRecord
    agent_id: str | None = None
    messages: list[MessageRecord] = field(default_factory=list)


class SessionActivity(Reader[Activity]):
    """A tenant's new sessions and messages that match a filter, in commit order per session. After
    a loss of the listening connection, each matching session active meanwhile comes as RESUMED."""

    def __init__(self, live: Live, tenant: str, f: ConversationFilter) -> None:
        self.live = live
        self.tenant = tenant
        self.filter = f
        self.since = datetime.now(UTC)
        self.started = False

    async def read(self, events: list[Event], everything: bool) -> tuple[list[Activity], bool]:
        tenant, f, since = self.tenant, self.filter, self.since - CLOCK_SLACK
        read_at = datetime.now(UTC)
        run = self.live.database.run
        if everything:
            resumed = self.started
            self.started = True
            self.since = read_at
            if not resumed:
                return [], False
            found = await run(
                lambda conn: changes.sessions_active_since(conn, tenant, since, f, MOST_RESUMED_SESSIONS),
                idempotent=True,
            )
            return [Activity(ActivityKind.RESUMED, session) for session in found], False
        self.started = True
        self.since = read_at
        created_ids = _unique(e.session_id for e in events if e.kind == SESSION_CREATED)
        ranges = [
            changes.MessageRange(e.session_id, e.agent_id, e.low, e.high)
            for e in events
            if e.kind == MESSAGES_ADDED
            and e.agent_id is not None
            and e.low is not None
            and e.high is not None
        ]
        created: list[SessionRecord] = []
        added: list[MessageRecord] = []
        if created_ids:
            created = await run(
                lambda conn: changes.sessions_created(conn, tenant, created_ids, f), idempotent=True
            )
        if ranges:
            added = await run(
                lambda conn: changes.messages_in_ranges(conn, tenant, ranges, f), idempotent=True
            )
        keys = _unique(SessionKey(tenant, m.session_id) for m in added)
        sessions = await run(lambda conn: reads.get_sessions(conn, keys), idempotent=True) if keys else {}
        return _in_event_order(events, created, added, sessions), False


def _in_event_order(
    events: list[Event],
    created: list[SessionRecord],
    added: list[MessageRecord],
    sessions: dict[SessionKey, SessionRecord],
) -> list[Activity]:
    new_sessions = {s.session_id: s for s in created}
    by_agent: dict[tuple[str, str], list[MessageRecord]] = {}
    for message in added:
        by_agent.setdefault((message.session_id, message.agent_id), []).append(message)
    found: list[Activity] = []
    for event in events:
        if event.kind == SESSION_CREATED and event.session_id in new_sessions:
            found.append(Activity(ActivityKind.SESSION_CREATED, new_sessions.pop(event.session_id)))
        elif event.kind == MESSAGES_ADDED and event.agent_id is not None:
            messages = [
                m
                for m in by_agent.get((event.session_id, event.agent_id), [])
                if event.low is not None
                and event.high is not None
                and event.low <= m.message_id <= event.high
            ]
            session = sessions.get(SessionKey(event.tenant, event.session_id))
            if messages and session is not None:
                found.append(Activity(ActivityKind.MESSAGES_ADDED, session, event.agent_id, messages))
    return found


def _unique(values: Iterable[V]) -> list[V]:
    return list(dict.fromkeys(values))
