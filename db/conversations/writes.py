"""Writes of sessions, agents and multi-agents (messages: ``db.conversations.message_writes``).

Each runs as few statements as it can and raises ``db.errors`` for the caller to report. Creates
insert with ``ON CONFLICT DO NOTHING`` and let foreign keys check the parent, so the common case is
one statement with no read before it; only a conflict costs a second look. A write inside a session
moves the session's ``updated_at`` and ``last_activity_at`` in the same statement.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    Text,
    bindparam,
    delete,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSON, insert
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection

from db.conversations.message_writes import TOTALS
from db.conversations.reads import agent_record, multi_agent_record, session_record
from db.errors import AlreadyExistsError, NotFoundError
from db.models import agents, audit_events, multi_agents, sessions, storage_objects
from db.notifications import AGENT_CHANGED, SESSION_CREATED, Event, notifying
from db.records import (
    Actor,
    AgentDraft,
    AgentRecord,
    MultiAgentDraft,
    MultiAgentRecord,
    SessionDraft,
    SessionRecord,
)
from db.tenancy import Scope
from db.write_errors import raise_for


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
        "last_activity_at": draft.updated_at or created_at,
        "labels": draft.labels,
        "title": draft.title,
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
        "last_activity_at": draft.updated_at or created_at,
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


def _where(table: Table, keys: dict[str, Any]) -> list[ColumnElement[bool]]:
    return [table.c[name] == value for name, value in keys.items()]


def _moving_the_session(dml: Any, keys: dict[str, Any], *, take_away_totals: bool = False) -> Select[Any]:
    """``dml`` (returning its rows) and, in the same statement, the session it changed marked active.

    ``take_away_totals``: the rows were an agent's, deleted; its totals leave the session's.
    """
    changed = dml.cte("changed")
    values: dict[str, Any] = {"last_activity_at": func.now(), "updated_at": func.now()}
    condition = exists(select(changed.c.session_id))
    if take_away_totals:
        values |= {name: sessions.c[name] - changed.c[name] for name in ("message_count", *TOTALS)}
        condition = changed.c.session_id == sessions.c.session_id
    touched = (
        update(sessions)
        .where(sessions.c.session_id == keys["session_id"], sessions.c.tenant == keys["tenant"], condition)
        .values(values)
        .returning(sessions.c.session_id)
        .cte("touched")
    )
    return select(changed).add_cte(touched)


async def _insert_new(
    conn: AsyncConnection,
    table: Table,
    values: dict[str, Any],
    *,
    exists_message: str,
    missing_parent: str,
    in_session: bool = False,
    announce: Event | None = None,
) -> Row[Any]:
    """Insert one row: ``AlreadyExistsError`` if its key is taken, ``NotFoundError`` if no parent.
    ``announce``: the notice the row's insert sends (``db.notifications``)."""
    extra = [] if announce is None else [notifying(announce)]
    stmt: Any = insert(table).values(values).on_conflict_do_nothing().returning(*table.c, *extra)
    if in_session:
        stmt = _moving_the_session(stmt, values)
    try:
        row: Row[Any] | None = (await conn.execute(stmt)).first()
    except (DBAPIError, StatementError) as error:
        raise_for(error, missing_parent)
    if row is None:
        raise AlreadyExistsError(exists_message)
    return row


async def _update_existing(
    conn: AsyncConnection,
    table: Table,
    keys: dict[str, Any],
    values: dict[str, Any],
    *,
    missing: str,
    announce: Event | None = None,
) -> Row[Any]:
    """Update one row of a session by key, leaving created_at alone; ``NotFoundError`` if there is none.
    ``announce``: the notice the row's update sends (``db.notifications``)."""
    extra = [] if announce is None else [notifying(announce)]
    stmt = _moving_the_session(
        update(table).where(*_where(table, keys)).values(values).returning(*table.c, *extra), keys
    )
    try:
        row: Row[Any] | None = (await conn.execute(stmt)).first()
    except (DBAPIError, StatementError) as error:
        raise_for(error, missing)
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
    in_session: bool = True,
) -> None:
    """Delete one row by key and record who did it, in one statement: the audit entry exists
    exactly when the row is gone. ``NotFoundError`` if there was no such row."""
    deleted: Any = delete(table).where(*_where(table, keys))
    if in_session:
        gone_rows = deleted.returning(*table.c)
        gone = _moving_the_session(gone_rows, keys, take_away_totals=table is agents).cte("gone")
    else:
        gone = deleted.returning(table.c.tenant, table.c.session_id).cte("gone")
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


