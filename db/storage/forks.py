"""Forking a session: a copy under a new id that an agent resumes from, with either session manager.

The copy is of rows as stored (derived columns included, nothing re-derived) and of the session's
storage objects under their new keys, so a ``RepositorySessionManager`` finds the agents and
messages and a ``SnapshotSessionManager`` its snapshots. Forking an agent as of a checkpoint
writes that checkpoint as the new session's latest snapshot, which ``db.storage.objects`` reads
into the agent as any snapshot written through the API is, with the checkpoints up to it.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, func, insert, literal, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.conversations.reads import session_record
from db.errors import AlreadyExistsError, InvalidDataError, NotFoundError
from db.models import agents, messages, multi_agents, sessions, storage_objects, tool_calls
from db.records import SessionRecord
from db.storage import objects
from db.storage.checkpoints import read_checkpoint
from db.storage.keys import AGENT_CHECKPOINT
from db.storage.projection import COUNTERS
from db.tenancy import Scope


@dataclass(frozen=True, slots=True)
class ForkPoint:
    """Fork only this agent: as it is now, or as of one of its checkpoints."""

    agent_id: str
    snapshot_id: str | None = None


def _stored_columns(table: Table) -> list[str]:
    return [column.name for column in table.c if column.computed is None]


async def _copy_rows(
    conn: AsyncConnection,
    table: Table,
    scope: Scope,
    source: str,
    new: str,
    extra: list[ColumnElement[bool]],
    replaced: dict[str, Any] | None = None,
) -> None:
    names = _stored_columns(table)
    values = {"session_id": literal(new), **(replaced or {})}
    copied = select(*(values.get(name, table.c[name]) for name in names)).where(
        table.c.session_id == source, table.c.tenant == scope.tenant, *extra
    )
    await conn.execute(insert(table).from_select(names, copied))


NAMESPACE = "session/"
STASH_NAMESPACE = "context/"
"""Where Strands' context stash keeps an agent's data: context/<session>/scopes/agent/<id>/."""


def _session_prefix(session_id: str) -> str:
    return f"{NAMESPACE}{session_id}/"


async def fork_session(
    conn: AsyncConnection, scope: Scope, source: str, new: str, point: ForkPoint | None
) -> SessionRecord:
    """Copies session ``source`` to ``new``. Run in a transaction. ``NotFoundError`` when the source
    (or the agent, or the checkpoint) is missing, ``AlreadyExistsError`` when ``new`` is taken."""
    if new in (".", ".."):  # its keys (session/../) would be no keys at all
        raise InvalidDataError(f"newSessionId {new!r} cannot name a session's storage")
    # Shared lock on the source: every write in a session takes its row's lock, so the copy sees
    # the session as one writer left it, not half of a write that commits while it runs.
    original = (
        await conn.execute(
            select(sessions)
            .where(sessions.c.session_id == source, sessions.c.tenant == scope.tenant)
            .with_for_update(read=True)
        )
    ).first()
    if original is None:
        raise NotFoundError(f"session {source!r} not found")
    checkpoint = None
    if point is not None:
        found = (
            await conn.execute(
                select(agents.c.agent_id).where(
                    agents.c.session_id == source,
                    agents.c.tenant == scope.tenant,
                    agents.c.agent_id == point.agent_id,
                )
            )
        ).first()
        if found is None:
            raise NotFoundError(f"agent {point.agent_id!r} not found in session {source!r}")
        if point.snapshot_id is not None:
            checkpoint = await read_checkpoint(conn, scope, source, point.agent_id, point.snapshot_id)
            if checkpoint is None:
                name = f"snapshot {point.snapshot_id!r} of agent {point.agent_id!r}"
                raise NotFoundError(f"{name} in session {source!r} not found")
    # Strands may have written under the new id without making a session (a checkpoint saved with
    # save_snapshot(is_latest=False)); copying next to those objects would mix two histories.
    stored = await conn.execute(
        select(storage_objects.c.key)
        .where(storage_objects.c.session_id == new, storage_objects.c.tenant == scope.tenant)
        .limit(1)
    )
    if stored.first() is not None:
        raise AlreadyExistsError(f"session {new!r} already exists: its storage holds objects")
    made = await conn.execute(
        pg_insert(sessions)
        .from_select(
            ["session_id", "tenant", "session_type", "labels", "title", "snapshot_backed"],
            select(
                literal(new),
                sessions.c.tenant,
                sessions.c.session_type,
                sessions.c.labels,
                sessions.c.title,
                sessions.c.snapshot_backed,
            ).where(sessions.c.session_id == source, sessions.c.tenant == scope.tenant),
        )
        .on_conflict_do_nothing()
        .returning(sessions.c.session_id)
    )
    if made.first() is None:
        raise AlreadyExistsError(f"session {new!r} already exists")
    new_prefix = _session_prefix(new)
    renamed = {
        # The id's segment replaced, in session/ and context/ keys alike (ids hold no backslash,
        # the one character a replacement string reads specially).
        "key": func.regexp_replace(
            storage_objects.c.key, literal("^(session|context)/[^/]+/"), literal(f"\\1/{new}/")
        ),
    }
    if point is None:
        for table in (agents, messages, tool_calls, multi_agents):
            await _copy_rows(conn, table, scope, source, new, [])
        await _copy_rows(conn, storage_objects, scope, source, new, [], renamed)
    elif checkpoint is None:
        for table in (agents, messages, tool_calls):
            await _copy_rows(conn, table, scope, source, new, [table.c.agent_id == point.agent_id])
        of_agent = [
            func.starts_with(storage_objects.c.key, f"{namespace}{source}/scopes/agent/{point.agent_id}/")
            for namespace in (NAMESPACE, STASH_NAMESPACE)
        ]
        await _copy_rows(conn, storage_objects, scope, source, new, [or_(*of_agent)], renamed)
    else:
        record, snapshot = checkpoint
        earlier = [
            storage_objects.c.kind == AGENT_CHECKPOINT,
            storage_objects.c.scope_id == point.agent_id,
            storage_objects.c.snapshot_created_at <= snapshot.created_at,
            storage_objects.c.key <= record.key,
        ]
        await _copy_rows(conn, storage_objects, scope, source, new, earlier, renamed)
        data = await objects.read_object(conn, scope, record.key)
        assert data is not None  # read with the checkpoint, in this transaction
        latest = f"{new_prefix}scopes/agent/{point.agent_id}/snapshots/snapshot_latest.json"
        await objects.write_object(conn, scope, latest, data)
    row = (
        await conn.execute(
            text(
                "UPDATE sessions AS s SET "
                + ", ".join(f"{name} = coalesce(a.{name}, 0)" for name in COUNTERS)
                + ", updated_at = now(), last_activity_at = now() FROM (SELECT "
                + ", ".join(f"sum({name}) AS {name}" for name in COUNTERS)
                + " FROM session_agents WHERE session_id = :s AND tenant = :t) a "
                "WHERE s.session_id = :s AND s.tenant = :t RETURNING s.*"
            ),
            {"s": new, "t": scope.tenant},
        )
    ).one()
    return session_record(row)
