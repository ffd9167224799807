"""The Message type: one entry of an agent's conversation."""

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from db.errors import NotFoundError
from db.records import MessageRecord
from graphql_api.context import Info
from graphql_api.types.scalars import JSON

if TYPE_CHECKING:
    from graphql_api.types.agent import Agent


@strawberry.type(description="A message of an agent's conversation, as Strands stored it.")
class Message:
    session_id: str
    tenant: strawberry.Private[str]
    agent_id: str
    message_id: int = strawberry.field(description="Position of the message in the conversation, from 0.")
    role: str = strawberry.field(description="The message's role (user, assistant), copied for filtering.")
    message: JSON = strawberry.field(description="The Strands message, bytes as base64 envelopes.")
    redact_message: JSON | None = strawberry.field(
        description="What a guardrail replaced the message with, if it did."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, record: MessageRecord) -> "Message":
        return cls(
            session_id=record.session_id,
            tenant=record.tenant,
            agent_id=record.agent_id,
            message_id=record.message_id,
            role=record.role,
            message=record.message,
            redact_message=record.redact_message,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )

    @strawberry.field
    async def agent(self, info: Info) -> Annotated["Agent", strawberry.lazy("graphql_api.types.agent")]:
        from graphql_api.types.agent import Agent

        record = await info.context.loaders.agent.load((self.tenant, self.session_id, self.agent_id))
        if record is None:  # deleted while this request ran
            raise NotFoundError(f"agent {self.agent_id!r} of message {self.message_id} is gone")
        return Agent.from_record(record)
