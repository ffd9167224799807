"""Objects of Strands' ``Storage`` protocol: written, read, deleted, listed and searched.

Any key holds opaque bytes, returned exactly as written, under its normalized key
(``db.storage.keys``). The snapshots among them are checked when written (``db.storage.snapshots``) and the
latest of an agent or orchestrator is read into the session tables in the same transaction as the
object is stored (``db.storage.projection``); immutable checkpoints are kept as objects with their
creation time and message count, for ``Agent.checkpoints`` (``db.storage.checkpoints``).
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, bindparam, case, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.byte_caps import count_read
from db.control.audit import record_event
from db.errors import ConflictError, TooManyBytesError
from db.models import SEARCH_CONFIGURATION, storage_objects
from db.records import Actor
from db.storage.keys import (
    AGENT_CHECKPOINT,
    AGENT_LATEST,
    MULTI_AGENT_LATEST,
    meaning_of,
    normalize_key,
    normalize_prefix,
)
from db.storage.projection import (
    ensure_session,
    lock_session,
    project_agent,
    project_multi_agent,
    remove_projection,
)
from db.storage.snapshots import MAX_DEPTH, SNAPSHOT_NESTING, parse_snapshot, searchable_text
from db.tenancy import Scope


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: bytes
    created_at: datetime
    updated_at: datetime


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
        await ensure_session(conn, scope, meaning.session_id, snapshot.created_at)
    elif meaning.session_id:
        await lock_session(conn, scope, meaning.session_id)
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
            await project_agent(conn, scope, meaning.session_id, meaning.scope_id, snapshot)
        elif meaning.kind == MULTI_AGENT_LATEST:
            await project_multi_agent(conn, scope, meaning.session_id, meaning.scope_id, snapshot)
    return StoredObject(row.key, row.size, row.sha256, row.created_at, row.updated_at)


def _object_key(scope: Scope, key: str) -> list[Any]:
    return [
        storage_objects.c.session_id == meaning_of(key).session_id,
        storage_objects.c.tenant == scope.tenant,
        storage_objects.c.key == key,
    ]


async def read_object(
    conn: AsyncConnection, scope: Scope, key: str, *, most_bytes: int | None = None
) -> bytes | None:
    """The object's bytes, or None. With ``most_bytes``, a larger object is not read at all:
    ``TooManyBytesError`` (its size column says how large it is)."""
    key = normalize_key(key)
    data: Any = storage_objects.c.data
    if most_bytes is not None:
        data = case((storage_objects.c.size <= most_bytes, storage_objects.c.data)).label("data")
    row = (await conn.execute(select(storage_objects.c.size, data).where(*_object_key(scope, key)))).first()
    if row is None:
        return None
    count_read(row.size)
    if row.data is None:
        raise TooManyBytesError(row.size)
    return bytes(row.data)


async def delete_object(conn: AsyncConnection, scope: Scope, key: str, actor: Actor) -> bool:
    """Deletes the object (a no-op when there is none) and what was read from it: an agent's or
    orchestrator's latest snapshot takes its projection with it, and a snapshot-backed session
    left with no object goes too. Run in a transaction. Whether there was an object."""
    key = normalize_key(key)
    meaning = meaning_of(key)
    if meaning.session_id:
        await lock_session(conn, scope, meaning.session_id)
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
    await remove_projection(conn, scope, meaning)
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