def _session_key(scope: Scope, session_id: str) -> dict[str, Any]:
    return {"session_id": session_id, "tenant": scope.tenant}


async def create_session(conn: AsyncConnection, scope: Scope, draft: SessionDraft) -> SessionRecord:
    row = await _insert_new(
        conn,
        sessions,
        _session_values(scope.tenant, draft),
        exists_message=f"session {draft.session_id!r} already exists",
        missing_parent="",
        announce=Event(SESSION_CREATED, scope.tenant, draft.session_id),
    )
    return session_record(row)


async def update_session(
    conn: AsyncConnection, scope: Scope, session_id: str, changes: dict[str, Any]
) -> SessionRecord:
    """Sets the session's labels and/or title (``changes``), moving its updatedAt.

    Not its last activity: that is the conversation's, so labelling old sessions in bulk does not
    bring them to the top of "recent sessions".
    """
    values = {**changes, "updated_at": func.now()}
    stmt = update(sessions).where(*_where(sessions, _session_key(scope, session_id))).values(values)
    row = (await conn.execute(stmt.returning(*sessions.c))).first()
    if row is None:
        raise NotFoundError(f"session {session_id!r} not found")
    return session_record(row)


async def delete_session(conn: AsyncConnection, scope: Scope, session_id: str, actor: Actor) -> None:
    """Deletes the session with everything in it, its storage objects (snapshots) included, so a
    SnapshotSessionManager does not bring it back. Run in a transaction."""
    await conn.execute(
        delete(storage_objects).where(
            storage_objects.c.session_id == session_id, storage_objects.c.tenant == scope.tenant
        )
    )
    await _delete_audited(
        conn,
        sessions,
        _session_key(scope, session_id),
        actor=actor,
        action="deleteSession",
        target={"sessionId": session_id},
        missing=f"session {session_id!r} not found",
        in_session=False,
    )


async def create_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, draft: AgentDraft
) -> AgentRecord:
    row = await _insert_new(
        conn,
        agents,
        _agent_values(scope.tenant, session_id, draft),
        exists_message=f"{_agent_name(session_id, draft.agent_id)} already exists",
        missing_parent=f"session {session_id!r} not found",
        in_session=True,
        announce=Event(AGENT_CHANGED, scope.tenant, session_id, draft.agent_id),
    )
    return agent_record(row)


async def update_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, draft: AgentDraft
) -> AgentRecord:
    updated_at = draft.updated_at or _now()
    row = await _update_existing(
        conn,
        agents,
        {**_session_key(scope, session_id), "agent_id": draft.agent_id},
        {
            "state": draft.state,
            "conversation_manager_state": draft.conversation_manager_state,
            "updated_at": updated_at,
            "last_activity_at": func.now(),
            **({} if draft.internal_state is None else {"internal_state": draft.internal_state}),
        },
        missing=f"{_agent_name(session_id, draft.agent_id)} not found",
        announce=Event(AGENT_CHANGED, scope.tenant, session_id, draft.agent_id),
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


async def create_multi_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, draft: MultiAgentDraft
) -> MultiAgentRecord:
    row = await _insert_new(
        conn,
        multi_agents,
        _multi_agent_values(scope.tenant, session_id, draft),
        exists_message=f"{_multi_agent_name(session_id, draft.multi_agent_id)} already exists",
        missing_parent=f"session {session_id!r} not found",
        in_session=True,
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
