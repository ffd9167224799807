"""Objects of Strands' ``Storage`` protocol, and the snapshots among them read into sessions.

Any key holds opaque bytes, returned exactly as written. Keys are normalized as Strands' own
backends normalize them (runs of ``/`` collapsed, outer ``/`` stripped, no ``\\`` and no ``..``
segment), so an agent moving from ``LocalFileStorage`` finds the same keys.

The keys ``SnapshotSessionManager`` writes are understood as well (``SNAPSHOT_KEY``). An agent's
``snapshot_latest.json`` is read into the session tables in the same transaction as the object is
stored: the session and agent rows (``snapshot_backed``), the agent's states, and its messages,
written through ``db.message_writes`` like any other, so every listing, filter, search and stat
covers snapshot-backed agents with no second read path. Messages are matched by id (their position
plus the messages the conversation manager dropped); from the first one that differs from what is
stored, the stored ones go and the snapshot's are written.
An orchestrator's latest snapshot becomes its multi-agent state. Immutable checkpoints are kept as
objects with their creation time and message count, for ``Agent.snapshots``.
"""

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Text, bindparam, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db import message_writes
from db.audit import record_event
from db.derived import TEXT_LIMIT, message_text
from db.errors import ConflictError, InvalidDataError, JsonTooDeepError
from db.json_values import dump_json
from db.models import ID_LENGTH, SEARCH_CONFIGURATION, agents, multi_agents, sessions, storage_objects
from db.records import Actor, MessageDraft
from db.tenancy import Scope

MAX_KEY_BYTES = 1024
"""As S3: longer keys are refused rather than cut."""
SNAPSHOT_KEY = re.compile(
    r"session/(?P<session>[^/]+)/scopes/(?P<scope>agent|multiAgent)/(?P<scope_id>[^/]+)/snapshots/"
    r"(?:snapshot_latest\.json|immutable_history/snapshot_(?P<snapshot>[\w-]+)\.json)"
)
"""The keys of ``strands.session.snapshot_session_manager`` under its ``session`` namespace."""
SESSION_KEY = re.compile(r"(?:session|context)/(?P<session>[^/]+)/")
"""Keys of one session: Strands' snapshots (``session/``) and its context stash (``context/``)."""
SNAPSHOT_SCHEMA = "1.0"
AGENT_LATEST = "agent_latest"
AGENT_CHECKPOINT = "agent_checkpoint"
MULTI_AGENT_LATEST = "multi_agent_latest"
OBJECT = "object"
COUNTERS = ("message_count", *message_writes.TOTALS)
INSERT_BATCH = 1000
"""Messages per statement when a snapshot's messages are written."""
LAST_MESSAGE_ID = 2**31 - 1
"""Message ids are PostgreSQL integers."""
SNAPSHOT_NESTING = 3
"""Levels above a message in a snapshot: the snapshot, its data, the messages list."""
MAX_DEPTH = 64
"""Nesting of a snapshot's JSON, as of any stored document (the API passes its max_json_depth)."""
INTERNAL_STATE_FIELDS = ("interrupt_state", "model_state", "system_prompt")
"""What of an agent snapshot goes into the agent's ``internal_state`` (Strands' own state)."""


def normalize_key(key: str) -> str:
    """The key as Strands' path-based backends store it; ``InvalidDataError`` if it cannot be one."""
    _check_characters("key", key)
    normalized = re.sub(r"/+", "/", key).strip("/")
    if not normalized:
        raise InvalidDataError("key must not be empty")
    if ".." in normalized.split("/"):
        raise InvalidDataError(f"key {key!r}: '..' segments are not allowed")
    if len(normalized.encode()) > MAX_KEY_BYTES:
        raise InvalidDataError(f"key is longer than {MAX_KEY_BYTES} bytes")
    return normalized


def normalize_prefix(prefix: str) -> str:
    """As ``normalize_key``, but empty is allowed (everything), a trailing ``/`` is kept, and so is
    a NUL: Strands' backends list nothing for it rather than fail (see ``_starts_no_key``)."""
    _check_characters("prefix", prefix.replace("\x00", ""))
    normalized = re.sub(r"/+", "/", prefix).lstrip("/")
    if ".." in normalized.split("/"):
        raise InvalidDataError(f"prefix {prefix!r}: '..' segments are not allowed")
    if len(normalized.encode()) > MAX_KEY_BYTES:
        raise InvalidDataError(f"prefix is longer than {MAX_KEY_BYTES} bytes")
    return normalized


