"""Input types of the mutations, each turned into a checked ``db.records`` draft."""

from datetime import datetime
from typing import Any

import strawberry

from db.records import AgentDraft, MessageDraft, MultiAgentDraft, SessionDraft
from graphql_api.errors import ErrorCode, InputError, LimitError
from graphql_api.guards.arguments import (
    check_content_blocks,
    check_document,
    check_id,
    check_message_id,
    check_object,
    check_optional_object,
    check_unicode,
    json_shape,
    message_role,
    too_deep,
)
from graphql_api.settings import Limits
from graphql_api.types.filters import check_labels
from graphql_api.types.scalars import JSON
from graphql_api.types.session_type import SessionType


def check_title(field: str, title: str) -> str:
    if len(title) > TITLE_LENGTH or "\x00" in title:
        raise InputError(field, f"must be at most {TITLE_LENGTH} characters, without NUL")
    return check_unicode(field, title)


def _document(field: str, value: JSON, limits: Limits) -> dict[str, Any]:
    document = check_object(field, value)
    check_document(field, document, max_depth=limits.max_json_depth)
    return document


def _optional_document(field: str, value: JSON | None, limits: Limits) -> dict[str, Any] | None:
    return None if value is None else _document(field, value, limits)


LABELS_HELP = 'Who and where the conversation belongs to: up to 32 short strings by name, e.g. {user: "ana"}.'
TITLE_LENGTH = 500
CREATED_AT_HELP = "Defaults to now. Updates ignore it: the stored createdAt is kept."
UPDATED_AT_HELP = "Defaults to now (to createdAt on create)."


@strawberry.input
class SessionInput:
    session_id: str
    session_type: SessionType = SessionType.AGENT
    created_at: datetime | None = strawberry.field(default=None, description=CREATED_AT_HELP)
    updated_at: datetime | None = strawberry.field(default=None, description=UPDATED_AT_HELP)
    labels: JSON | None = strawberry.field(default=None, description=LABELS_HELP)
    title: str | None = None

    def to_draft(self, field: str) -> SessionDraft:
        return SessionDraft(
            session_id=check_id(f"{field}.sessionId", self.session_id),
            session_type=self.session_type.value,
            created_at=self.created_at,
            updated_at=self.updated_at,
            labels={} if self.labels is None else check_labels(f"{field}.labels", self.labels),
            title=None if self.title is None else check_title(f"{field}.title", self.title) or None,
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

    def to_draft(self, field: str, limits: Limits) -> AgentDraft:
        return AgentDraft(
            agent_id=check_id(f"{field}.agentId", self.agent_id),
            state=_document(f"{field}.state", self.state, limits),
            conversation_manager_state=_document(
                f"{field}.conversationManagerState", self.conversation_manager_state, limits
            ),
            internal_state=_optional_document(f"{field}.internalState", self.internal_state, limits),
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

    def to_draft(self, field: str, limits: Limits) -> MessageDraft:
        """Checked for depth and, with its redaction, for ``max_message_bytes`` as stored."""
        role = message_role(f"{field}.message", self.message)
        redaction = check_optional_object(f"{field}.redactMessage", self.redact_message)
        # First, as a count: measuring the message walks every block.
        check_content_blocks(f"{field}.message", self.message, limits.max_content_blocks)
        if redaction is not None:
            check_content_blocks(f"{field}.redactMessage", redaction, limits.max_content_blocks)
        depth, most = limits.max_json_depth, limits.max_message_bytes
        message = json_shape(self.message, max_depth=depth)
        redacted = json_shape(redaction, max_depth=depth) if redaction is not None else None
        for name, shape in (("message", message), ("redactMessage", redacted)):
            if shape is not None and shape.too_deep:
                raise too_deep(f"{field}.{name}", depth)
        size = message.size + (redacted.size if redacted else 0)
        if size > most:
            raise LimitError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"{field}: is {size} bytes as JSON with its redaction; the limit is {most} bytes",
                field,
            )
        return MessageDraft(
            message_id=check_message_id(f"{field}.messageId", self.message_id),
            role=role,
            message=self.message,
            redact_message=redaction,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


@strawberry.input
class MultiAgentInput:
    multi_agent_id: str
    state: JSON = strawberry.field(description="What the Graph's or Swarm's serialize_state() returned.")
    created_at: datetime | None = strawberry.field(default=None, description=CREATED_AT_HELP)
    updated_at: datetime | None = strawberry.field(default=None, description=UPDATED_AT_HELP)

    def to_draft(self, field: str, limits: Limits) -> MultiAgentDraft:
        return MultiAgentDraft(
            multi_agent_id=check_id(f"{field}.multiAgentId", self.multi_agent_id),
            state=_document(f"{field}.state", self.state, limits),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


@strawberry.input(description="An agent's lastActivityAt, as restoreSessionTimes sets it.")
class AgentActivityInput:
    agent_id: str
    last_activity_at: datetime
