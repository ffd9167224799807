"""Writing messages, with what is derived from them: their facts, the running totals of their agent
and session, the session's activity time, and the tool calls they make or answer.

Storing messages is the busiest write there is, so ``insert_messages`` does all of that in one
statement: one round trip, one atomic change. The totals only count rows the statement really
inserted, so resending a stored message changes nothing. Updates and deletes, rarer, adjust the
totals by what they change, in one transaction.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import DateTime, Integer, Text

from db.control.audit import record_event
from db.conversations.facts import MessageFacts, facts_of
from db.conversations.reads import message_record
from db.errors import ConflictError, InvalidDataError, NotFoundError
from db.json_values import canonical_json, dump_json
from db.notifications import MESSAGE_UPDATED, NOTIFY_MESSAGES_ADDED_SQL, Event, notify
from db.records import Actor, MessageDraft, MessageRecord
from db.tenancy import Scope
from db.write_errors import raise_for

TOTALS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens", "tool_calls", "tool_errors")
_ROW = (
    "session_id, tenant, agent_id, message_id, role, message, redact_message, created_at, updated_at, "
    "input_tokens, output_tokens, total_tokens, cache_read_tokens, tool_calls, tool_errors"
)
FACT_COLUMNS = (
    "plain_text",
    "content_types",
    "tool_names",
    "tool_statuses",
    "tool_calls",
    "tool_errors",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "latency_ms",
    "time_to_first_byte_ms",
    "is_redacted",
)
"""The columns derived from a message, in the order _FACTS_FROM_JSON computes them."""
_FACT_COLUMNS = ", ".join(FACT_COLUMNS)
_FACTS_FROM_JSON = """
    f->>'text',
    ARRAY(SELECT jsonb_array_elements_text(f->'content_types')),
    ARRAY(SELECT jsonb_array_elements_text(f->'tool_names')),
    ARRAY(SELECT jsonb_array_elements_text(f->'tool_statuses')),
    (f->>'tool_calls')::int, (f->>'tool_errors')::int,
    (f->>'input_tokens')::int, (f->>'output_tokens')::int, (f->>'total_tokens')::int,
    (f->>'cache_read_tokens')::int, (f->>'cache_write_tokens')::int,
    (f->>'latency_ms')::int, (f->>'time_to_first_byte_ms')::int, (f->>'is_redacted')::boolean
"""
_ADD_TOTALS = ", ".join(f"{name} = t.{name} + d.{name}" for name in ("message_count", *TOTALS))
_SUMS = "count(*) AS message_count, " + ", ".join(f"coalesce(sum({name}), 0) AS {name}" for name in TOTALS)

# A call and its result usually come in different messages: each fills in its half of the row.
_TOOL_CALL_MERGE = """
    ON CONFLICT (session_id, tenant, agent_id, tool_use_id) DO UPDATE SET
        name = coalesce(nullif(excluded.name, ''), c.name),
        called_message_id = coalesce(excluded.called_message_id, c.called_message_id),
        called_at = coalesce(excluded.called_at, c.called_at),
        status = coalesce(excluded.status, c.status),
        result_message_id = coalesce(excluded.result_message_id, c.result_message_id)
