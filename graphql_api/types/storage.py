"""Types of the storage API (Strands' ``Storage`` protocol over GraphQL) and of agents' checkpoints (the
``Checkpoint`` type; the agent as one has it is ``AgentSnapshot``, in ``agent.py``)."""

from datetime import datetime

import strawberry

from db.records import record_of
from db.storage.checkpoints import Checkpoint as CheckpointRecord
from db.storage.objects import StoredObject


@strawberry.type(description="What a write stored: the key as normalized, and the bytes' size and SHA-256.")
class StorageObjectInfo:
    key: str
    size: int = strawberry.field(description="Bytes.")
    sha256: str = strawberry.field(description="Hex SHA-256 of the bytes.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, record: StoredObject) -> "StorageObjectInfo":
        return record_of(cls, record, shared_only=True, sha256=record.sha256.hex())


@strawberry.type(description="A page of keys in code point order (Python's sorted()).")
class StorageKeyPage:
    keys: list[str]
    has_next_page: bool = strawberry.field(
        description="More keys follow: ask again with after = the last key."
    )


@strawberry.type(description="An object found by searchStorage, with its relevance (higher is better).")
class StorageSearchHit:
    key: str
    score: float


@strawberry.type(description="An immutable snapshot of an agent, saved by SnapshotSessionManager.")
class Checkpoint:
    snapshot_id: str
    key: str = strawberry.field(description="Its storage key.")
    created_at: datetime = strawberry.field(description="When Strands took the snapshot.")
    message_count: int
    size: int = strawberry.field(description="Bytes of the stored snapshot.")

    @classmethod
    def from_record(cls, record: CheckpointRecord) -> "Checkpoint":
        return record_of(cls, record, shared_only=True)
