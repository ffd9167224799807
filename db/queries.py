"""Reads, each shaped to serve a whole DataLoader batch in one statement.

Batches are passed as arrays and unnested, so a statement's text does not depend on how many keys
it serves: PostgreSQL and asyncpg prepare it once per connection. Every key starts with the
tenant it is looked up in (see ``db.tenancy``), and every listing takes a ``Scope``.
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
from db.tenancy import Scope

SessionKey = tuple[str, str]
"""(tenant, session_id)"""
AgentKey = tuple[str, str, str]
"""(tenant, session_id, agent_id)"""
MessageKey = tuple[str, str, str, int]
"""(tenant, session_id, agent_id, message_id)"""
MultiAgentKey = tuple[str, str, str]
"""(tenant, session_id, multi_agent_id)"""
MessageWindowKey = tuple[str, str, str, int, int | None]
"""(tenant, session_id, agent_id, offset, limit)"""
MessagePageKey = tuple[str, str, str, int | None, int]
"""(tenant, session_id, agent_id, after message_id, limit)"""
SessionPosition = tuple[datetime, str, str]
"""Where a page of sessions ends: (created_at, session_id, tenant)."""


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


def _session_keys(keys: Sequence[tuple[Any, ...]]) -> list[tuple[str, Any, Any]]:
    """The two key columns every session-table batch joins on: tenant and session_id."""
    return [
        ("tenant", _text_array("tenants", [key[0] for key in keys]), Text),
        ("session_id", _text_array("sids", [key[1] for key in keys]), Text),
    ]


def session_record(row: Any) -> SessionRecord:
    return SessionRecord(row.session_id, row.tenant, row.session_type, row.created_at, row.updated_at)


def agent_record(row: Any) -> AgentRecord:
    return AgentRecord(
        row.session_id,
        row.tenant,
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
        row.tenant,
        row.agent_id,
        row.message_id,
        row.role,
        row.message,
        row.redact_message,
        row.created_at,
        row.updated_at,
    )


def multi_agent_record(row: Any) -> MultiAgentRecord:
    return MultiAgentRecord(
        row.session_id, row.tenant, row.multi_agent_id, row.state, row.created_at, row.updated_at
    )


async def get_sessions(conn: AsyncConnection, keys: Sequence[SessionKey]) -> dict[SessionKey, SessionRecord]:
    k = _keys(*_session_keys(keys))
    stmt = select(sessions).join(
        k, and_(sessions.c.tenant == k.c.tenant, sessions.c.session_id == k.c.session_id)
    )
    return {(row.tenant, row.session_id): session_record(row) for row in await conn.execute(stmt)}


def sessions_page_statement(scope: Scope, first: int, after: SessionPosition | None) -> Select[Any]:
    """Newest first; ``first + 1`` rows so the caller can tell whether another page follows.

    Ties (and, across tenants, equal ids) are broken by session id and then tenant, so a cursor
    names one position exactly.
    """
    stmt = select(sessions).where(scope.visible(sessions))
    if after is not None:
        created_at, session_id, tenant = after
        stmt = stmt.where(
            tuple_(sessions.c.created_at, sessions.c.session_id, sessions.c.tenant)
            < tuple_(
                bindparam("after_created_at", created_at, type_=DateTime(timezone=True)),
                bindparam("after_session_id", session_id, type_=Text),
                bindparam("after_tenant", tenant, type_=Text),
            )
        )
    return stmt.order_by(
        sessions.c.created_at.desc(), sessions.c.session_id.desc(), sessions.c.tenant.desc()
    ).limit(first + 1)


async def list_sessions_page(
    conn: AsyncConnection, scope: Scope, first: int, after: SessionPosition | None
) -> list[SessionRecord]:
    return [session_record(row) for row in await conn.execute(sessions_page_statement(scope, first, after))]


async def get_agents(conn: AsyncConnection, keys: Sequence[AgentKey]) -> dict[AgentKey, AgentRecord]:
    k = _keys(*_session_keys(keys), ("agent_id", _text_array("aids", [key[2] for key in keys]), Text))
    stmt = select(agents).join(
        k,
        and_(
            agents.c.tenant == k.c.tenant,
            agents.c.session_id == k.c.session_id,
            agents.c.agent_id == k.c.agent_id,
        ),
    )
    return {(row.tenant, row.session_id, row.agent_id): agent_record(row) for row in await conn.execute(stmt)}


async def list_agents_of_sessions(
    conn: AsyncConnection, keys: Sequence[SessionKey], *, most: int | None = None
) -> dict[SessionKey, list[AgentRecord]]:
    k = _keys(*_session_keys(keys))
    stmt = (
        select(agents)
        .join(k, and_(agents.c.tenant == k.c.tenant, agents.c.session_id == k.c.session_id))
        .order_by(agents.c.tenant, agents.c.session_id, agents.c.created_at, agents.c.agent_id)
    )
    if most is not None:
        stmt = stmt.limit(bindparam("most", most, type_=Integer))
    found: dict[SessionKey, list[AgentRecord]] = {key: [] for key in keys}
    for row in await conn.execute(stmt):
        found[(row.tenant, row.session_id)].append(agent_record(row))
    return found


async def get_messages(conn: AsyncConnection, keys: Sequence[MessageKey]) -> dict[MessageKey, MessageRecord]:
    k = _keys(
        *_session_keys(keys),
        ("agent_id", _text_array("aids", [key[2] for key in keys]), Text),
        ("message_id", _int_array("mids", [key[3] for key in keys]), Integer),
    )
    stmt = select(messages).join(
        k,
        and_(
            messages.c.tenant == k.c.tenant,
            messages.c.session_id == k.c.session_id,
            messages.c.agent_id == k.c.agent_id,
            messages.c.message_id == k.c.message_id,
        ),
    )
    return {
        (row.tenant, row.session_id, row.agent_id, row.message_id): message_record(row)
        for row in await conn.execute(stmt)
    }


def _at_most(stmt: Select[Any], most: int | None) -> Select[Any]:
    """A batch cut off after ``most`` rows. Without an ORDER BY PostgreSQL can stop early instead of
    sorting everything first: getting all ``most`` rows means the caller's budget is spent anyway."""
    return stmt if most is None else stmt.limit(bindparam("most", most, type_=Integer))


def _pages(rows: Any, count: int) -> list[list[MessageRecord]]:
    found: list[list[MessageRecord]] = [[] for _ in range(count)]
    for row in rows:
        found[row.idx - 1].append(message_record(row))
    for page in found:
        page.sort(key=lambda record: record.message_id)
    return found


def _messages_of_key(k: FromClause) -> list[Any]:
    return [
        messages.c.tenant == k.c.tenant,
        messages.c.session_id == k.c.session_id,
        messages.c.agent_id == k.c.agent_id,
    ]


async def list_message_windows(
    conn: AsyncConnection, windows: Sequence[MessageWindowKey], *, most: int | None = None
) -> list[list[MessageRecord]]:
    """Messages of many agents, each by ``(tenant, session_id, agent_id, offset, limit)`` in id order;
    at most ``most`` rows in all."""
    k = _keys(
        *_session_keys(windows),
        ("agent_id", _text_array("aids", [w[2] for w in windows]), Text),
        ("off", _int_array("offs", [w[3] for w in windows]), Integer),
        ("lim", _int_array("lims", [w[4] for w in windows]), Integer),
    )
    page = (
        select(messages)
        .where(*_messages_of_key(k))
        .order_by(messages.c.message_id)
        .offset(k.c.off)
        .limit(k.c.lim)
        .lateral("m")
    )
    return _pages(
        await conn.execute(_at_most(select(k.c.idx, page).select_from(k.join(page, true())), most)),
        len(windows),
    )


async def list_messages_after(
    conn: AsyncConnection, pages: Sequence[MessagePageKey], *, most: int | None = None
) -> list[list[MessageRecord]]:
    """Keyset pages by ``(tenant, session_id, agent_id, after_message_id, limit)``; None starts at the top."""
    k = _keys(
        *_session_keys(pages),
        ("agent_id", _text_array("aids", [p[2] for p in pages]), Text),
        ("after_id", _int_array("afters", [-1 if p[3] is None else p[3] for p in pages]), Integer),
        ("lim", _int_array("lims", [p[4] for p in pages]), Integer),
    )
    page = (
        select(messages)
        .where(*_messages_of_key(k), messages.c.message_id > k.c.after_id)
        .order_by(messages.c.message_id)
        .limit(k.c.lim)
        .lateral("m")
    )
    return _pages(
        await conn.execute(_at_most(select(k.c.idx, page).select_from(k.join(page, true())), most)),
        len(pages),
    )


async def count_messages(conn: AsyncConnection, keys: Sequence[AgentKey]) -> list[int]:
    k = _keys(*_session_keys(keys), ("agent_id", _text_array("aids", [key[2] for key in keys]), Text))
    counted = select(func.count()).select_from(messages).where(*_messages_of_key(k)).scalar_subquery()
    stmt = select(k.c.idx, counted.label("n")).select_from(k).order_by(k.c.idx)
    return [row.n for row in await conn.execute(stmt)]


async def get_multi_agents(
    conn: AsyncConnection, keys: Sequence[MultiAgentKey]
) -> dict[MultiAgentKey, MultiAgentRecord]:
    k = _keys(*_session_keys(keys), ("multi_agent_id", _text_array("mids", [key[2] for key in keys]), Text))
    stmt = select(multi_agents).join(
        k,
        and_(
            multi_agents.c.tenant == k.c.tenant,
            multi_agents.c.session_id == k.c.session_id,
            multi_agents.c.multi_agent_id == k.c.multi_agent_id,
        ),
    )
    return {
        (row.tenant, row.session_id, row.multi_agent_id): multi_agent_record(row)
        for row in await conn.execute(stmt)
    }


async def list_multi_agents_of_sessions(
    conn: AsyncConnection, keys: Sequence[SessionKey], *, most: int | None = None
) -> dict[SessionKey, list[MultiAgentRecord]]:
    k = _keys(*_session_keys(keys))
    stmt = (
        select(multi_agents)
        .join(k, and_(multi_agents.c.tenant == k.c.tenant, multi_agents.c.session_id == k.c.session_id))
        .order_by(
            multi_agents.c.tenant,
            multi_agents.c.session_id,
            multi_agents.c.created_at,
            multi_agents.c.multi_agent_id,
        )
    )
    if most is not None:
        stmt = stmt.limit(bindparam("most", most, type_=Integer))
    found: dict[SessionKey, list[MultiAgentRecord]] = {key: [] for key in keys}
    for row in await conn.execute(stmt):
        found[(row.tenant, row.session_id)].append(multi_agent_record(row))
    return found
