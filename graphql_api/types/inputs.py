"""Input types of the mutations, each turned into a checked ``db.records`` draft."""

from datetime import datetime

import strawberry

from db.records import AgentDraft, MessageDraft, MultiAgentDraft, SessionDraft
from graphql_api.types.scalars import JSON
from graphql_api.types.session import SessionType
from graphql_api.validation import (
    check_id,
    check_message_id,
    check_object,
    check_optional_object,
    message_role,
)

CREATED_AT_HELP = "Defaults to now. Updates ignore it: the stored createdAt is kept."
UPDATED_AT_HELP = "Defaults to now (to createdAt on create)."


@strawberry.input
class SessionInput:
    session_id: str
    session_type: SessionType = SessionType.AGENT
    created_at: datetime | None = strawberry.field(default=None, description=CREATED_AT_HELP)
    updated_at: datetime | None = strawberry.field(default=None, description=UPDATED_AT_HELP)

    def to_draft(self, field: str) -> SessionDraft:
        return SessionDraft(
            session_id=check_id(f"{field}.sessionId", self.session_id),
            session_type=self.session_type.value,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


@strawberry.input
class AgentInput:
    agent_id: str
    state: JSON
    conversation_manager_state: JSON
    internal_state: JSON | None = strawberry.field(
        default=None, description="Strands-managed state. Omitted: {} on create, left as stored on update."
    )
    created_at: datetime | None = strawberry.field(default=None, description=CREATED_AT_HELP)
    updated_at: datetime | None = strawberry.field(default=None, description=UPDATED_AT_HELP)

    def to_draft(self, field: str) -> AgentDraft:
        return AgentDraft(
            agent_id=check_id(f"{field}.agentId", self.agent_id),
            state=check_object(f"{field}.state", self.state),
            conversation_manager_state=check_object(
                f"{field}.conversationManagerState", self.conversation_manager_state
            ),
            internal_state=check_optional_object(f"{field}.internalState", self.internal_state),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


@strawberry.input
class MessageInput:
    message_id: int
    message: JSON = strawberry.field(description="A Strands message: an object with a string role.")
    redact_message: JSON | None = None
    created_at: datetime | None = strawberry.field(default=None, description=CREATED_AT_HELP)
    updated_at: datetime | None = strawberry.field(default=None, description=UPDATED_AT_HELP)

    def to_draft(self, field: str) -> MessageDraft:
        return MessageDraft(
            message_id=check_message_id(f"{field}.messageId", self.message_id),
            role=message_role(f"{field}.message", self.message),
            message=self.message,
            redact_message=check_optional_object(f"{field}.redactMessage", self.redact_message),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


@strawberry.input
class MultiAgentInput:
    multi_agent_id: str
    state: JSON = strawberry.field(description="What the Graph's or Swarm's serialize_state() returned.")
    created_at: datetime | None = strawberry.field(default=None, description=CREATED_AT_HELP)
    updated_at: datetime | None = strawberry.field(default=None, description=UPDATED_AT_HELP)

    def to_draft(self, field: str) -> MultiAgentDraft:
        return MultiAgentDraft(
            multi_agent_id=check_id(f"{field}.multiAgentId", self.multi_agent_id),
            state=check_object(f"{field}.state", self.state),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )
