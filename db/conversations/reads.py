"""Reads, each shaped to serve a whole DataLoader batch in one statement.

Batches are passed as arrays and unnested, so a statement's text does not depend on how many keys
it serves: PostgreSQL and asyncpg prepare it once per connection. Every key starts with the
tenant it is looked up in (see ``db.tenancy``), and every listing takes a ``Scope``.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    Integer,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    column,
    func,
    null,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import FromClause

from db.byte_caps import checked, within_bytes
from db.json_values import NOT_READ, StoredJSON
from db.models import agents, messages, multi_agents, sessions
from db.records import (
    AgentKey,
    AgentRecord,
    MessageKey,
    MessageRecord,
    MultiAgentKey,
    MultiAgentRecord,
    SessionKey,
    SessionRecord,
    Totals,
    record_of,
)
from db.storage.keys import AGENT_CHECKPOINT


class MessageWindowKey(NamedTuple):
    """Messages of an agent from ``offset`` in messageId order."""

    tenant: str
    session_id: str
    agent_id: str
    offset: int
    limit: int | None
    documents: bool
    """Whether the stored documents are read (only when a message's JSON is selected)."""


class AgentsOfSessionKey(NamedTuple):
    """A page of a session's agents (or multi-agents)."""

    tenant: str
    session_id: str
    offset: int
    limit: int


def unnested_keys(*columns: tuple[str, Any, Any]) -> FromClause:
    """``unnest(...) WITH ORDINALITY AS k(...)``: one row per requested key, numbered from 1."""
    return (
        func.unnest(*(values for _, values, _ in columns))
        .table_valued(*(column(name, type_) for name, _, type_ in columns), with_ordinality="idx")
        .render_derived(name="k")
    )


def key_params(*names: tuple[str, Any]) -> FromClause:
    """``unnested_keys`` over array parameters (``name``, element type) given when the statement is
    executed: a statement built once serves every batch."""
    return unnested_keys(*((name, bindparam(f"{name}s", type_=ARRAY(kind)), kind) for name, kind in names))


def key_values(keys: Sequence[tuple[Any, ...]], *names: str) -> dict[str, list[Any]]:
    """The arrays ``key_params`` names, from the keys' first elements in that order."""
    return {f"{name}s": [key[i] for key in keys] for i, name in enumerate(names)}


def totals_of(row: Any) -> Totals:
    return record_of(Totals, row)


def session_record(row: Any) -> SessionRecord:
    return record_of(SessionRecord, row, totals=totals_of(row))


def agent_record(row: Any) -> AgentRecord:
    return record_of(AgentRecord, row, totals=totals_of(row))


MESSAGE_COLUMNS = [
    messages.c.session_id,
    messages.c.tenant,
    messages.c.agent_id,
    messages.c.message_id,
    messages.c.role,
    # As text: answers embed the stored JSON as it is (see StoredJSON).
    cast(messages.c.message, Text).label("message"),
    cast(messages.c.redact_message, Text).label("redact_message"),
    messages.c.created_at,
    messages.c.updated_at,
]
"""What a MessageRecord holds: the API derives the rest (text, tools, tokens) from the JSON when asked."""
WITHOUT_DOCUMENTS = [
    *MESSAGE_COLUMNS[:5],
    null().cast(Text).label("message"),
    null().cast(Text).label("redact_message"),
    *MESSAGE_COLUMNS[7:],
]


def message_columns(documents: bool) -> list[Any]:
    """MESSAGE_COLUMNS; without ``documents``, the stored JSON left out (records hold ``NOT_READ``):
    a page of ids and times over large messages reads no more than it answers."""
    return MESSAGE_COLUMNS if documents else WITHOUT_DOCUMENTS


def message_record(row: Any) -> MessageRecord:
    redaction = row.redact_message
    return MessageRecord(
        row.session_id,
        row.tenant,
        row.agent_id,
        row.message_id,
        row.role,
        NOT_READ if row.message is None else StoredJSON.of(row.message),
        None if redaction is None else StoredJSON.of(redaction),
        row.created_at,
        row.updated_at,
    )


def multi_agent_record(row: Any) -> MultiAgentRecord:
    return record_of(MultiAgentRecord, row)


async def get_sessions(conn: AsyncConnection, keys: Sequence[SessionKey]) -> dict[SessionKey, SessionRecord]:
    rows = await _by_keys(conn, sessions, ("tenant", "session_id"), keys, None)
    return {r.key: r for r in map(session_record, rows)}


AGENT_DOCUMENTS = ("state", "conversation_manager_state", "internal_state")
"""An agent's columns that can be large, for ``byte_caps``."""
MESSAGE_DOCUMENTS = ("message", "redact_message")
MULTI_AGENT_DOCUMENTS = ("state",)


_DOCUMENTS: dict[str, tuple[str, ...]] = {
    sessions.name: (),
    agents.name: AGENT_DOCUMENTS,
    messages.name: MESSAGE_DOCUMENTS,
    multi_agents.name: MULTI_AGENT_DOCUMENTS,
}


def _documents_of(table: Table) -> tuple[str, ...]:
    """The columns of ``table`` that hold stored documents, for ``byte_caps``."""
    return _DOCUMENTS[table.name]


@cache
def _by_keys_statement(table: Table, key: tuple[str, ...], sized: bool) -> Select[Any]:
    """Rows of ``table`` by their whole key, the key's columns given as array parameters."""
    k = key_params(*((name, Integer if name == "message_id" else Text) for name in key))
    columns = MESSAGE_COLUMNS if table is messages else [table]
    stmt = select(*columns).join(k, and_(*(table.c[name] == k.c[name] for name in key)))
    return within_bytes(stmt, _documents_of(table)) if sized else stmt


async def _by_keys(
    conn: AsyncConnection,
    table: Table,
    key: tuple[str, ...],
    keys: Sequence[tuple[Any, ...]],
    most_bytes: int | None,
) -> list[Any]:
    values = {**key_values(keys, *key), "most_bytes": most_bytes}
    return checked(
        await conn.execute(_by_keys_statement(table, key, most_bytes is not None), values), most_bytes
    )


async def get_agents(
    conn: AsyncConnection, keys: Sequence[AgentKey], *, most_bytes: int | None = None
) -> dict[AgentKey, AgentRecord]:
    rows = await _by_keys(conn, agents, ("tenant", "session_id", "agent_id"), keys, most_bytes)
    return {r.key: r for r in map(agent_record, rows)}


@cache
def _rows_of_sessions_statement(table: Table, order: str, sized: bool, capped: bool) -> Select[Any]:
    """Pages of a session table's rows per session, oldest first (then by ``order``, the id)."""
    k = key_params(("tenant", Text), ("session_id", Text), ("off", Integer), ("lim", Integer))
    page = (
        select(table)
        .where(table.c.tenant == k.c.tenant, table.c.session_id == k.c.session_id)
        .order_by(table.c.created_at, table.c[order])
        .offset(k.c.off)
        .limit(k.c.lim)
        .lateral("a")
    )
    stmt = select(k.c.idx, page).select_from(k.join(page, true()))
    if capped:
        stmt = stmt.limit(bindparam("most", type_=Integer))
    return within_bytes(stmt, _documents_of(table)) if sized else stmt


async def _rows_of_sessions(
    conn: AsyncConnection,
    table: Table,
    order: str,
    keys: Sequence[AgentsOfSessionKey],
    most: int | None,
    most_bytes: int | None,
) -> list[list[Any]]:
    stmt = _rows_of_sessions_statement(table, order, most_bytes is not None, most is not None)
    values = {
        **key_values(keys, "tenant", "session_id", "off", "lim"),
        "most": most,
        "most_bytes": most_bytes,
    }
    found: list[list[Any]] = [[] for _ in keys]
    for row in checked(await conn.execute(stmt, values), most_bytes):
        found[row.idx - 1].append(row)
    return found


async def list_agents_of_sessions(
    conn: AsyncConnection,
    keys: Sequence[AgentsOfSessionKey],
    *,
    most: int | None = None,
    most_bytes: int | None = None,
) -> dict[AgentsOfSessionKey, list[AgentRecord]]:
    """Each session's agents, oldest first, from ``offset``, at most ``limit`` of them."""
    found = await _rows_of_sessions(conn, agents, "agent_id", keys, most, most_bytes)
    return {key: [agent_record(row) for row in rows] for key, rows in zip(keys, found, strict=True)}


async def get_messages(
    conn: AsyncConnection, keys: Sequence[MessageKey], *, most_bytes: int | None = None
) -> dict[MessageKey, MessageRecord]:
    rows = await _by_keys(
        conn, messages, ("tenant", "session_id", "agent_id", "message_id"), keys, most_bytes
    )
    return {r.key: r for r in map(message_record, rows)}


RECORD_FIELDS = (
    "session_id",
    "tenant",
    "agent_id",
    "message_id",
    "role",
    "message",
    "redact_message",
    "created_at",
    "updated_at",
)
"""A MessageRecord's fields, in its order."""


def numbered_records(columns: Any, rows: Iterable[Any]) -> Iterator[tuple[int, MessageRecord]]:
    """Rows of numbered windows (``idx``, then MESSAGE_COLUMNS) as (idx, record) pairs."""
    # By position, all fields of a row in one C call: a restore reads 10,000 rows, and reading each
    # field by name took three times as long (``message_record`` does that, for the rarer reads).
    names = list(columns)
    pick = itemgetter(names.index("idx"), *(names.index(name) for name in RECORD_FIELDS))
    for row in rows:
        idx, session_id, tenant, agent_id, message_id, role, message, redaction, created, updated = pick(row)
        yield (
            idx,
            MessageRecord(
                session_id,
                tenant,
                agent_id,
                message_id,
                role,
                NOT_READ if message is None else StoredJSON.of(message),
                None if redaction is None else StoredJSON.of(redaction),
                created,
                updated,
            ),
        )


def _pages(columns: Any, rows: Sequence[Any], count: int) -> list[list[MessageRecord]]:
    """Rows of numbered windows (``idx``, then MESSAGE_COLUMNS) as a page of records per window."""
    found: list[list[MessageRecord]] = [[] for _ in range(count)]
    for idx, record in numbered_records(columns, rows):
        found[idx - 1].append(record)
    for page in found:
        page.sort(key=lambda record: record.message_id)
    return found


def messages_of_key(k: FromClause) -> list[Any]:
    """The messages of the agent a row of keys (``key_params``: tenant, session_id, agent_id) names."""
    return [
        messages.c.tenant == k.c.tenant,
        messages.c.session_id == k.c.session_id,
        messages.c.agent_id == k.c.agent_id,
    ]


@cache
def _windows_statement(documents: bool, sized: bool, capped: bool) -> Select[Any]:
    k = key_params(
        ("tenant", Text), ("session_id", Text), ("agent_id", Text), ("off", Integer), ("lim", Integer)
    )
    page = (
        select(*message_columns(documents))
        .where(*messages_of_key(k))
        .order_by(messages.c.message_id)
        .offset(k.c.off)
        .limit(k.c.lim)
        .lateral("m")
    )
    # Without an ORDER BY PostgreSQL can stop at ``most`` rows instead of sorting everything first:
    # getting all of them means the caller's budget is spent anyway.
    stmt = select(k.c.idx, page).select_from(k.join(page, true()))
    if capped:
        stmt = stmt.limit(bindparam("most", type_=Integer))
    return within_bytes(stmt, MESSAGE_DOCUMENTS) if sized else stmt


async def list_message_windows(
    conn: AsyncConnection,
    windows: Sequence[MessageWindowKey],
    *,
    most: int | None = None,
    most_bytes: int | None = None,
) -> list[list[MessageRecord]]:
    """Messages of many agents, each window from its offset, at most its limit, in id order;
    at most ``most`` rows and ``most_bytes`` of stored JSON in all."""
    documents = any(w.documents for w in windows)
    stmt = _windows_statement(documents, most_bytes is not None, most is not None)
    values = {
        **key_values(windows, "tenant", "session_id", "agent_id", "off", "lim"),
        "most": most,
        "most_bytes": most_bytes,
    }
    result = await conn.execute(stmt, values)
    return _pages(result.keys(), checked(result, most_bytes), len(windows))


async def get_multi_agents(
    conn: AsyncConnection, keys: Sequence[MultiAgentKey], *, most_bytes: int | None = None
) -> dict[MultiAgentKey, MultiAgentRecord]:
    rows = await _by_keys(conn, multi_agents, ("tenant", "session_id", "multi_agent_id"), keys, most_bytes)
    return {r.key: r for r in map(multi_agent_record, rows)}


async def list_multi_agents_of_sessions(
    conn: AsyncConnection,
    keys: Sequence[AgentsOfSessionKey],
    *,
    most: int | None = None,
    most_bytes: int | None = None,
) -> dict[AgentsOfSessionKey, list[MultiAgentRecord]]:
    """Each session's multi-agent states, oldest first, from ``offset``, at most ``limit``."""
    found = await _rows_of_sessions(conn, multi_agents, "multi_agent_id", keys, most, most_bytes)
    return {key: [multi_agent_record(row) for row in rows] for key, rows in zip(keys, found, strict=True)}


@dataclass(frozen=True, slots=True)
class StoredCounts:
    """How much one session holds, which bounds what a look-up of it can answer."""

    agents: int
    multi_agents: int
    most_messages: int
    """The most messages any one of its agents has."""
    most_checkpoints: int
    """The most checkpoints any one of its agents has."""


_STORED_COUNTS = text(
    "SELECT k.idx, "
    "(SELECT count(*) FROM session_agents a WHERE a.tenant = k.tenant AND a.session_id = k.session_id) "
    "AS agents, "
    "(SELECT count(*) FROM session_multi_agents m "
    "WHERE m.tenant = k.tenant AND m.session_id = k.session_id) AS multi_agents, "
    "(SELECT coalesce(max(a.message_count), 0) FROM session_agents a "
    "WHERE a.tenant = k.tenant AND a.session_id = k.session_id) AS most_messages, "
    "(SELECT coalesce(max(c.n), 0) FROM (SELECT count(*) AS n FROM storage_objects o "
    "WHERE o.tenant = k.tenant AND o.session_id = k.session_id AND o.kind = :checkpoint "
    "GROUP BY o.scope_id) c) AS most_checkpoints "
    "FROM unnest(CAST(:tenants AS text[]), CAST(:sessions AS text[])) "
    "WITH ORDINALITY AS k(tenant, session_id, idx)"
)


async def stored_counts(conn: AsyncConnection, keys: Sequence[SessionKey]) -> list[StoredCounts]:
    """For each session key, what the session holds (all zeros for one that does not exist)."""
    rows = await conn.execute(
        _STORED_COUNTS,
        {
            "tenants": [key.tenant for key in keys],
            "sessions": [key.session_id for key in keys],
            "checkpoint": AGENT_CHECKPOINT,
        },
    )
    found = [StoredCounts(0, 0, 0, 0) for _ in keys]
    for row in rows:
        found[row.idx - 1] = StoredCounts(
            int(row.agents), int(row.multi_agents), int(row.most_messages), int(row.most_checkpoints)
        )
    return found
