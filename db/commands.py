"""Writes. Each runs as few statements as it can and raises ``db.errors`` for the caller to report.

Creates insert with ``ON CONFLICT DO NOTHING`` and let foreign keys check the parent, so the
common case is one statement with no read before it; only a conflict costs a second look.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from sqlalchemy import ColumnElement, Row, Table, Text, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import JSON, insert
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection

from db.errors import AlreadyExistsError, ConflictError, InvalidDataError, NotFoundError
from db.json_values import canonical_json
from db.models import agents, audit_events, messages, multi_agents, sessions
from db.queries import agent_record, message_record, multi_agent_record, session_record
from db.records import (
    Actor,
    AgentDraft,
    AgentRecord,
    MessageDraft,
    MessageRecord,
    MultiAgentDraft,
    MultiAgentRecord,
    SessionDraft,
    SessionRecord,
)
from db.tenancy import Scope

FOREIGN_KEY_VIOLATION = "23503"
UNPAIRED_SURROGATE = "text must be valid Unicode (it has an unpaired surrogate)"
MAX_DETAIL = 200
MESSAGE_PK = [messages.c.session_id, messages.c.tenant, messages.c.agent_id, messages.c.message_id]
# Built once with bind parameters, so SQLAlchemy compiles it once; executed with a list of rows it
# becomes one multi-row INSERT (insertmanyvalues) that still returns every inserted row.
INSERT_MESSAGE = insert(messages).on_conflict_do_nothing(index_elements=MESSAGE_PK).returning(*messages.c)


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def _raise_for(error: Exception, missing_parent: str) -> NoReturn:
    """Turn what PostgreSQL (or the driver) refused into a ``db.errors`` exception."""
    if isinstance(error, DBAPIError):
        state = _sqlstate(error)
        if state == FOREIGN_KEY_VIOLATION:
            raise NotFoundError(missing_parent) from error
        if state is not None and state[:2] in ("22", "23"):
            # Class 22 is "data exception" (bad JSON escape, NUL in text, out of range); class 23
            # "integrity constraint violation" other than the parent key: both are the input's fault.
            detail = str(getattr(error.orig, "args", [""])[0] or error.orig).splitlines()[0]
            if "surrogates not allowed" in detail:
                # The driver quotes the start of the offending value; say what is wrong instead.
                raise InvalidDataError(UNPAIRED_SURROGATE) from error
            raise InvalidDataError(detail.split(": ", 1)[-1][:MAX_DETAIL]) from error
        raise error
    if isinstance(error, StatementError):
        if isinstance(error.orig, UnicodeError):
            raise InvalidDataError(UNPAIRED_SURROGATE) from error
        if isinstance(error.orig, ValueError):
            raise InvalidDataError(f"value cannot be stored as JSON: {error.orig}") from error
    raise error


def _now() -> datetime:
    return datetime.now(UTC)


def _session_values(tenant: str, draft: SessionDraft) -> dict[str, Any]:
    created_at = draft.created_at or _now()
    return {
        "session_id": draft.session_id,
        "tenant": tenant,
        "session_type": draft.session_type,
        "created_at": created_at,
        "updated_at": draft.updated_at or created_at,
    }


def _agent_values(tenant: str, session_id: str, draft: AgentDraft) -> dict[str, Any]:
    created_at = draft.created_at or _now()
    return {
        "session_id": session_id,
        "tenant": tenant,
        "agent_id": draft.agent_id,
        "state": draft.state,
        "conversation_manager_state": draft.conversation_manager_state,
        "internal_state": {} if draft.internal_state is None else draft.internal_state,
        "created_at": created_at,
        "updated_at": draft.updated_at or created_at,
    }


def _message_values(tenant: str, session_id: str, agent_id: str, draft: MessageDraft) -> dict[str, Any]:
    created_at = draft.created_at or _now()
    return {
        "session_id": session_id,
        "tenant": tenant,
        "agent_id": agent_id,
        "message_id": draft.message_id,
        "role": draft.role,
        "message": draft.message,
        "redact_message": draft.redact_message,
        "created_at": created_at,
        "updated_at": draft.updated_at or created_at,
    }


def _multi_agent_values(tenant: str, session_id: str, draft: MultiAgentDraft) -> dict[str, Any]:
    created_at = draft.created_at or _now()
    return {
        "session_id": session_id,
        "tenant": tenant,
        "multi_agent_id": draft.multi_agent_id,
        "state": draft.state,
        "created_at": created_at,
        "updated_at": draft.updated_at or created_at,
    }


def same_message_content(stored: MessageRecord, draft: MessageDraft) -> bool:
    """Whether a create repeats what is stored (a retry), ignoring timestamps."""
    return canonical_json(stored.message) == canonical_json(draft.message) and canonical_json(
        stored.redact_message
    ) == canonical_json(draft.redact_message)


def _where(table: Table, keys: dict[str, Any]) -> list[ColumnElement[bool]]:
    return [table.c[name] == value for name, value in keys.items()]


async def _insert_new(
    conn: AsyncConnection, table: Table, values: dict[str, Any], *, exists: str, missing_parent: str
) -> Row[Any]:
    """Insert one row: ``AlreadyExistsError`` if its key is taken, ``NotFoundError`` if no parent."""
    stmt = insert(table).values(values).on_conflict_do_nothing().returning(*table.c)
    try:
        row = (await conn.execute(stmt)).first()
    except (DBAPIError, StatementError) as error:
        _raise_for(error, missing_parent)
    if row is None:
        raise AlreadyExistsError(exists)
    return row


async def _update_existing(
    conn: AsyncConnection, table: Table, keys: dict[str, Any], values: dict[str, Any], *, missing: str
) -> Row[Any]:
    """Update one row by key, leaving created_at alone; ``NotFoundError`` if there is none."""
    stmt = update(table).where(*_where(table, keys)).values(values).returning(*table.c)
    try:
        row = (await conn.execute(stmt)).first()
    except (DBAPIError, StatementError) as error:
        _raise_for(error, missing)
    if row is None:
        raise NotFoundError(missing)
    return row


async def _delete_audited(
    conn: AsyncConnection,
    table: Table,
    keys: dict[str, Any],
    *,
    actor: Actor,
    action: str,
    target: dict[str, Any],
    missing: str,
) -> None:
    """Delete one row by key and record who did it, in one statement: the audit entry exists
    exactly when the row is gone. ``NotFoundError`` if there was no such row."""
    deleted = delete(table).where(*_where(table, keys)).returning(table.c.tenant, table.c.session_id)
    gone = deleted.cte("gone")
    record = insert(audit_events).from_select(
        ["tenant", "actor", "actor_role", "action", "session_id", "target", "request_id"],
        select(
            gone.c.tenant,
            bindparam("actor", actor.name, type_=Text),
            bindparam("actor_role", actor.role, type_=Text),
            bindparam("action", action, type_=Text),
            gone.c.session_id,
            bindparam("target", target, type_=JSON),
            bindparam("request_id", actor.request_id, type_=Text),
        ),
    )
    if (await conn.execute(record.returning(audit_events.c.event_id))).first() is None:
        raise NotFoundError(missing)


def _agent_name(session_id: str, agent_id: str) -> str:
    return f"agent {agent_id!r} in session {session_id!r}"


def _multi_agent_name(session_id: str, multi_agent_id: str) -> str:
    return f"multi-agent {multi_agent_id!r} in session {session_id!r}"


def _message_name(session_id: str, agent_id: str, message_id: int) -> str:
    return f"message {message_id} of agent {agent_id!r} in session {session_id!r}"


def _session_key(scope: Scope, session_id: str) -> dict[str, Any]:
    return {"session_id": session_id, "tenant": scope.tenant}


async def create_session(conn: AsyncConnection, scope: Scope, draft: SessionDraft) -> SessionRecord:
    row = await _insert_new(
        conn,
        sessions,
        _session_values(scope.tenant, draft),
        exists=f"session {draft.session_id!r} already exists",
        missing_parent="",
    )
    return session_record(row)


async def delete_session(conn: AsyncConnection, scope: Scope, session_id: str, actor: Actor) -> None:
    await _delete_audited(
        conn,
        sessions,
        _session_key(scope, session_id),
        actor=actor,
        action="deleteSession",
        target={"sessionId": session_id},
        missing=f"session {session_id!r} not found",
    )


async def create_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, draft: AgentDraft
) -> AgentRecord:
    row = await _insert_new(
        conn,
        agents,
        _agent_values(scope.tenant, session_id, draft),
        exists=f"{_agent_name(session_id, draft.agent_id)} already exists",
        missing_parent=f"session {session_id!r} not found",
    )
    return agent_record(row)


async def update_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, draft: AgentDraft
) -> AgentRecord:
    row = await _update_existing(
        conn,
        agents,
        {**_session_key(scope, session_id), "agent_id": draft.agent_id},
        {
            "state": draft.state,
            "conversation_manager_state": draft.conversation_manager_state,
            "updated_at": draft.updated_at or _now(),
            **({} if draft.internal_state is None else {"internal_state": draft.internal_state}),
        },
        missing=f"{_agent_name(session_id, draft.agent_id)} not found",
    )
    return agent_record(row)


async def delete_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, actor: Actor
) -> None:
    await _delete_audited(
        conn,
        agents,
        {**_session_key(scope, session_id), "agent_id": agent_id},
        actor=actor,
        action="deleteAgent",
        target={"sessionId": session_id, "agentId": agent_id},
        missing=f"{_agent_name(session_id, agent_id)} not found",
    )


async def _stored_messages(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, message_ids: Sequence[int]
) -> dict[int, MessageRecord]:
    stmt = select(messages).where(
        messages.c.session_id == session_id,
        messages.c.tenant == scope.tenant,
        messages.c.agent_id == agent_id,
        messages.c.message_id.in_(message_ids),
    )
    return {row.message_id: message_record(row) for row in await conn.execute(stmt)}


async def insert_messages(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, drafts: Sequence[MessageDraft]
) -> list[MessageRecord]:
    """Insert messages of one agent; a message already stored with equal content counts as written.

    Raises ``ConflictError`` when a message id is stored with other content. Run it in a
    transaction when there are several drafts, so that a conflict leaves nothing behind.
    """
    # In message_id order, so two batches of one agent lock their rows in the same order and
    # cannot deadlock each other.
    values = sorted(
        (_message_values(scope.tenant, session_id, agent_id, draft) for draft in drafts),
        key=lambda row: row["message_id"],
    )
    try:
        written = {row.message_id: message_record(row) for row in await conn.execute(INSERT_MESSAGE, values)}
    except (DBAPIError, StatementError) as error:
        _raise_for(error, f"{_agent_name(session_id, agent_id)} not found")
    missing = [draft for draft in drafts if draft.message_id not in written]
    if missing:
        stored = await _stored_messages(conn, scope, session_id, agent_id, [d.message_id for d in missing])
        for draft in missing:
            existing = stored.get(draft.message_id)
            if existing is None:
                # Deleted between our insert and our look: the insert lost to a delete, retryable.
                raise ConflictError(f"message {draft.message_id} changed concurrently; retry")
            if not same_message_content(existing, draft):
                name = _message_name(session_id, agent_id, draft.message_id)
                raise ConflictError(f"{name} is stored with different content")
            written[draft.message_id] = existing
    return [written[draft.message_id] for draft in drafts]


async def agent_exists(conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str) -> bool:
    stmt = select(agents.c.agent_id).where(
        agents.c.session_id == session_id, agents.c.tenant == scope.tenant, agents.c.agent_id == agent_id
    )
    return (await conn.execute(stmt)).first() is not None


async def update_message(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, draft: MessageDraft
) -> MessageRecord:
    row = await _update_existing(
        conn,
        messages,
        {**_session_key(scope, session_id), "agent_id": agent_id, "message_id": draft.message_id},
        {
            "role": draft.role,
            "message": draft.message,
            "redact_message": draft.redact_message,
            "updated_at": draft.updated_at or _now(),
        },
        missing=f"{_message_name(session_id, agent_id, draft.message_id)} not found",
    )
    return message_record(row)


async def delete_message(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, message_id: int, actor: Actor
) -> None:
    await _delete_audited(
        conn,
        messages,
        {**_session_key(scope, session_id), "agent_id": agent_id, "message_id": message_id},
        actor=actor,
        action="deleteMessage",
        target={"sessionId": session_id, "agentId": agent_id, "messageId": message_id},
        missing=f"{_message_name(session_id, agent_id, message_id)} not found",
    )


async def create_multi_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, draft: MultiAgentDraft
) -> MultiAgentRecord:
    row = await _insert_new(
        conn,
        multi_agents,
        _multi_agent_values(scope.tenant, session_id, draft),
        exists=f"{_multi_agent_name(session_id, draft.multi_agent_id)} already exists",
        missing_parent=f"session {session_id!r} not found",
    )
    return multi_agent_record(row)


async def update_multi_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, draft: MultiAgentDraft
) -> MultiAgentRecord:
    row = await _update_existing(
        conn,
        multi_agents,
        {**_session_key(scope, session_id), "multi_agent_id": draft.multi_agent_id},
        {"state": draft.state, "updated_at": draft.updated_at or _now()},
        missing=f"{_multi_agent_name(session_id, draft.multi_agent_id)} not found",
    )
    return multi_agent_record(row)


async def delete_multi_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, multi_agent_id: str, actor: Actor
) -> None:
    await _delete_audited(
        conn,
        multi_agents,
        {**_session_key(scope, session_id), "multi_agent_id": multi_agent_id},
        actor=actor,
        action="deleteMultiAgent",
        target={"sessionId": session_id, "multiAgentId": multi_agent_id},
        missing=f"{_multi_agent_name(session_id, multi_agent_id)} not found",
    )
