"""Filtered, ordered keyset pages of sessions, agents and messages, and their counts.

A page goes forward (``first``/``after``) or backward (``last``/``before``) from a position: the
order's value and the primary key of the row it ends on, compared as one row value, so pages stay
stable while rows are added and no query scans past the rows it skips (no OFFSET).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import BigInteger, Integer, Select, Text, bindparam, func, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from db.analytics.filters import ConversationFilter, agents_matching, messages_matching, sessions_matching
from db.byte_caps import checked, rows_within, within_bytes
from db.conversations.reads import (
    AGENT_DOCUMENTS,
    MESSAGE_DOCUMENTS,
    agent_record,
    key_params,
    key_values,
    message_columns,
    message_record,
    messages_of_key,
    numbered_records,
    session_record,
)
from db.models import agents, messages, sessions
from db.records import AgentRecord, MessageRecord, SessionRecord
from db.tenancy import Scope

R = TypeVar("R")
Position = tuple[Any, ...]
"""(the order's value, then the primary key) of the row a page ends on."""

SESSION_ORDERS: dict[str, Any] = {
    "CREATED_AT": sessions.c.created_at,
    "LAST_ACTIVITY_AT": sessions.c.last_activity_at,
    "MESSAGE_COUNT": sessions.c.message_count,
    "TOTAL_TOKENS": sessions.c.total_tokens,
}
AGENT_ORDERS: dict[str, Any] = {
    "CREATED_AT": agents.c.created_at,
    "LAST_ACTIVITY_AT": agents.c.last_activity_at,
    "MESSAGE_COUNT": agents.c.message_count,
    "TOTAL_TOKENS": agents.c.total_tokens,
}
MESSAGE_ORDERS: dict[str, Any] = {
    "CREATED_AT": messages.c.created_at,
    "TOTAL_TOKENS": func.coalesce(messages.c.total_tokens, 0),
}
SESSION_KEY = (sessions.c.session_id, sessions.c.tenant)
AGENT_KEY = (agents.c.session_id, agents.c.tenant, agents.c.agent_id)
MESSAGE_KEY = (messages.c.session_id, messages.c.tenant, messages.c.agent_id, messages.c.message_id)


@dataclass(frozen=True, slots=True)
class Order:
    field: str
    descending: bool


@dataclass(frozen=True, slots=True)
class PageRequest:
    """``size`` rows after ``position`` (before it, reading backwards); None starts at the end."""

    size: int
    position: Position | None = None
    backwards: bool = False


@dataclass(frozen=True, slots=True)
class Page(Generic[R]):
    """Rows in the order asked for, each with its position, and whether more lie beyond."""

    rows: list[tuple[R, Position]]
    more: bool


def _keyset(
    stmt: Select[Any],
    order_by: Any,
    key: Sequence[Any],
    order: Order,
    page: PageRequest,
    names: Sequence[str],
) -> Select[Any]:
    columns = [order_by, *key]
    descending = order.descending != page.backwards
    if page.position is not None:
        position = tuple_(
            *(
                bindparam(f"after_{name}", value, type_=column.type)
                for name, value, column in zip(names, page.position, columns, strict=True)
            )
        )
        stmt = stmt.where(tuple_(*columns) < position if descending else tuple_(*columns) > position)
    ordering = [column.desc() if descending else column.asc() for column in columns]
    return stmt.order_by(*ordering).limit(page.size + 1)


def _page(rows: Sequence[tuple[R, Position]], page: PageRequest) -> Page[R]:
    found = list(rows[: page.size])
    if page.backwards:
        found.reverse()
    return Page(rows=found, more=len(rows) > page.size)


def _position(row: Any, order_value: str, names: Sequence[str]) -> Position:
    return (getattr(row, order_value), *(getattr(row, name) for name in names))


async def list_sessions(
    conn: AsyncConnection, scope: Scope, f: ConversationFilter, order: Order, page: PageRequest
) -> Page[SessionRecord]:
    order_by = SESSION_ORDERS[order.field].label("order_value")
    stmt = select(sessions, order_by).where(scope.visible(sessions), *sessions_matching(f))
    stmt = _keyset(
        stmt, SESSION_ORDERS[order.field], SESSION_KEY, order, page, ("order", "session_id", "tenant")
    )
    rows = [
        (session_record(row), _position(row, "order_value", ("session_id", "tenant")))
        for row in await conn.execute(stmt)
    ]
    return _page(rows, page)


async def count_sessions(conn: AsyncConnection, scope: Scope, f: ConversationFilter) -> int:
    stmt = select(func.count()).select_from(sessions).where(scope.visible(sessions), *sessions_matching(f))
    return int((await conn.execute(stmt)).scalar_one())


async def list_agents(
    conn: AsyncConnection,
    scope: Scope,
    f: ConversationFilter,
    order: Order,
    page: PageRequest,
    *,
    most_bytes: int | None = None,
) -> Page[AgentRecord]:
    order_by = AGENT_ORDERS[order.field].label("order_value")
    stmt = select(agents, order_by).where(scope.visible(agents), *agents_matching(f))
    names = ("session_id", "tenant", "agent_id")
    stmt = _keyset(stmt, AGENT_ORDERS[order.field], AGENT_KEY, order, page, ("order", *names))
    found = await rows_within(conn, stmt, AGENT_DOCUMENTS, most_bytes)
    return _page([(agent_record(row), _position(row, "order_value", names)) for row in found], page)


async def count_agents(conn: AsyncConnection, scope: Scope, f: ConversationFilter) -> int:
    stmt = select(func.count()).select_from(agents).where(scope.visible(agents), *agents_matching(f))
    return int((await conn.execute(stmt)).scalar_one())


async def list_messages(
    conn: AsyncConnection,
    scope: Scope,
    f: ConversationFilter,
    order: Order,
    page: PageRequest,
    *,
    most_bytes: int | None = None,
    documents: bool = True,
) -> Page[MessageRecord]:
    order_by = MESSAGE_ORDERS[order.field]
    stmt: Select[Any] = select(*message_columns(documents), order_by.label("order_value")).where(
        scope.visible(messages), *messages_matching(f)
    )
    names = ("session_id", "tenant", "agent_id", "message_id")
    stmt = _keyset(stmt, order_by, MESSAGE_KEY, order, page, ("order", *names))
    found = await rows_within(conn, stmt, MESSAGE_DOCUMENTS, most_bytes)
    return _page([(message_record(row), _position(row, "order_value", names)) for row in found], page)


async def count_messages(conn: AsyncConnection, scope: Scope, f: ConversationFilter) -> int:
    stmt = select(func.count()).select_from(messages).where(scope.visible(messages), *messages_matching(f))
    return int((await conn.execute(stmt)).scalar_one())


class AgentMessagesKey(NamedTuple):
    """A page of an agent's messages matching ``filter``, from ``position`` (a messageId)."""

    tenant: str
    session_id: str
    agent_id: str
    filter: ConversationFilter
    position: int | None
    rows: int
    """The page's size plus one, which tells whether there are more."""
    backwards: bool
    documents: bool
    """Whether the stored documents are read."""


class LastMessageKey(NamedTuple):
    tenant: str
    session_id: str
    agent_id: str
    documents: bool


class AgentFilterKey(NamedTuple):
    tenant: str
    session_id: str
    agent_id: str
    filter: ConversationFilter


@lru_cache(maxsize=256)
def _agent_pages_statement(
    f: ConversationFilter, backwards: bool, documents: bool, sized: bool, capped: bool
) -> Select[Any]:
    """Built once per filter and shape; the keys, positions and limits are its parameters."""
    k = key_params(
        ("tenant", Text), ("session_id", Text), ("agent_id", Text), ("position", BigInteger), ("lim", Integer)
    )
    beyond = messages.c.message_id < k.c.position if backwards else messages.c.message_id > k.c.position
    page = (
        select(*message_columns(documents))
        .where(
            *messages_of_key(k),
            beyond,
            *messages_matching(f),
        )
        .order_by(messages.c.message_id.desc() if backwards else messages.c.message_id)
        .limit(k.c.lim)
        .lateral("m")
    )
    stmt = select(k.c.idx, page).select_from(k.join(page, true()))
    if capped:
        stmt = stmt.limit(bindparam("most", type_=Integer))  # see reads.list_message_windows
    return within_bytes(stmt, MESSAGE_DOCUMENTS) if sized else stmt


async def agent_message_pages(
    conn: AsyncConnection,
    keys: Sequence[AgentMessagesKey],
    *,
    most: int | None = None,
    most_bytes: int | None = None,
) -> list[list[MessageRecord]]:
    """Pages of many agents' messages in conversation order: a statement per distinct filter and direction."""
    found: list[list[MessageRecord]] = [[] for _ in keys]
    groups: dict[tuple[ConversationFilter, bool], list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault((key.filter, key.backwards), []).append(index)
    for (f, backwards), indexes in groups.items():
        group = [keys[i] for i in indexes]
        # Past every message id either way; 2**31 is beyond PostgreSQL's integer, hence bigint.
        far = 2**31 if backwards else -1
        positions = [(*key[:3], far if key.position is None else key.position, key.rows) for key in group]
        documents = any(key.documents for key in group)
        stmt = _agent_pages_statement(f, backwards, documents, most_bytes is not None, most is not None)
        values = key_values(positions, "tenant", "session_id", "agent_id", "position", "lim")
        result = await conn.execute(stmt, {**values, "most": most, "most_bytes": most_bytes})
        rows = checked(result, most_bytes)
        if most_bytes is not None and rows:
            most_bytes -= min(most_bytes, max(row[-1] for row in rows))
        for idx, record in numbered_records(result.keys(), rows):
            found[indexes[idx - 1]].append(record)
    for records, key in zip(found, keys, strict=True):
        records.sort(key=lambda record: record.message_id, reverse=key.backwards)
    return found


async def count_agent_messages(conn: AsyncConnection, keys: Sequence[AgentFilterKey]) -> list[int]:
    """How many messages of each agent match its filter, one statement per distinct filter."""
    counts = [0] * len(keys)
    groups: dict[ConversationFilter, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key.filter, []).append(index)
    for f, indexes in groups.items():
        values = key_values([keys[i] for i in indexes], "tenant", "session_id", "agent_id")
        for row in await conn.execute(_count_statement(f), values):
            counts[indexes[row.idx - 1]] = int(row.n)
    return counts


@lru_cache(maxsize=256)
def _count_statement(f: ConversationFilter) -> Select[Any]:
    """Built once per filter; the agents are its parameters."""
    k = key_params(("tenant", Text), ("session_id", Text), ("agent_id", Text))
    counted = select(func.count()).select_from(messages).where(*messages_of_key(k), *messages_matching(f))
    return select(k.c.idx, counted.scalar_subquery().label("n")).select_from(k)


@cache
def _latest_statement(documents: bool, sized: bool) -> Select[Any]:
    k = key_params(("tenant", Text), ("session_id", Text), ("agent_id", Text))
    last = (
        select(*message_columns(documents))
        .where(*messages_of_key(k))
        .order_by(messages.c.message_id.desc())
        .limit(1)
        .lateral("m")
    )
    stmt = select(k.c.idx, last).select_from(k.join(last, true()))
    return within_bytes(stmt, MESSAGE_DOCUMENTS) if sized else stmt


async def latest_messages(
    conn: AsyncConnection, keys: Sequence[LastMessageKey], *, most_bytes: int | None = None
) -> list[MessageRecord | None]:
    """Each agent's last message (the highest message id), or None."""
    stmt = _latest_statement(any(key.documents for key in keys), most_bytes is not None)
    values = {**key_values(keys, "tenant", "session_id", "agent_id"), "most_bytes": most_bytes}
    found: list[MessageRecord | None] = [None] * len(keys)
    result = await conn.execute(stmt, values)
    for idx, record in numbered_records(result.keys(), checked(result, most_bytes)):
        found[idx - 1] = record
    return found
