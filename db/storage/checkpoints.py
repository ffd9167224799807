"""An agent's immutable checkpoints (``Agent.checkpoints``), read from the storage objects.

``SnapshotSessionManager`` writes them under ``immutable_history`` keys; they are kept as objects
with their creation time and message count, so listing them reads no snapshot, and looked up in
batches (keys whose first element is the tenant) for the loaders.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.byte_caps import RUNNING_BYTES, checked
from db.json_values import StoredJSON, dump_json
from db.storage.keys import AGENT_CHECKPOINT, checkpoint_key
from db.storage.snapshots import Snapshot, first_message_id, parse_snapshot, role_of
from db.tenancy import Scope


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """An immutable snapshot of an agent (``Agent.checkpoints``)."""

    session_id: str
    tenant: str
    agent_id: str
    snapshot_id: str
    key: str
    created_at: datetime
    message_count: int
    size: int


class CheckpointsKey(NamedTuple):
    """A page of an agent's checkpoints, oldest first."""

    tenant: str
    session_id: str
    agent_id: str
    offset: int
    limit: int


async def list_checkpoints(
    conn: AsyncConnection, keys: Sequence[CheckpointsKey]
) -> dict[CheckpointsKey, list[Checkpoint]]:
    """Pages of agents' immutable snapshots, oldest first (their ids are UUIDv7s, in time order)."""
    found: dict[CheckpointsKey, list[Checkpoint]] = {key: [] for key in keys}
    if not keys:
        return found
    rows = await conn.execute(
        text(
            "SELECT k.idx, c.* FROM unnest(CAST(:tenants AS text[]), CAST(:sessions AS text[]), "
            "CAST(:agents AS text[]), CAST(:offs AS int[]), CAST(:lims AS int[])) "
            "WITH ORDINALITY AS k(tenant, session_id, agent_id, off, lim, idx) "
            "CROSS JOIN LATERAL (SELECT o.session_id, o.tenant, o.scope_id, o.snapshot_id, o.key, "
            "o.snapshot_created_at, o.message_count, o.size FROM storage_objects o "
            "WHERE o.session_id = k.session_id AND o.tenant = k.tenant AND o.scope_id = k.agent_id "
            f"AND o.kind = '{AGENT_CHECKPOINT}' ORDER BY o.snapshot_created_at, o.key "
            "OFFSET k.off LIMIT k.lim) c"
        ),
        {
            "tenants": [key.tenant for key in keys],
            "sessions": [key.session_id for key in keys],
            "agents": [key.agent_id for key in keys],
            "offs": [key.offset for key in keys],
            "lims": [key.limit for key in keys],
        },
    )
    for row in rows:
        found[keys[row.idx - 1]].append(_checkpoint(row))
    return found


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(
        row.session_id,
        row.tenant,
        row.scope_id,
        row.snapshot_id,
        row.key,
        row.snapshot_created_at,
        row.message_count,
        row.size,
    )


class CheckpointKey(NamedTuple):
    tenant: str
    session_id: str
    agent_id: str
    snapshot_id: str


@dataclass(frozen=True, slots=True)
class CheckpointContent:
    """A checkpoint as an answer shows it: its states, and its messages as stored text. Parsed, a
    10 MiB snapshot takes some 150 MB of Python objects; its messages as text take 10."""

    state: Any
    conversation_manager_state: Any
    created_at: datetime
    first_message_id: int
    messages: list[tuple[str, StoredJSON]]
    """Each message's role, and the message."""

    @classmethod
    def of(cls, snapshot: Snapshot) -> "CheckpointContent":
        return cls(
            state=snapshot.data.get("state", {}),
            conversation_manager_state=snapshot.data.get("conversation_manager_state", {}),
            created_at=snapshot.created_at,
            first_message_id=first_message_id(snapshot),
            messages=[
                (role_of(message), StoredJSON(text=dump_json(message))) for message in snapshot.messages
            ],
        )


async def _checkpoint_rows(
    conn: AsyncConnection, keys: Sequence[CheckpointKey], most_bytes: int | None
) -> list[Any]:
    """The checkpoints' rows with their bytes; with ``most_bytes``, while their sizes add up to at
    most that many bytes (``TooManyBytesError`` past it): a snapshot is up to 10 MiB."""
    rows = await conn.execute(
        text(
            "SELECT * FROM (SELECT o.session_id, o.tenant, o.scope_id, o.snapshot_id, o.key, "
            "o.snapshot_created_at, o.message_count, o.size, o.data, "
            f"CAST(sum(o.size) OVER (ROWS UNBOUNDED PRECEDING) AS bigint) AS {RUNNING_BYTES} "
            "FROM storage_objects o "
            "JOIN unnest(CAST(:tenants AS text[]), CAST(:sessions AS text[]), CAST(:keys AS text[])) "
            "AS k(tenant, session_id, key) ON o.session_id = k.session_id AND o.tenant = k.tenant "
            f"AND o.key = k.key WHERE o.kind = '{AGENT_CHECKPOINT}') c "
            f"WHERE CAST(:most_bytes AS bigint) IS NULL OR {RUNNING_BYTES} - size <= :most_bytes"
        ),
        {
            "tenants": [key.tenant for key in keys],
            "sessions": [key.session_id for key in keys],
            "keys": [checkpoint_key(key.session_id, key.agent_id, key.snapshot_id) for key in keys],
            "most_bytes": most_bytes,
        },
    )
    return checked(rows, most_bytes)


def _snapshot_of(row: Any) -> Snapshot:
    # Stored, so checked when written (against the limit of then, which may have been higher).
    return parse_snapshot(bytes(row.data), row.key, "agent", max_depth=10_000)


async def read_checkpoints(
    conn: AsyncConnection, keys: Sequence[CheckpointKey], *, most_bytes: int | None = None
) -> dict[CheckpointKey, tuple[Checkpoint, CheckpointContent]]:
    """Checkpoints with what they hold, looked up by primary key; missing ones are left out.
    Snapshots are parsed one at a time, each kept as text (``CheckpointContent``)."""
    if not keys:
        return {}
    found: dict[CheckpointKey, tuple[Checkpoint, CheckpointContent]] = {}
    for row in await _checkpoint_rows(conn, keys, most_bytes):
        content = CheckpointContent.of(_snapshot_of(row))
        found[CheckpointKey(row.tenant, row.session_id, row.scope_id, row.snapshot_id)] = (
            _checkpoint(row),
            content,
        )
    return found


async def read_checkpoint(
    conn: AsyncConnection, scope: Scope, session_id: str, agent_id: str, snapshot_id: str
) -> tuple[Checkpoint, Snapshot] | None:
    """One checkpoint with its whole snapshot, to write it elsewhere (a fork)."""
    key = CheckpointKey(scope.tenant, session_id, agent_id, snapshot_id)
    rows = await _checkpoint_rows(conn, [key], None)
    return None if not rows else (_checkpoint(rows[0]), _snapshot_of(rows[0]))
