"""An agent's or orchestrator's latest snapshot read into the session tables, and taken out again.

An agent's ``snapshot_latest.json`` is read into the session tables in the same transaction as the
object is stored: the session and agent rows (``snapshot_backed``), the agent's states, and its
messages, written through ``db.conversations.message_writes`` like any other, so every listing, filter, search
and stat covers snapshot-backed agents with no second read path. Messages are matched by id (their
position plus the messages the conversation manager dropped); from the first one that differs from
what is stored, the stored ones go and the snapshot's are written. An orchestrator's latest
snapshot becomes its multi-agent state. Deleting the snapshot takes its projection with it.
"""

import hashlib
from datetime import datetime

from sqlalchemy import case, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.conversations import message_writes
from db.errors import ConflictError
from db.json_values import dump_json
from db.models import agents, multi_agents, sessions
from db.notifications import AGENT_CHANGED, SESSION_CREATED, Event, notifying
from db.records import MessageDraft
from db.storage.keys import AGENT_LATEST, MULTI_AGENT_LATEST, KeyMeaning
from db.storage.snapshots import INTERNAL_STATE_FIELDS, Snapshot, first_message_id, role_of
from db.tenancy import Scope

COUNTERS = ("message_count", *message_writes.TOTALS)
INSERT_BATCH = 1000
"""Messages per statement when a snapshot's messages are written."""


async def ensure_session(conn: AsyncConnection, scope: Scope, session_id: str, at: datetime) -> None:
    """The session row, made if missing, locked (the upsert's update) until the transaction ends."""
    stmt = insert(sessions).values(
        session_id=session_id,
        tenant=scope.tenant,
        session_type="AGENT",
        created_at=at,
        updated_at=func.now(),
        last_activity_at=func.now(),
        snapshot_backed=True,
    )
    # xmax is 0 on a row the upsert inserted: only a new session is announced.
    created = case((literal_column("xmax") == 0, notifying(Event(SESSION_CREATED, scope.tenant, session_id))))
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["session_id", "tenant"],
            set_={"updated_at": func.now(), "last_activity_at": func.now()},
        ).returning(created)
    )


async def lock_session(conn: AsyncConnection, scope: Scope, session_id: str) -> None:
    """The session row's lock, if there is a row, until the transaction ends."""
    await conn.execute(
        select(sessions.c.session_id)
        .where(sessions.c.session_id == session_id, sessions.c.tenant == scope.tenant)
        .with_for_update()
    )


async def project_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, snapshot: Snapshot
) -> None:
    """The agent as its latest snapshot has it: states, and messages matched by id. The caller has
    made and locked the session row (``ensure_session``), which moved its activity times."""
    data = snapshot.data
    states = {
        "state": data.get("state", {}),
        "conversation_manager_state": data.get("conversation_manager_state", {}),
        "internal_state": {name: data[name] for name in INTERNAL_STATE_FIELDS if name in data},
    }
    stmt = insert(agents).values(
        session_id=session_id,
        tenant=scope.tenant,
        agent_id=agent_id,
        created_at=snapshot.created_at,
        snapshot_backed=True,
        **states,
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=["session_id", "tenant", "agent_id"],
        set_={**states, "updated_at": func.now(), "last_activity_at": func.now()},
        where=agents.c.snapshot_backed,
    )
    announce = notifying(Event(AGENT_CHANGED, scope.tenant, session_id, agent_id))
    if (await conn.execute(upsert.returning(agents.c.agent_id, announce))).first() is None:
        raise ConflictError(
            f"agent {agent_id!r} in session {session_id!r} is stored message by message (a "
            "RepositorySessionManager's); a snapshot cannot replace it"
        )
    await _replace_messages(conn, scope, session_id, agent_id, snapshot)