def _check_characters(name: str, value: str) -> None:
    if "\\" in value:
        raise InvalidDataError(f"{name} {value!r}: backslashes are not allowed")
    if "\x00" in value:
        raise InvalidDataError(f"{name} must not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidDataError(f"{name} is not valid Unicode text (a lone surrogate)") from None


@dataclass(frozen=True, slots=True)
class KeyMeaning:
    """What a key is: the session it belongs to ('' for none) and, for a snapshot, whose."""

    session_id: str
    kind: str
    scope_id: str | None = None
    snapshot_id: str | None = None


def meaning_of(key: str) -> KeyMeaning:
    snapshot = SNAPSHOT_KEY.fullmatch(key)
    if snapshot is not None and _fits(snapshot["session"]) and _fits(snapshot["scope_id"]):
        if snapshot["scope"] == "multiAgent":
            if snapshot["snapshot"] is None:
                return KeyMeaning(snapshot["session"], MULTI_AGENT_LATEST, snapshot["scope_id"])
        elif snapshot["snapshot"] is None:
            return KeyMeaning(snapshot["session"], AGENT_LATEST, snapshot["scope_id"])
        else:
            return KeyMeaning(
                snapshot["session"], AGENT_CHECKPOINT, snapshot["scope_id"], snapshot["snapshot"]
            )
    session = SESSION_KEY.match(key)
    if session is not None and _fits(session["session"]):
        return KeyMeaning(session["session"], OBJECT)
    return KeyMeaning("", OBJECT)


def _fits(identifier: str) -> bool:
    """Whether an id in a key is one the API can address (``graphql_api.validation.check_id``):
    other keys are kept as plain objects, outside any session."""
    return (
        len(identifier) <= ID_LENGTH
        and identifier not in (".", "..")
        and not any(unicodedata.category(c) == "Cc" for c in identifier)
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The parts of a Strands snapshot (``strands.types._snapshot.Snapshot``) the store reads."""

    scope: str
    created_at: datetime
    data: dict[str, Any]

    @property
    def messages(self) -> list[Any]:
        found = self.data.get("messages", [])
        return found if isinstance(found, list) else []


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON can hold; the store refuses it")


def too_deep(value: Any, max_depth: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``max_depth`` deep (without recursing)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def parse_snapshot(data: bytes, key: str, expected_scope: str, max_depth: int = MAX_DEPTH) -> Snapshot:
    """The snapshot a snapshot key holds; ``InvalidDataError`` when the bytes are not one Strands
    would load (it would fail on them at restore, so they are refused when written)."""
    try:
        # json, not orjson: integers beyond 64 bits stay exact, as Strands keeps them.
        value = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise InvalidDataError(f"{key}: not a Strands snapshot (not JSON: {error})") from None
    if not isinstance(value, dict) or not isinstance(value.get("data"), dict):
        raise InvalidDataError(f"{key}: not a Strands snapshot (no data object)")
    if too_deep(value, max_depth):
        raise JsonTooDeepError(f"{key}: nests lists and objects more than {max_depth} deep")
    if not isinstance(value["data"].get("messages", []), list):
        raise InvalidDataError(f"{key}: the snapshot's messages are not a list")
    if value.get("schema_version") != SNAPSHOT_SCHEMA or value.get("scope", "agent") != expected_scope:
        raise InvalidDataError(
            f"{key}: not a {expected_scope} snapshot of schema {SNAPSHOT_SCHEMA} "
            f"(scope {value.get('scope')!r}, schema_version {value.get('schema_version')!r})"
        )
    created = value.get("created_at")
    try:
        created_at = datetime.fromisoformat(created) if isinstance(created, str) else None
    except ValueError:
        created_at = None
    if created_at is None:
        raise InvalidDataError(f"{key}: snapshot created_at {created!r} is not an ISO 8601 time")
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return Snapshot(scope=expected_scope, created_at=created_at, data=value["data"])


def _strings(value: Any) -> Iterator[str]:
    pending = [value]
    while pending:  # without recursing: any JSON orjson reads is searched
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(reversed(item.values()))
        elif isinstance(item, list):
            pending.extend(reversed(item))


def searchable_text(data: bytes, snapshot: Snapshot | None) -> str:
    """What search finds an object by: a snapshot's messages as the agent reads them (the latest
    kept when there is too much), any other JSON's strings, nothing for other bytes."""
    if snapshot is not None:
        found = "\n".join(message_text(message) for message in snapshot.messages)
        return found[-TEXT_LIMIT:].replace("\x00", "")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ""
    return "\n".join(_strings(value))[:TEXT_LIMIT].replace("\x00", "")


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: bytes
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """An immutable snapshot of an agent (``Agent.snapshots``)."""

    session_id: str
    tenant: str
    agent_id: str
    snapshot_id: str
    key: str
    created_at: datetime
    message_count: int
    size: int


async def write_object(
    conn: AsyncConnection, scope: Scope, key: str, data: bytes, *, max_depth: int = MAX_DEPTH
) -> StoredObject:
    """Stores ``data`` under ``key`` (normalized). Run in a transaction: a snapshot's projection
    into the session tables commits with it or not at all.

    An immutable checkpoint key already holding other bytes is a ``ConflictError``; the same bytes
    are accepted, so a retry succeeds. ``snapshot_latest`` is last writer wins. Writes and deletes
    of one session's objects take the session row's lock first, so they run one after the other
    (each sees the complete projection of the one before, a delete of the last object never races
    a first write, and no two lock the same rows in another order). ``max_depth``: how deep a
    stored message may nest; a snapshot holds it three levels down.
    """
    key = normalize_key(key)
    meaning = meaning_of(key)
    snapshot = None
    if meaning.kind in (AGENT_LATEST, AGENT_CHECKPOINT):
        snapshot = parse_snapshot(data, key, "agent", max_depth + SNAPSHOT_NESTING)
    elif meaning.kind == MULTI_AGENT_LATEST:
        snapshot = parse_snapshot(data, key, "multiAgent", max_depth + SNAPSHOT_NESTING)
    if snapshot is not None:
        await _ensure_session(conn, scope, meaning.session_id, snapshot.created_at)
    elif meaning.session_id:
        await _lock_session(conn, scope, meaning.session_id)
    digest = hashlib.sha256(data).digest()
    values: dict[str, Any] = {
        "session_id": meaning.session_id,
        "tenant": scope.tenant,
        "key": key,
        "data": data,
        "sha256": digest,
        "size": len(data),
        "kind": meaning.kind,
        "scope_id": meaning.scope_id,
        "snapshot_id": meaning.snapshot_id,
        "snapshot_created_at": None if snapshot is None else snapshot.created_at,
        "message_count": None if snapshot is None or snapshot.scope != "agent" else len(snapshot.messages),
        "plain_text": searchable_text(data, snapshot),
    }
    stmt = insert(storage_objects).values(values)
    returned = (
        storage_objects.c.key,
        storage_objects.c.size,
        storage_objects.c.sha256,
        storage_objects.c.created_at,
        storage_objects.c.updated_at,
    )
    if meaning.kind == AGENT_CHECKPOINT:
        row = (await conn.execute(stmt.on_conflict_do_nothing().returning(*returned))).first()
        if row is None:
            row = (
                await conn.execute(
                    select(*returned).where(
                        storage_objects.c.session_id == meaning.session_id,
                        storage_objects.c.tenant == scope.tenant,
                        storage_objects.c.key == key,
                    )
                )
            ).one()
            if row.sha256 != digest:
                raise ConflictError(f"{key} is an immutable snapshot stored with other bytes")
            return StoredObject(row.key, row.size, row.sha256, row.created_at, row.updated_at)
    else:
        changed = {
            name: stmt.excluded[name] for name in values if name not in ("session_id", "tenant", "key")
        }
        upsert = stmt.on_conflict_do_update(
            index_elements=["session_id", "tenant", "key"], set_={**changed, "updated_at": func.now()}
        )
        row = (await conn.execute(upsert.returning(*returned))).one()
    if snapshot is not None and meaning.scope_id is not None:
        if meaning.kind == AGENT_LATEST:
            await _project_agent(conn, scope, meaning.session_id, meaning.scope_id, snapshot)
        elif meaning.kind == MULTI_AGENT_LATEST:
            await _project_multi_agent(conn, scope, meaning.session_id, meaning.scope_id, snapshot)
    return StoredObject(row.key, row.size, row.sha256, row.created_at, row.updated_at)


async def _ensure_session(conn: AsyncConnection, scope: Scope, session_id: str, at: datetime) -> None:
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
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["session_id", "tenant"],
            set_={"updated_at": func.now(), "last_activity_at": func.now()},
        )
    )


