"""The Agent type: one agent's state and its ordered messages; AgentSnapshot, the agent as one of
its checkpoints has it."""

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated

import strawberry

from db.analytics.listings import AgentFilterKey, AgentMessagesKey, LastMessageKey
from db.conversations.reads import MessageWindowKey
from db.errors import NotFoundError
from db.records import AgentRecord, MessageRecord, SessionKey, record_of
from db.storage.checkpoints import Checkpoint as CheckpointRecord
from db.storage.checkpoints import CheckpointContent, CheckpointKey, CheckpointsKey
from graphql_api.context import Info
from graphql_api.guards.arguments import check_id
from graphql_api.types.filters import ConversationFilter, filter_of
from graphql_api.types.message import documents_wanted
from graphql_api.types.pagination import (
    CONVERSATION_PAGE,
    Connection,
    conversation_page,
    decode_message_cursor,
    page_request,
)
from graphql_api.types.scalars import JSON
from graphql_api.types.storage import Checkpoint
from graphql_api.types.totals import Totals
from graphql_api.types.windows import load_window

if TYPE_CHECKING:
    from graphql_api.types.message import Message
    from graphql_api.types.session import Session


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


@strawberry.type(description="An agent of a session, with the state Strands restores it from.")
class Agent:
    session_id: str
    tenant: strawberry.Private[str]
    agent_id: str
    state: JSON = strawberry.field(description="The agent's user-managed state (agent.state).")
    conversation_manager_state: JSON
    internal_state: JSON = strawberry.field(description="Strands-managed state (interrupts, model state).")
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime = strawberry.field(
        description="When the agent or one of its messages was last written."
    )
    totals: Totals = strawberry.field(description="What the agent's messages add up to.")
    snapshot_backed: bool = strawberry.field(
        description="Written by Strands' SnapshotSessionManager through the storage API (GraphQLStorage)."
    )

    @classmethod
    def from_record(cls, record: AgentRecord) -> "Agent":
        return record_of(
            cls,
            record,
            shared_only=True,
            last_activity_at=record.last_activity_at or record.updated_at,
            totals=Totals.from_record(record.totals),
        )

    @strawberry.field
    async def session(self, info: Info) -> Annotated["Session", strawberry.lazy("graphql_api.types.session")]:
        from graphql_api.types.session import Session

        record = await info.context.loaders.session.load(SessionKey(self.tenant, self.session_id))
        if record is None:  # deleted while this request ran
            raise NotFoundError(f"session {self.session_id!r} of agent {self.agent_id!r} is gone")
        return Session.from_record(record)

    @strawberry.field(
        description="Messages ordered by messageId; offset and limit are positions in that order, "
        "as in Strands' list_messages. No limit returns all from offset (at most the server's largest list)."
    )
    async def messages(
        self, info: Info, offset: int = 0, limit: int | None = None
    ) -> list[Annotated["Message", strawberry.lazy("graphql_api.types.message")]]:
        from graphql_api.types.message import Message

        loaders, most = info.context.loaders, info.context.limits.max_list_size
        documents = documents_wanted(info)

        def key(offset: int, rows: int) -> MessageWindowKey:
            return MessageWindowKey(self.tenant, self.session_id, self.agent_id, offset, rows, documents)

        records = await load_window(loaders.message_window, key, offset, limit, most=most, what="messages")
        loaders.prime_messages(records)
        return [Message.from_record(record) for record in records]

    @strawberry.field(description="The conversation as a cursor connection in messageId order, filtered.")
    async def messages_connection(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ConversationFilter | None = None,
    ) -> Connection[Annotated["Message", strawberry.lazy("graphql_api.types.message")]]:
        from graphql_api.types.message import Message

        wanted = page_request(
            "messagesConnection",
            first=first,
            after=after,
            last=last,
            before=before,
            default=CONVERSATION_PAGE,
            maximum=info.context.limits.max_page_size,
            decode=lambda field, cursor: (decode_message_cursor(field, cursor),),
        )
        matching = filter_of(filter)
        loaders = info.context.loaders
        position = None if wanted.position is None else wanted.position[0]
        key = AgentMessagesKey(
            self.tenant,
            self.session_id,
            self.agent_id,
            matching,
            position,
            rows=wanted.size + 1,
            backwards=wanted.backwards,
            documents=documents_wanted(info),
        )
        records = await loaders.agent_messages.load(key)
        loaders.prime_messages(records)
        count_key = AgentFilterKey(self.tenant, self.session_id, self.agent_id, matching)
        return conversation_page(
            records, wanted, Message.from_record, lambda: loaders.agent_message_count.load(count_key)
        )

    @strawberry.field(
        description="The agent's checkpoints: the immutable snapshots SnapshotSessionManager saved of it, "
        "oldest first; empty for an agent stored message by message. No limit returns all from offset "
        "(at most the server's largest list)."
    )
    async def checkpoints(self, info: Info, offset: int = 0, limit: int | None = None) -> list[Checkpoint]:
        return await self._checkpoints(info, offset, limit)

    @strawberry.field(
        description="The agent's checkpoints, as checkpoints lists them.",
        deprecation_reason="Use checkpoints: the same list, named for what it holds.",
    )
    async def snapshots(self, info: Info, offset: int = 0, limit: int | None = None) -> list[Checkpoint]:
        return await self._checkpoints(info, offset, limit)

    async def _checkpoints(self, info: Info, offset: int, limit: int | None) -> list[Checkpoint]:
        loader, most = info.context.loaders.checkpoints, info.context.limits.max_list_size
        key = partial(CheckpointsKey, self.tenant, self.session_id, self.agent_id)
        found = await load_window(loader, key, offset, limit, most=most, what="checkpoints")
        return [Checkpoint.from_record(record) for record in found]

    @strawberry.field(
        description="One checkpoint of the agent with its messages and states as they were then, or null."
    )
    async def snapshot(self, info: Info, snapshot_id: str) -> AgentSnapshot | None:
        check_id("snapshotId", snapshot_id)
        key = CheckpointKey(self.tenant, self.session_id, self.agent_id, snapshot_id)
        found = await info.context.loaders.checkpoint.load(key)
        return None if found is None else AgentSnapshot.of(*found)

    @strawberry.field(description="How many messages the agent has.")
    def message_count(self) -> int:
        return self.totals.messages

    @strawberry.field(description="The agent's latest message (the highest messageId), or null.")
    async def last_message(
        self, info: Info
    ) -> Annotated["Message", strawberry.lazy("graphql_api.types.message")] | None:
        from graphql_api.types.message import Message

        key = LastMessageKey(self.tenant, self.session_id, self.agent_id, documents_wanted(info))
        record = await info.context.loaders.last_message.load(key)
        return None if record is None else Message.from_record(record)