async def _replace_messages(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, snapshot: Snapshot
) -> None:
    """The snapshot's messages from their first id on: those equal to what is stored stay (with their
    times), from the first that differs the stored ones go and the snapshot's are written. Messages
    the conversation manager dropped before that id stay, as a repository keeps them."""
    first = first_message_id(snapshot)
    bodies = [dump_json(message) for message in snapshot.messages]
    stored = await conn.execute(
        text(
            "SELECT message_id, md5(message::text) AS digest FROM session_messages "
            "WHERE session_id = :s AND tenant = :t AND agent_id = :a AND message_id >= :first "
            "ORDER BY message_id"
        ),
        {"s": session_id, "t": scope.tenant, "a": agent_id, "first": first},
    )
    same = 0
    for (message_id, digest), body in zip(stored, bodies, strict=False):
        if message_id != first + same or digest != hashlib.md5(body.encode()).hexdigest():  # a match
            break
        same += 1
    await message_writes.delete_messages_from(conn, scope, session_id, agent_id, first + same)
    drafts = [
        MessageDraft(
            message_id=first + position,
            role=role_of(message),
            message=message,
            created_at=snapshot.created_at,
            updated_at=snapshot.created_at,
        )
        for position, message in enumerate(snapshot.messages)
        if position >= same
    ]
    # In batches: each statement of a long conversation's first snapshot stays within the timeout.
    for start in range(0, len(drafts), INSERT_BATCH):
        await message_writes.insert_messages(
            conn, scope, session_id, agent_id, drafts[start : start + INSERT_BATCH]
        )


async def project_multi_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, orchestrator_id: str, snapshot: Snapshot
) -> None:
    """The orchestrator's state as its latest snapshot has it; the session row as for ``project_agent``."""
    state = snapshot.data.get("state", {})
    stmt = insert(multi_agents).values(
        session_id=session_id,
        tenant=scope.tenant,
        multi_agent_id=orchestrator_id,
        state=state,
        created_at=snapshot.created_at,
        snapshot_backed=True,
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=["session_id", "tenant", "multi_agent_id"],
        set_={"state": state, "updated_at": func.now()},
        where=multi_agents.c.snapshot_backed,
    )
    if (await conn.execute(upsert.returning(multi_agents.c.multi_agent_id))).first() is None:
        raise ConflictError(
            f"multi-agent {orchestrator_id!r} in session {session_id!r} is stored by a "
            "RepositorySessionManager; a snapshot cannot replace it"
        )


async def remove_projection(conn: AsyncConnection, scope: Scope, meaning: KeyMeaning) -> None:
    """What was read from the object ``meaning`` describes, once it is deleted: an agent's or
    orchestrator's latest snapshot takes its projection with it, and a snapshot-backed session
    left with no object goes too."""
    key_of_session = {"s": meaning.session_id, "t": scope.tenant}
    if meaning.kind == AGENT_LATEST:
        await conn.execute(
            text(
                "WITH gone AS (DELETE FROM session_agents WHERE session_id = :s AND tenant = :t "
                f"AND agent_id = :a AND snapshot_backed RETURNING {', '.join(COUNTERS)}) "
                "UPDATE sessions AS t SET "
                + ", ".join(f"{n} = t.{n} - gone.{n}" for n in COUNTERS)
                + ", updated_at = now() FROM gone WHERE t.session_id = :s AND t.tenant = :t"
            ),
            {**key_of_session, "a": meaning.scope_id},
        )
    elif meaning.kind == MULTI_AGENT_LATEST:
        await conn.execute(
            multi_agents.delete().where(
                multi_agents.c.session_id == meaning.session_id,
                multi_agents.c.tenant == scope.tenant,
                multi_agents.c.multi_agent_id == meaning.scope_id,
                multi_agents.c.snapshot_backed,
            )
        )
    if meaning.session_id:
        # A session only snapshots made goes with the last of its objects, as its directory would.
        await conn.execute(
            text(
                "DELETE FROM sessions AS s WHERE s.session_id = :s AND s.tenant = :t AND s.snapshot_backed "
                "AND NOT EXISTS (SELECT 1 FROM storage_objects o WHERE o.session_id = :s AND o.tenant = :t) "
                "AND NOT EXISTS (SELECT 1 FROM session_agents a WHERE a.session_id = :s AND a.tenant = :t "
                "AND NOT a.snapshot_backed) "
                "AND NOT EXISTS (SELECT 1 FROM session_multi_agents m WHERE m.session_id = :s "
                "AND m.tenant = :t AND NOT m.snapshot_backed)"
            ),
            key_of_session,
        )
