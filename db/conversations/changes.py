"""What a subscriber reads when woken (``db.notifications``): an agent's messages after its cursor,
a session's agents, the new sessions and messages an overview page's filter matches.

Keyed like every read of ``db.conversations.reads``, tenant first: a subscriber reads only its
own tenant's rows, whatever a notice said.
"""

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.analytics.filters import ConversationFilter, messages_matching, sessions_matching
from db.conversations.reads import MESSAGE_COLUMNS, agent_record, message_record, session_record
from db.models import agents, messages, sessions
from db.records import AgentKey, AgentRecord, MessageRecord, SessionKey, SessionRecord


def _of_agent(key: AgentKey) -> list[object]:
    return [
        messages.c.tenant == key.tenant,
        messages.c.session_id == key.session_id,
        messages.c.agent_id == key.agent_id,
    ]


async def messages_after(conn: AsyncConnection, key: AgentKey, after: int, limit: int) -> list[MessageRecord]:
    """The agent's messages with an id above ``after``, in id order, at most ``limit`` of them."""
    rows = await conn.execute(
        select(*MESSAGE_COLUMNS)
        .where(*_of_agent(key), messages.c.message_id > after)  # type: ignore[arg-type]
        .order_by(messages.c.message_id)
        .limit(limit)
    )
    return [message_record(row) for row in rows]


async def last_message_id(conn: AsyncConnection, key: AgentKey) -> int:
    """The agent's highest message id; -1 when it has none (message ids start at 0)."""
    found = await conn.execute(select(func.max(messages.c.message_id)).where(*_of_agent(key)))  # type: ignore[arg-type]
    last = found.scalar()
    return -1 if last is None else int(last)


async def agents_of_session(conn: AsyncConnection, key: SessionKey) -> list[AgentRecord]:
    """The session's agents, oldest first."""
    rows = await conn.execute(
        select(agents)
        .where(agents.c.tenant == key.tenant, agents.c.session_id == key.session_id)
        .order_by(agents.c.created_at, agents.c.agent_id)
    )
    return [agent_record(row) for row in rows]


class MessageRange(NamedTuple):
    """Messages a notice announced: an agent's ids from ``low`` to ``high``."""

    session_id: str
    agent_id: str
    low: int
    high: int


async def sessions_created(
    conn: AsyncConnection, tenant: str, session_ids: Sequence[str], f: ConversationFilter
) -> list[SessionRecord]:
    """Those of the tenant's sessions ``session_ids`` that match ``f``'s conditions on sessions (a
    new session has no agent nor message for the others to match yet)."""
    own = replace(
        f, agent_id=None, role=None, content_type=None, tool_name=None, tool_status=None, redacted=None
    )
    rows = await conn.execute(
        select(sessions).where(
            sessions.c.tenant == tenant, sessions.c.session_id.in_(list(session_ids)), *sessions_matching(own)
        )
    )
    return [session_record(row) for row in rows]


async def messages_in_ranges(
    conn: AsyncConnection, tenant: str, ranges: Sequence[MessageRange], f: ConversationFilter
) -> list[MessageRecord]:
    """The tenant's messages in ``ranges`` that match ``f``, in session, agent and id order."""
    wanted = or_(
        *(
            and_(
                messages.c.session_id == r.session_id,
                messages.c.agent_id == r.agent_id,
                messages.c.message_id.between(r.low, r.high),
            )
            for r in ranges
        )
    )
    rows = await conn.execute(
        select(*MESSAGE_COLUMNS)
        .where(messages.c.tenant == tenant, wanted, *messages_matching(f))
        .order_by(messages.c.session_id, messages.c.agent_id, messages.c.message_id)
    )
    return [message_record(row) for row in rows]


async def sessions_active_since(
    conn: AsyncConnection, tenant: str, since: datetime, f: ConversationFilter, limit: int
) -> list[SessionRecord]:
    """The tenant's sessions matching ``f`` with activity at or after ``since``, the latest first."""
    rows = await conn.execute(
        select(sessions)
        .where(sessions.c.tenant == tenant, sessions.c.last_activity_at >= since, *sessions_matching(f))
        .order_by(sessions.c.last_activity_at.desc())
        .limit(limit)
    )
    return [session_record(row) for row in rows]


async def database_now(conn: AsyncConnection) -> datetime:
    """The database's clock, which ``last_activity_at`` is written with."""
    now: datetime = (await conn.execute(select(func.now()))).scalar_one()
    return now