"""

# One statement for a whole batch: the messages, their agent's and session's totals and activity,
# and their tool calls (a call and its result in one batch are one row: grouped, then upserted).
_INSERT_AFTER_GIVEN = f"""
    inserted AS (
        INSERT INTO session_messages AS m (
            session_id, tenant, agent_id, message_id, role, message, redact_message, created_at, updated_at,
            {_FACT_COLUMNS}
        )
        SELECT :session_id, :tenant, :agent_id, message_id, role, body::json, redaction::json, created_at,
            updated_at, {_FACTS_FROM_JSON}
        FROM given ORDER BY message_id
        ON CONFLICT (session_id, tenant, agent_id, message_id) DO NOTHING
        RETURNING {", ".join(f"m.{c.strip()}" for c in _ROW.split(","))}
    ),
    d AS (SELECT {_SUMS} FROM inserted),
    agent AS (
        UPDATE session_agents AS t SET {_ADD_TOTALS}, last_activity_at = now()
        FROM d WHERE d.message_count > 0
            AND t.session_id = :session_id AND t.tenant = :tenant AND t.agent_id = :agent_id
        RETURNING 1
    ),
    session AS (
        UPDATE sessions AS t SET {_ADD_TOTALS}, last_activity_at = now(), updated_at = now()
        FROM d WHERE d.message_count > 0 AND t.session_id = :session_id AND t.tenant = :tenant
        RETURNING 1
    ),
    tools AS (
        INSERT INTO session_tool_calls AS c (
            session_id, tenant, agent_id, tool_use_id, name, called_message_id, called_at, status,
            result_message_id
        )
        -- A call's time is its message's: the two come from the same message even when a batch
        -- repeats a tool use id in a message stored earlier in time (statistics bucket calls by it).
        SELECT :session_id, :tenant, :agent_id, u.id, max(u.name), max(u.called),
            (array_agg(u.called_at ORDER BY u.called DESC NULLS LAST))[1], max(u.status), max(u.answered)
        FROM (
            SELECT x->>'id' AS id, x->>'name' AS name, i.message_id AS called, i.created_at AS called_at,
                NULL::text AS status, NULL::int AS answered
            FROM inserted i JOIN given g USING (message_id), jsonb_array_elements(g.f->'calls') x
            UNION ALL
            SELECT x->>'id', '', NULL, NULL, x->>'status', i.message_id
            FROM inserted i JOIN given g USING (message_id), jsonb_array_elements(g.f->'results') x
        ) u
        GROUP BY u.id
        {_TOOL_CALL_MERGE}
        RETURNING 1
    ),
    -- Delivered at commit, to every server process's subscribers (db.notifications). A SELECT in
    -- a WITH runs only if read: the (always one-row) count makes it run, once.
    notified AS ({NOTIFY_MESSAGES_ADDED_SQL})
    SELECT inserted.* FROM inserted, (SELECT count(*) AS n FROM notified) AS sent
