"""Deleting many sessions at once, in small batches: erasure (``deleteSessions``) and retention.

A batch is one transaction of one statement. It locks up to ``most`` sessions that match *now*
(``FOR UPDATE SKIP LOCKED``: a session an agent is writing is skipped, and one an agent wrote
since the statement's snapshot is checked again once locked, so a rule on the last activity
re-checks it), deletes them with everything in them (agents, messages, tool calls,
multi-agents, by the foreign keys) and their storage objects, as ``deleteSession`` does, and
records one audit entry per session. The message deletes queue their buckets for the rollups'
fold (the statement triggers of migration 0006), so statistics stay exact.

An agent's write to a session a batch deleted finds no session: NOT_FOUND, never a half-written
agent. A batch that would wait for an agent's lock gives up after ``BATCH_LOCK_TIMEOUT`` (the
agent goes on) and is tried again.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Text, bindparam, delete, func, insert, literal_column, select, text
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from db.analytics.filters import ConversationFilter, sessions_matching
from db.control.audit import record_event
from db.engine import Database
from db.errors import ConflictError
from db.models import audit_events, sessions, storage_objects
from db.records import Actor
from db.tenancy import Scope

BATCH_LOCK_TIMEOUT = "200ms"
"""Under PostgreSQL's deadlock_timeout (1 s): a batch meeting an agent's lock gives up first."""
LOCK_NOT_AVAILABLE = "55P03"
BUSY_RETRY_SECONDS = 0.05
BUSY_PATIENCE_SECONDS = 10.0
"""How long an erasure keeps trying sessions that agents are writing before it gives up."""


@dataclass(frozen=True, slots=True)
class Deleted:
    """What went: sessions, and the messages they held."""

    sessions: int = 0
    messages: int = 0

    def __add__(self, other: "Deleted") -> "Deleted":
        return Deleted(self.sessions + other.sessions, self.messages + other.messages)


def add_up(into: dict[str, Deleted], more: dict[str, Deleted]) -> None:
    for tenant, deleted in more.items():
        into[tenant] = into.get(tenant, Deleted()) + deleted


async def count_matching(
    conn: AsyncConnection, conditions: Sequence[ColumnElement[bool]]
) -> dict[str, Deleted]:
    """What a batch delete of ``conditions`` would take now, per tenant: a dry run."""
    stmt = (
        select(sessions.c.tenant, func.count(), func.coalesce(func.sum(sessions.c.message_count), 0))
        .where(*conditions)
        .group_by(sessions.c.tenant)
    )
    return {row[0]: Deleted(int(row[1]), int(row[2])) for row in await conn.execute(stmt)}


async def delete_batch(
    conn: AsyncConnection,
    conditions: Sequence[ColumnElement[bool]],
    *,
    most: int,
    actor: Actor,
    action: str,
    target: dict[str, Any],
    oldest_first: bool = False,
) -> dict[str, Deleted]:
    """Deletes up to ``most`` sessions matching ``conditions`` with their storage objects, each
    audited as ``action`` with ``target``; what went, per tenant. Run it in a transaction of its own.

    ``oldest_first``: by last activity (retention, whose conditions are a range of it). Otherwise
    in no order, so an erasure by label reads the label's index rather than every session in
    order of activity."""
    await conn.execute(text(f"SET LOCAL lock_timeout = '{BATCH_LOCK_TIMEOUT}'"))
    candidates: Any = select(sessions.c.session_id, sessions.c.tenant).where(*conditions)
    if oldest_first:
        candidates = candidates.order_by(sessions.c.last_activity_at)
    candidates = candidates.limit(most).with_for_update(of=sessions, skip_locked=True).cte("candidates")
    gone = (
        delete(sessions)
        .where(sessions.c.session_id == candidates.c.session_id, sessions.c.tenant == candidates.c.tenant)
        .returning(sessions.c.tenant, sessions.c.session_id, sessions.c.message_count)
        .cte("gone")
    )
    objects = (
        delete(storage_objects)
        .where(storage_objects.c.session_id == gone.c.session_id, storage_objects.c.tenant == gone.c.tenant)
        .returning(literal_column("1"))
        .cte("objects")
    )
    recorded = (
        insert(audit_events)
        .from_select(
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
        .returning(literal_column("1"))
        .cte("recorded")
    )
    stmt = (
        select(gone.c.tenant, func.count(), func.coalesce(func.sum(gone.c.message_count), 0))
        .group_by(gone.c.tenant)
        .add_cte(objects)
        .add_cte(recorded)
    )
    return {row[0]: Deleted(int(row[1]), int(row[2])) for row in await conn.execute(stmt)}


def is_busy(error: BaseException) -> bool:
    """A batch gave up waiting for an agent's lock (``BATCH_LOCK_TIMEOUT``)."""
    return isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


async def delete_all(
    database: Database,
    conditions: Sequence[ColumnElement[bool]],
    *,
    most: int,
    actor: Actor,
    action: str,
    target: dict[str, Any],
) -> dict[str, Deleted]:
    """Deletes every session matching ``conditions``, ``most`` per transaction, until none is left;
    sessions agents are writing are waited for (``ConflictError`` after ``BUSY_PATIENCE_SECONDS``)."""
    total: dict[str, Deleted] = {}
    waited = 0.0
    while True:
        try:
            deleted = await database.run_in_transaction(
                lambda conn: delete_batch(
                    conn, conditions, most=most, actor=actor, action=action, target=target
                )
            )
        except DBAPIError as error:
            if not is_busy(error):
                raise
            deleted = {}
        add_up(total, deleted)
        if sum(each.sessions for each in deleted.values()) >= most:
            waited = 0.0
            continue
        left = await database.run(lambda conn: count_matching(conn, conditions))
        if not left:
            return total
        if waited >= BUSY_PATIENCE_SECONDS:
            sessions_left = sum(each.sessions for each in left.values())
            raise ConflictError(
                f"{sessions_left} matching sessions stayed busy with writes for "
                f"{BUSY_PATIENCE_SECONDS:.0f} s and were not deleted; the others were: run it again"
            )
        await asyncio.sleep(BUSY_RETRY_SECONDS)
        waited += BUSY_RETRY_SECONDS


def _selected(scope: Scope, f: ConversationFilter) -> list[ColumnElement[bool]]:
    """The sessions ``sessions(filter: f)`` lists to a caller of ``scope``."""
    return [scope.visible(sessions), *sessions_matching(f)]


async def count_sessions(database: Database, scope: Scope, f: ConversationFilter) -> Deleted:
    """What ``delete_sessions`` would delete now: a dry run."""
    found = await database.run(lambda conn: count_matching(conn, _selected(scope, f)), idempotent=True)
    return sum(found.values(), Deleted())


async def delete_sessions(
    database: Database, scope: Scope, f: ConversationFilter, *, most: int, actor: Actor, filter_given: Any
) -> Deleted:
    """Deletes the sessions ``sessions(filter: f)`` lists, ``most`` per transaction: each session
    audited, then the whole request (``filter_given`` and what went) in one more entry."""
    target = {"filter": filter_given}
    found = await delete_all(
        database, _selected(scope, f), most=most, actor=actor, action="deleteSessions", target=target
    )
    deleted = sum(found.values(), Deleted())
    await database.run(
        lambda conn: record_event(
            conn,
            tenant=None if scope.all_tenants else scope.tenant,
            actor=actor,
            action="deleteSessions",
            target={**target, "sessions": deleted.sessions, "messages": deleted.messages},
        )
    )
    return deleted
