"""Types of the storage API (Strands' ``Storage`` protocol over GraphQL) and of agents' checkpoints."""

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from db.records import MessageRecord
from db.storage.checkpoints import Checkpoint as CheckpointRecord
from db.storage.checkpoints import CheckpointContent
from db.storage.objects import StoredObject
from graphql_api.types.copies import copied
from graphql_api.types.scalars import JSON

if TYPE_CHECKING:
    from graphql_api.types.message import Message


@strawberry.type(description="What a write stored: the key as normalized, and the bytes' size and SHA-256.")
class StorageObjectInfo:
    key: str
    size: int = strawberry.field(description="Bytes.")
    sha256: str = strawberry.field(description="Hex SHA-256 of the bytes.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, record: StoredObject) -> "StorageObjectInfo":
        return copied(cls, record, sha256=record.sha256.hex())


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
        return copied(cls, record)


@strawberry.type(description="An agent as one of its checkpoints has it: time travel through a conversation.")
class AgentSnapshot:
    checkpoint: Checkpoint
    state: JSON
    conversation_manager_state: JSON
    record: strawberry.Private[CheckpointRecord]
    content: strawberry.Private[CheckpointContent]

    @classmethod
    def of(cls, record: CheckpointRecord, content: CheckpointContent) -> "AgentSnapshot":
        return cls(
            checkpoint=Checkpoint.from_record(record),
            state=content.state,
            conversation_manager_state=content.conversation_manager_state,
            record=record,
            content=content,
        )

    @strawberry.field(
        description="The messages of the checkpoint, numbered as the agent's messages are (after "
        "the ones its conversation manager had dropped)."
    )
    def messages(self) -> list[Annotated["Message", strawberry.lazy("graphql_api.types.message")]]:
        from graphql_api.types.message import Message

        record, content = self.record, self.content
        at, first = content.created_at, content.first_message_id
        return [
            Message.from_record(
                MessageRecord(
                    session_id=record.session_id,
                    tenant=record.tenant,
                    agent_id=record.agent_id,
                    message_id=first + position,
                    role=role,
                    message=message,
                    redact_message=None,
                    created_at=at,
                    updated_at=at,
                )
            )
            for position, (role, message) in enumerate(content.messages)
        ]