"""
_MANY = {
    "id": "ids",
    "role": "roles",
    "body": "bodies",
    "redaction": "redactions",
    "created": "created",
    "updated": "updated",
    "f": "facts",
}
"""The batch statement's array parameter for each column of the one-message statement."""
_INSERT_MANY = text(
    """
    WITH given AS (
        SELECT * FROM unnest(:ids, :roles, :bodies, :redactions, :created, :updated, :facts)
            AS g(message_id, role, body, redaction, created_at, updated_at, f)
    ),"""
    + _INSERT_AFTER_GIVEN
).bindparams(
    bindparam("ids", type_=ARRAY(Integer)),
    bindparam("roles", type_=ARRAY(Text)),
    bindparam("bodies", type_=ARRAY(Text)),
    bindparam("redactions", type_=ARRAY(Text)),
    bindparam("created", type_=ARRAY(DateTime(timezone=True))),
    bindparam("updated", type_=ARRAY(DateTime(timezone=True))),
    bindparam("facts", type_=ARRAY(JSONB)),
)
# The same for one message (createMessage, the busiest call) with plain parameters. With arrays,
# PostgreSQL knows their length only when it plans for their values, so it keeps planning the
# statement anew on every call (a third of its time); plain parameters let it reuse one plan.
_INSERT_ONE = text(
    """
    WITH given AS (
        SELECT :id AS message_id, :role AS role, :body AS body, :redaction AS redaction,
            :created AS created_at, :updated AS updated_at, :f AS f
    ),"""
    + _INSERT_AFTER_GIVEN
).bindparams(
    bindparam("id", type_=Integer),
    bindparam("role", type_=Text),
    bindparam("body", type_=Text),
    bindparam("redaction", type_=Text),
    bindparam("created", type_=DateTime(timezone=True)),
    bindparam("updated", type_=DateTime(timezone=True)),
    bindparam("f", type_=JSONB),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _clean(text: str) -> str:
    # PostgreSQL text and jsonb hold no NUL character; search and statistics do not need it.
    return text.replace("\x00", "")


def facts_json(facts: MessageFacts, message_id: int) -> dict[str, Any]:
    """The facts as the insert reads them. A tool call without an id gets one, so it still counts."""
    usage = facts.usage
    return {
        "text": _clean(facts.text),
        "content_types": [_clean(kind) for kind in facts.content_types],
        "tool_names": [_clean(name) for name in facts.tool_names],
        "tool_statuses": facts.tool_statuses,
        "tool_calls": len(facts.tool_calls),
        "tool_errors": facts.tool_errors,
        "input_tokens": usage.input_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
        "total_tokens": usage.total_tokens if usage else None,
        "cache_read_tokens": usage.cache_read_tokens if usage else None,
        "cache_write_tokens": usage.cache_write_tokens if usage else None,
        "latency_ms": facts.latency_ms,
        "time_to_first_byte_ms": facts.time_to_first_byte_ms,
        "is_redacted": facts.is_redacted,
        "calls": [
            {"id": _clean(call.tool_use_id) or f"message-{message_id}-{n}", "name": _clean(call.name)}
            for n, call in enumerate(facts.tool_calls)
        ],
        "results": [
            {"id": _clean(result.tool_use_id), "status": result.status}
            for result in facts.tool_results
            if result.tool_use_id
        ],
    }


def _agent_name(session_id: str, agent_id: str) -> str:
    return f"agent {agent_id!r} in session {session_id!r}"


def _message_name(session_id: str, agent_id: str, message_id: int) -> str:
    return f"message {message_id} of agent {agent_id!r} in session {session_id!r}"


def same_message_content(stored: MessageRecord, draft: MessageDraft) -> bool:
    """Whether a create repeats what is stored (a retry), ignoring timestamps."""
    redaction = None if stored.redact_message is None else stored.redact_message.value
    return canonical_json(stored.message.value) == canonical_json(draft.message) and canonical_json(
        redaction
    ) == canonical_json(draft.redact_message)


async def _stored_messages(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, message_ids: Sequence[int]
) -> dict[int, MessageRecord]:
    rows = await conn.execute(
        text(
            "SELECT * FROM session_messages WHERE session_id = :s AND tenant = :t AND agent_id = :a "
            "AND message_id = ANY(:ids)"
        ).bindparams(bindparam("ids", type_=ARRAY(Integer))),
        {"s": session_id, "t": scope.tenant, "a": agent_id, "ids": list(message_ids)},
    )
    return {row.message_id: message_record(row) for row in rows}


async def insert_messages(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, drafts: Sequence[MessageDraft]
) -> list[MessageRecord]:
    """Insert messages of one agent; a message already stored with equal content counts as written.

    Raises ``ConflictError`` when a message id is stored with other content. Run it in a
    transaction when there are several drafts, so that a conflict leaves nothing behind.
    """
    now = _now()
    ordered = sorted(drafts, key=lambda draft: draft.message_id)
    created = [draft.created_at or now for draft in ordered]
    try:
        bodies = [dump_json(draft.message) for draft in ordered]
        redactions = [None if d.redact_message is None else dump_json(d.redact_message) for d in ordered]
    except (ValueError, TypeError) as error:
        raise InvalidDataError(f"value cannot be stored as JSON: {error}") from None
    columns: dict[str, list[Any]] = {
        "id": [draft.message_id for draft in ordered],
        "role": [draft.role for draft in ordered],
        "body": bodies,
        "redaction": redactions,
        "created": created,
        "updated": [draft.updated_at or at for draft, at in zip(ordered, created, strict=True)],
        "f": [
            facts_json(facts_of(draft.message, draft.redact_message), draft.message_id) for draft in ordered
        ],
    }
    key: dict[str, Any] = {"session_id": session_id, "tenant": scope.tenant, "agent_id": agent_id}
    if len(ordered) == 1:
        statement, params = _INSERT_ONE, {**key, **{name: values[0] for name, values in columns.items()}}
    else:
        statement, params = _INSERT_MANY, {**key, **{_MANY[name]: values for name, values in columns.items()}}
    try:
        written = {row.message_id: message_record(row) for row in await conn.execute(statement, params)}
    except (DBAPIError, StatementError) as error:
        raise_for(error, f"{_agent_name(session_id, agent_id)} not found")
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
    found = await conn.execute(
        text("SELECT 1 FROM session_agents WHERE session_id = :s AND tenant = :t AND agent_id = :a"),
        {"s": session_id, "t": scope.tenant, "a": agent_id},
    )
    return found.first() is not None


async def _shift_totals(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, before: Any, after: Any
) -> None:
    """Moves the agent's and session's totals by what one message's change did to them."""
    delta = {name: (getattr(after, name, 0) or 0) - (getattr(before, name, 0) or 0) for name in TOTALS}
    delta["message_count"] = (after is not None) - (before is not None)
    sets = ", ".join(f"{name} = t.{name} + :{name}" for name in delta)
    key = {"s": session_id, "tn": scope.tenant, "a": agent_id, **delta}
    await conn.execute(
        text(
            f"UPDATE session_agents AS t SET {sets}, last_activity_at = now() "
            "WHERE t.session_id = :s AND t.tenant = :tn AND t.agent_id = :a"
        ),
        key,
    )
    await conn.execute(
        text(
            f"UPDATE sessions AS t SET {sets}, last_activity_at = now(), updated_at = now() "
            "WHERE t.session_id = :s AND t.tenant = :tn"
        ),
        key,
    )


_AGENT_TOOL_CALLS = "session_id = :s AND tenant = :tn AND agent_id = :a"
# What a message said about tool calls, undone: the calls it made lose their name and time, the
# calls it answered are open again; a row that is then neither called nor answered goes.
_FORGET_TOOL_CALLS = (
    text(
        f"""
        UPDATE session_tool_calls SET
            status = CASE WHEN result_message_id = :m THEN NULL ELSE status END,
            result_message_id = CASE WHEN result_message_id = :m THEN NULL ELSE result_message_id END,
            name = CASE WHEN called_message_id = :m THEN '' ELSE name END,
            called_at = CASE WHEN called_message_id = :m THEN NULL ELSE called_at END,
            called_message_id = CASE WHEN called_message_id = :m THEN NULL ELSE called_message_id END
        WHERE {_AGENT_TOOL_CALLS} AND (called_message_id = :m OR result_message_id = :m)
        """
    ),
    text(
        f"DELETE FROM session_tool_calls WHERE {_AGENT_TOOL_CALLS} "
        "AND called_message_id IS NULL AND result_message_id IS NULL"
    ),
)
# One message's calls and results (``facts_json``), merged as the insert merges them.
_RECORD_TOOL_CALLS = text(
    f"""
    INSERT INTO session_tool_calls AS c (
        session_id, tenant, agent_id, tool_use_id, name, called_message_id, called_at, status,
        result_message_id
    )
    SELECT :s, :tn, :a, u.id, max(u.name), max(u.called), max(u.called_at), max(u.status), max(u.answered)
    FROM (
        SELECT x->>'id' AS id, x->>'name' AS name, CAST(:m AS integer) AS called,
            CAST(:at AS timestamptz) AS called_at, NULL::text AS status, NULL::int AS answered
        FROM jsonb_array_elements(CAST(:facts AS jsonb)->'calls') x
        UNION ALL
        SELECT x->>'id', '', NULL, NULL, x->>'status', CAST(:m AS integer)
        FROM jsonb_array_elements(CAST(:facts AS jsonb)->'results') x
    ) u
    GROUP BY u.id
    {_TOOL_CALL_MERGE}
    """
)


async def _forget_tool_calls(conn: AsyncConnection, key: dict[str, Any]) -> None:
    for statement in _FORGET_TOOL_CALLS:
        await conn.execute(statement, key)


_FORGET_TOOL_CALLS_FROM = (
    text(
        f"""
        UPDATE session_tool_calls SET
            status = CASE WHEN result_message_id >= :m THEN NULL ELSE status END,
            result_message_id = CASE WHEN result_message_id >= :m THEN NULL ELSE result_message_id END,
            name = CASE WHEN called_message_id >= :m THEN '' ELSE name END,
            called_at = CASE WHEN called_message_id >= :m THEN NULL ELSE called_at END,
            called_message_id = CASE WHEN called_message_id >= :m THEN NULL ELSE called_message_id END
        WHERE {_AGENT_TOOL_CALLS} AND (called_message_id >= :m OR result_message_id >= :m)
        """
    ),
    _FORGET_TOOL_CALLS[1],
)
_DELETE_FROM = text(
    f"""
    WITH gone AS (
        DELETE FROM session_messages WHERE session_id = :s AND tenant = :tn AND agent_id = :a
            AND message_id >= :m
        RETURNING {", ".join(TOTALS)}
    ),
    d AS (SELECT {_SUMS} FROM gone),
    agent AS (
        UPDATE session_agents AS t SET {", ".join(f"{n} = t.{n} - d.{n}" for n in ("message_count", *TOTALS))}
        FROM d WHERE d.message_count > 0 AND t.session_id = :s AND t.tenant = :tn AND t.agent_id = :a
        RETURNING 1
    )
    UPDATE sessions AS t SET {", ".join(f"{n} = t.{n} - d.{n}" for n in ("message_count", *TOTALS))}
    FROM d WHERE d.message_count > 0 AND t.session_id = :s AND t.tenant = :tn
    """
)


async def delete_messages_from(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, message_id: int
) -> None:
    """Deletes the agent's messages from ``message_id`` on, with what they added to the totals and
    said about tool calls (a snapshot that rewrote history). Run in a transaction."""
    key = {"s": session_id, "tn": scope.tenant, "a": agent_id, "m": message_id}
    await conn.execute(_DELETE_FROM, key)
    for statement in _FORGET_TOOL_CALLS_FROM:
        await conn.execute(statement, key)


async def update_message(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, draft: MessageDraft
) -> MessageRecord:
    """Replaces a message (a redaction, usually) and what is derived from it. Run in a transaction."""
    key = {"s": session_id, "tn": scope.tenant, "a": agent_id, "m": draft.message_id}
    where = "session_id = :s AND tenant = :tn AND agent_id = :a AND message_id = :m"
    locked = text(f"SELECT {', '.join(TOTALS)} FROM session_messages WHERE {where} FOR UPDATE")
    before = (await conn.execute(locked, key)).first()
    if before is None:
        raise NotFoundError(f"{_message_name(session_id, agent_id, draft.message_id)} not found")
    facts = facts_json(facts_of(draft.message, draft.redact_message), draft.message_id)
    try:
        row = (
            await conn.execute(
                text(
                    f"UPDATE session_messages AS m SET role = :role, message = CAST(:body AS json), "
                    f"redact_message = CAST(:redaction AS json), updated_at = :updated, ({_FACT_COLUMNS}) = "
                    f"(SELECT {_FACTS_FROM_JSON} FROM (SELECT CAST(:facts AS jsonb) AS f) given) "
                    f"WHERE {where} RETURNING *"
                ),
                {
                    **key,
                    "role": draft.role,
                    "body": dump_json(draft.message),
                    "redaction": None if draft.redact_message is None else dump_json(draft.redact_message),
                    "updated": draft.updated_at or _now(),
                    "facts": dump_json(facts),
                },
            )
        ).one()
    except (DBAPIError, StatementError, ValueError) as error:
        raise_for(error, f"{_message_name(session_id, agent_id, draft.message_id)} not found")
    await _forget_tool_calls(conn, key)
    await conn.execute(_RECORD_TOOL_CALLS, {**key, "at": row.created_at, "facts": dump_json(facts)})
    await _shift_totals(conn, scope, session_id, agent_id, before, row)
    await notify(
        conn, Event(MESSAGE_UPDATED, scope.tenant, session_id, agent_id, draft.message_id, draft.message_id)
    )
    return message_record(row)


async def delete_message(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, message_id: int, actor: Actor
) -> None:
    """Deletes one message, takes it off the totals and records who did. Run in a transaction."""
    key = {"s": session_id, "tn": scope.tenant, "a": agent_id, "m": message_id}
    gone = (
        await conn.execute(
            text(
                "DELETE FROM session_messages WHERE session_id = :s AND tenant = :tn AND agent_id = :a "
                f"AND message_id = :m RETURNING {', '.join(TOTALS)}"
            ),
            key,
        )
    ).first()
    if gone is None:
        raise NotFoundError(f"{_message_name(session_id, agent_id, message_id)} not found")
    await _forget_tool_calls(conn, key)
    await _shift_totals(conn, scope, session_id, agent_id, gone, None)
    await record_event(
        conn,
        tenant=scope.tenant,
        actor=actor,
        action="deleteMessage",
        session_id=session_id,
        target={"sessionId": session_id, "agentId": agent_id, "messageId": message_id},
    )