async def _lock_session(conn: AsyncConnection, scope: Scope, session_id: str) -> None:
    """The session row's lock, if there is a row, until the transaction ends."""
    await conn.execute(
        select(sessions.c.session_id)
        .where(sessions.c.session_id == session_id, sessions.c.tenant == scope.tenant)
        .with_for_update()
    )


async def _project_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, snapshot: Snapshot
) -> None:
    """The agent as its latest snapshot has it: states, and messages matched by position."""
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
    if (await conn.execute(upsert.returning(agents.c.agent_id))).first() is None:
        raise ConflictError(
            f"agent {agent_id!r} in session {session_id!r} is stored message by message (a "
            "RepositorySessionManager's); a snapshot cannot replace it"
        )
    await conn.execute(
        sessions.update()
        .where(sessions.c.session_id == session_id, sessions.c.tenant == scope.tenant)
        .values(updated_at=func.now(), last_activity_at=func.now())
    )
    await _replace_messages(conn, scope, session_id, agent_id, snapshot)


def first_message_id(snapshot: Snapshot) -> int:
    """The id of the snapshot's first message. Strands' conversation managers drop the oldest
    messages and count them (``removed_message_count``), so the snapshot's first message is that
    one of the conversation, as ``RepositorySessionManager`` numbers it."""
    state = snapshot.data.get("conversation_manager_state")
    removed = state.get("removed_message_count") if isinstance(state, dict) else None
    if isinstance(removed, int) and not isinstance(removed, bool) and 0 <= removed <= LAST_MESSAGE_ID:
        return min(removed, LAST_MESSAGE_ID - len(snapshot.messages))
    return 0


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
            role=str(message.get("role", "")) if isinstance(message, dict) else "",
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


