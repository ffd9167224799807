"""Reads, each shaped to serve a whole DataLoader batch in one statement.

Batches are passed as arrays and unnested, so a statement's text does not depend on how many keys
it serves: PostgreSQL and asyncpg prepare it once per connection.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, Select, Text, and_, bindparam, column, func, select, true, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import FromClause

from db.models import agents, messages, multi_agents, sessions
from db.records import AgentRecord, MessageRecord, MultiAgentRecord, SessionRecord

AgentKey = tuple[str, str]
MessageKey = tuple[str, str, int]
MultiAgentKey = tuple[str, str]


def _text_array(name: str, values: Sequence[str]) -> Any:
    return bindparam(name, list(values), type_=ARRAY(Text))


def _int_array(name: str, values: Sequence[int | None]) -> Any:
    return bindparam(name, list(values), type_=ARRAY(Integer))


def _keys(*columns: tuple[str, Any, Any]) -> FromClause:
    """``unnest(...) WITH ORDINALITY AS k(...)``: one row per requested key, numbered from 1."""
    return (
        func.unnest(*(values for _, values, _ in columns))
        .table_valued(*(column(name, type_) for name, _, type_ in columns), with_ordinality="idx")
        .render_derived(name="k")
    )


def session_record(row: Any) -> SessionRecord:
    return SessionRecord(row.session_id, row.session_type, row.created_at, row.updated_at)


def agent_record(row: Any) -> AgentRecord:
    return AgentRecord(
        row.session_id,
        row.agent_id,
        row.state,
        row.conversation_manager_state,
        row.internal_state,
        row.created_at,
        row.updated_at,
    )


def message_record(row: Any) -> MessageRecord:
    return MessageRecord(
        row.session_id,
        row.agent_id,
        row.message_id,
        row.role,
        row.message,
        row.redact_message,
        row.created_at,
        row.updated_at,
    )


def multi_agent_record(row: Any) -> MultiAgentRecord:
    return MultiAgentRecord(row.session_id, row.multi_agent_id, row.state, row.created_at, row.updated_at)


async def get_sessions(conn: AsyncConnection, session_ids: Sequence[str]) -> dict[str, SessionRecord]:
    stmt = select(sessions).where(sessions.c.session_id == func.any(_text_array("ids", session_ids)))
    return {row.session_id: session_record(row) for row in await conn.execute(stmt)}


def sessions_page_statement(first: int, after: tuple[datetime, str] | None) -> Select[Any]:
    """Newest first; ``first + 1`` rows so the caller can tell whether another page follows."""
    stmt = select(sessions)
    if after is not None:
        created_at, session_id = after
        stmt = stmt.where(
            tuple_(sessions.c.created_at, sessions.c.session_id)
            < tuple_(
                bindparam("after_created_at", created_at, type_=DateTime(timezone=True)),
                bindparam("after_session_id", session_id, type_=Text),
            )
        )
    return stmt.order_by(sessions.c.created_at.desc(), sessions.c.session_id.desc()).limit(first + 1)


async def list_sessions_page(
    conn: AsyncConnection, first: int, after: tuple[datetime, str] | None
) -> list[SessionRecord]:
    return [session_record(row) for row in await conn.execute(sessions_page_statement(first, after))]


async def get_agents(conn: AsyncConnection, keys: Sequence[AgentKey]) -> dict[AgentKey, AgentRecord]:
    k = _keys(
        ("session_id", _text_array("sids", [s for s, _ in keys]), Text),
        ("agent_id", _text_array("aids", [a for _, a in keys]), Text),
    )
    stmt = select(agents).join(
        k, and_(agents.c.session_id == k.c.session_id, agents.c.agent_id == k.c.agent_id)
    )
    return {(row.session_id, row.agent_id): agent_record(row) for row in await conn.execute(stmt)}


async def list_agents_of_sessions(
    conn: AsyncConnection, session_ids: Sequence[str]
) -> dict[str, list[AgentRecord]]:
    stmt = (
        select(agents)
        .where(agents.c.session_id == func.any(_text_array("ids", session_ids)))
        .order_by(agents.c.session_id, agents.c.created_at, agents.c.agent_id)
    )
    found: dict[str, list[AgentRecord]] = {session_id: [] for session_id in session_ids}
    for row in await conn.execute(stmt):
        found[row.session_id].append(agent_record(row))
    return found


async def get_messages(conn: AsyncConnection, keys: Sequence[MessageKey]) -> dict[MessageKey, MessageRecord]:
    k = _keys(
        ("session_id", _text_array("sids", [s for s, _, _ in keys]), Text),
        ("agent_id", _text_array("aids", [a for _, a, _ in keys]), Text),
        ("message_id", _int_array("mids", [m for _, _, m in keys]), Integer),
    )
    stmt = select(messages).join(
        k,
        and_(
            messages.c.session_id == k.c.session_id,
            messages.c.agent_id == k.c.agent_id,
            messages.c.message_id == k.c.message_id,
        ),
    )
    return {
        (row.session_id, row.agent_id, row.message_id): message_record(row)
        for row in await conn.execute(stmt)
    }


async def list_message_windows(
    conn: AsyncConnection, windows: Sequence[tuple[str, str, int, int | None]]
) -> list[list[MessageRecord]]:
    """Messages of many agents, each by ``(session_id, agent_id, offset, limit)`` in message_id order."""
    k = _keys(
        ("session_id", _text_array("sids", [w[0] for w in windows]), Text),
        ("agent_id", _text_array("aids", [w[1] for w in windows]), Text),
        ("off", _int_array("offs", [w[2] for w in windows]), Integer),
        ("lim", _int_array("lims", [w[3] for w in windows]), Integer),
    )
    page = (
        select(messages)
        .where(messages.c.session_id == k.c.session_id, messages.c.agent_id == k.c.agent_id)
        .order_by(messages.c.message_id)
        .offset(k.c.off)
        .limit(k.c.lim)
        .lateral("m")
    )
    stmt = select(k.c.idx, page).select_from(k.join(page, true())).order_by(k.c.idx, page.c.message_id)
    found: list[list[MessageRecord]] = [[] for _ in windows]
    for row in await conn.execute(stmt):
        found[row.idx - 1].append(message_record(row))
    return found


async def list_messages_after(
    conn: AsyncConnection, pages: Sequence[tuple[str, str, int | None, int]]
) -> list[list[MessageRecord]]:
    """Keyset pages by ``(session_id, agent_id, after_message_id, limit)``; -1 or None starts at the top."""
    k = _keys(
        ("session_id", _text_array("sids", [p[0] for p in pages]), Text),
        ("agent_id", _text_array("aids", [p[1] for p in pages]), Text),
        ("after_id", _int_array("afters", [-1 if p[2] is None else p[2] for p in pages]), Integer),
        ("lim", _int_array("lims", [p[3] for p in pages]), Integer),
    )
    page = (
        select(messages)
        .where(
            messages.c.session_id == k.c.session_id,
            messages.c.agent_id == k.c.agent_id,
            messages.c.message_id > k.c.after_id,
        )
        .order_by(messages.c.message_id)
        .limit(k.c.lim)
        .lateral("m")
    )
    stmt = select(k.c.idx, page).select_from(k.join(page, true())).order_by(k.c.idx, page.c.message_id)
    found: list[list[MessageRecord]] = [[] for _ in pages]
    for row in await conn.execute(stmt):
        found[row.idx - 1].append(message_record(row))
    return found


async def count_messages(conn: AsyncConnection, keys: Sequence[AgentKey]) -> list[int]:
    k = _keys(
        ("session_id", _text_array("sids", [s for s, _ in keys]), Text),
        ("agent_id", _text_array("aids", [a for _, a in keys]), Text),
    )
    counted = (
        select(func.count())
        .select_from(messages)
        .where(messages.c.session_id == k.c.session_id, messages.c.agent_id == k.c.agent_id)
        .scalar_subquery()
    )
    stmt = select(k.c.idx, counted.label("n")).select_from(k).order_by(k.c.idx)
    return [row.n for row in await conn.execute(stmt)]


async def get_multi_agents(
    conn: AsyncConnection, keys: Sequence[MultiAgentKey]
) -> dict[MultiAgentKey, MultiAgentRecord]:
    k = _keys(
        ("session_id", _text_array("sids", [s for s, _ in keys]), Text),
        ("multi_agent_id", _text_array("mids", [m for _, m in keys]), Text),
    )
    stmt = select(multi_agents).join(
        k,
        and_(
            multi_agents.c.session_id == k.c.session_id,
            multi_agents.c.multi_agent_id == k.c.multi_agent_id,
        ),
    )
    return {(row.session_id, row.multi_agent_id): multi_agent_record(row) for row in await conn.execute(stmt)}


async def list_multi_agents_of_sessions(
    conn: AsyncConnection, session_ids: Sequence[str]
) -> dict[str, list[MultiAgentRecord]]:
    stmt = (
        select(multi_agents)
        .where(multi_agents.c.session_id == func.any(_text_array("ids", session_ids)))
        .order_by(multi_agents.c.session_id, multi_agents.c.created_at, multi_agents.c.multi_agent_id)
    )
    found: dict[str, list[MultiAgentRecord]] = {session_id: [] for session_id in session_ids}
    for row in await conn.execute(stmt):
        found[row.session_id].append(multi_agent_record(row))
    return found