async def _project_multi_agent(
    conn: AsyncConnection, scope: Scope, session_id: str, orchestrator_id: str, snapshot: Snapshot
) -> None:
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
    await conn.execute(
        sessions.update()
        .where(sessions.c.session_id == session_id, sessions.c.tenant == scope.tenant)
        .values(updated_at=func.now(), last_activity_at=func.now())
    )


def _object_key(scope: Scope, key: str) -> list[Any]:
    return [
        storage_objects.c.session_id == meaning_of(key).session_id,
        storage_objects.c.tenant == scope.tenant,
        storage_objects.c.key == key,
    ]


async def read_object(conn: AsyncConnection, scope: Scope, key: str) -> bytes | None:
    key = normalize_key(key)
    row = (await conn.execute(select(storage_objects.c.data).where(*_object_key(scope, key)))).first()
    return None if row is None else bytes(row.data)


async def delete_object(conn: AsyncConnection, scope: Scope, key: str, actor: Actor) -> bool:
    """Deletes the object (a no-op when there is none) and what was read from it: an agent's or
    orchestrator's latest snapshot takes its projection with it, and a snapshot-backed session
    left with no object goes too. Run in a transaction. Whether there was an object."""
    key = normalize_key(key)
    meaning = meaning_of(key)
    if meaning.session_id:
        await _lock_session(conn, scope, meaning.session_id)
    gone = (
        await conn.execute(
            storage_objects.delete().where(*_object_key(scope, key)).returning(storage_objects.c.kind)
        )
    ).first()
    if gone is None:
        return False
    await record_event(
        conn,
        tenant=scope.tenant,
        actor=actor,
        action="deleteStorageObject",
        session_id=meaning.session_id or None,
        target={"key": key},
    )
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
    return True


def _starts_no_key(prefix: str) -> bool:
    # Keys never hold a NUL (PostgreSQL text cannot), so such a prefix is answered without a query.
    return "\x00" in prefix


def _prefix_condition(prefix: str) -> Any:
    # LIKE on the "C"-collated key walks the (tenant, key) index.
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return storage_objects.c.key.like(bindparam("prefix", escaped + "%", type_=Text))


async def list_keys(
    conn: AsyncConnection, scope: Scope, prefix: str, after: str | None, first: int
) -> tuple[list[str], bool]:
    """Keys starting with ``prefix`` (normalized) in code point order, ``first`` of them after
    ``after``, and whether more follow."""
    prefix = normalize_prefix(prefix)
    if _starts_no_key(prefix):
        return [], False
    ordered = storage_objects.c.key
    stmt = select(storage_objects.c.key).where(storage_objects.c.tenant == scope.tenant)
    if prefix:
        stmt = stmt.where(_prefix_condition(prefix))
    if after is not None:
        stmt = stmt.where(ordered > bindparam("after", after, type_=Text))
    keys = list((await conn.execute(stmt.order_by(ordered).limit(first + 1))).scalars())
    return keys[:first], len(keys) > first


@dataclass(frozen=True, slots=True)
class ObjectMatch:
    key: str
    score: float


async def search_objects(
    conn: AsyncConnection, scope: Scope, query: str, prefix: str, first: int
) -> list[ObjectMatch]:
    """The best ``first`` objects under ``prefix`` for a web search query, best first."""
    prefix = normalize_prefix(prefix)
    if _starts_no_key(prefix):
        return []
    tsquery = func.websearch_to_tsquery(
        literal_column(f"'{SEARCH_CONFIGURATION}'"), bindparam("query", query)
    )
    rank = func.ts_rank_cd(storage_objects.c.search, tsquery).label("rank")
    stmt = select(storage_objects.c.key, rank).where(
        storage_objects.c.tenant == scope.tenant, storage_objects.c.search.op("@@")(tsquery)
    )
    if prefix:
        stmt = stmt.where(_prefix_condition(prefix))
    stmt = stmt.order_by(rank.desc(), storage_objects.c.key).limit(first)
    return [ObjectMatch(row.key, float(row.rank)) for row in await conn.execute(stmt)]


AgentKey = tuple[str, str, str]
"""(tenant, session_id, agent_id)."""


async def list_checkpoints(
    conn: AsyncConnection, keys: Sequence[AgentKey]
) -> dict[AgentKey, list[Checkpoint]]:
    """The immutable snapshots of each agent, oldest first (their ids are UUIDv7s, in time order)."""
    found: dict[AgentKey, list[Checkpoint]] = {key: [] for key in keys}
    if not keys:
        return found
    rows = await conn.execute(
        text(
            "SELECT o.session_id, o.tenant, o.scope_id, o.snapshot_id, o.key, o.snapshot_created_at, "
            "o.message_count, o.size FROM storage_objects o "
            "JOIN unnest(CAST(:tenants AS text[]), CAST(:sessions AS text[]), CAST(:agents AS text[])) "
            "AS k(tenant, session_id, agent_id) "
            "ON o.session_id = k.session_id AND o.tenant = k.tenant AND o.scope_id = k.agent_id "
            f"WHERE o.kind = '{AGENT_CHECKPOINT}' ORDER BY o.snapshot_created_at, o.key"
        ),
        {
            "tenants": [key[0] for key in keys],
            "sessions": [key[1] for key in keys],
            "agents": [key[2] for key in keys],
        },
    )
    for row in rows:
        found[(row.tenant, row.session_id, row.scope_id)].append(
            Checkpoint(
                row.session_id,
                row.tenant,
                row.scope_id,
                row.snapshot_id,
                row.key,
                row.snapshot_created_at,
                row.message_count,
                row.size,
            )
        )
    return found


CheckpointKey = tuple[str, str, str, str]
"""(tenant, session_id, agent_id, snapshot_id)."""


def checkpoint_key(session_id: str, agent_id: str, snapshot_id: str) -> str:
    """The storage key SnapshotSessionManager writes an agent's immutable snapshot under."""
    history = f"session/{session_id}/scopes/agent/{agent_id}/snapshots/immutable_history"
    return f"{history}/snapshot_{snapshot_id}.json"


async def read_checkpoints(
    conn: AsyncConnection, keys: Sequence[CheckpointKey]
) -> dict[CheckpointKey, tuple[Checkpoint, Snapshot]]:
    """Checkpoints with their snapshots, looked up by primary key; missing ones are left out."""
    if not keys:
        return {}
    rows = await conn.execute(
        text(
            "SELECT o.session_id, o.tenant, o.scope_id, o.snapshot_id, o.key, o.snapshot_created_at, "
            "o.message_count, o.size, o.data FROM storage_objects o "
            "JOIN unnest(CAST(:tenants AS text[]), CAST(:sessions AS text[]), CAST(:keys AS text[])) "
            "AS k(tenant, session_id, key) ON o.session_id = k.session_id AND o.tenant = k.tenant "
            f"AND o.key = k.key WHERE o.kind = '{AGENT_CHECKPOINT}'"
        ),
        {
            "tenants": [key[0] for key in keys],
            "sessions": [key[1] for key in keys],
            "keys": [checkpoint_key(key[1], key[2], key[3]) for key in keys],
        },
    )
    found: dict[CheckpointKey, tuple[Checkpoint, Snapshot]] = {}
    for row in rows:
        checkpoint = Checkpoint(
            row.session_id,
            row.tenant,
            row.scope_id,
            row.snapshot_id,
            row.key,
            row.snapshot_created_at,
            row.message_count,
            row.size,
        )
        # Stored, so checked when written (against the limit of then, which may have been higher).
        snapshot = parse_snapshot(bytes(row.data), row.key, "agent", max_depth=10_000)
        found[(row.tenant, row.session_id, row.scope_id, row.snapshot_id)] = (checkpoint, snapshot)
    return found


async def read_checkpoint(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, snapshot_id: str
) -> tuple[Checkpoint, Snapshot] | None:
    key = (scope.tenant, session_id, agent_id, snapshot_id)
    return (await read_checkpoints(conn, [key])).get(key)
