"""The filter and the orders of the analytics fields, as GraphQL inputs checked into ``db`` values."""

from enum import Enum

import strawberry

from db.analytics import filters as stored
from db.analytics.listings import Order
from graphql_api.errors import InputError
from graphql_api.guards.arguments import check_id, check_unicode
from graphql_api.types.scalars import JSON, Time
from graphql_api.types.session_type import SessionType

LABEL_KEY_LENGTH = 64
LABEL_VALUE_LENGTH = 256
MOST_LABELS = 32


@strawberry.enum(description="Kinds of Strands content block.")
class ContentType(Enum):
    TEXT = "text"
    TOOL_USE = "toolUse"
    TOOL_RESULT = "toolResult"
    REASONING = "reasoningContent"
    IMAGE = "image"
    DOCUMENT = "document"
    VIDEO = "video"
    CACHE_POINT = "cachePoint"
    GUARD_CONTENT = "guardContent"
    CITATIONS = "citationsContent"


@strawberry.enum(description="How a tool call ended, as its toolResult says.")
class ToolStatus(Enum):
    SUCCESS = "success"
    ERROR = "error"


@strawberry.input(description="start <= time < end; either may be left out.")
class TimeRange:
    start: Time | None = None
    end: Time | None = None

    def to_db(self) -> stored.TimeRange:
        return stored.TimeRange(start=self.start, end=self.end)


def check_labels(field: str, value: object) -> dict[str, str]:
    """Labels are a flat object of short strings: who and where, not data."""
    if not isinstance(value, dict):
        raise InputError(field, 'must be an object of string values, like {user: "ana"}')
    if len(value) > MOST_LABELS:
        raise InputError(field, f"must hold at most {MOST_LABELS} labels, got {len(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise InputError(f"{field}.{key}", "must be a string")
        if (
            not key
            or len(key) > LABEL_KEY_LENGTH
            or not key.replace("_", "").replace("-", "").replace(".", "").isalnum()
        ):
            raise InputError(
                field, f"label names are 1-{LABEL_KEY_LENGTH} letters, digits, '_', '-' or '.', not {key!r}"
            )
        if len(item) > LABEL_VALUE_LENGTH or "\x00" in item:
            raise InputError(
                f"{field}.{key}", f"must be at most {LABEL_VALUE_LENGTH} characters, without NUL"
            )
        check_unicode(f"{field}.{key}", item)
    return value


@strawberry.input(
    description="What to count or list: conditions on the session, the agent and the message. Listing "
    "sessions, a message condition keeps the sessions with such a message; listing messages, a session "
    "condition keeps the messages of such sessions. `created` is of whatever is listed."
)
class ConversationFilter:
    session_id: str | None = None
    session_id_prefix: str | None = None
    session_type: SessionType | None = None
    labels: JSON | None = strawberry.field(
        default=None, description='All of these labels, e.g. {user: "ana"}.'
    )
    snapshot_backed: bool | None = strawberry.field(
        default=None,
        description="Of the session: written by Strands' SnapshotSessionManager through "
        "GraphQLStorage (or not).",
    )
    created: TimeRange | None = None
    updated: TimeRange | None = strawberry.field(default=None, description="Of the session.")
    last_activity: TimeRange | None = strawberry.field(default=None, description="Of the session.")
    agent_id: str | None = None
    role: str | None = strawberry.field(default=None, description="Of a message: user or assistant.")
    content_type: ContentType | None = strawberry.field(
        default=None, description="A message holds such a block."
    )
    tool_name: str | None = strawberry.field(default=None, description="A message calls this tool.")
    tool_status: ToolStatus | None = strawberry.field(
        default=None, description="A message holds such a tool result."
    )
    redacted: bool | None = strawberry.field(
        default=None, description="A message a guardrail redacted (or not)."
    )

    def to_db(self, field: str = "filter") -> stored.ConversationFilter:
        labels = (
            () if self.labels is None else tuple(sorted(check_labels(f"{field}.labels", self.labels).items()))
        )
        return stored.ConversationFilter(
            session_id=None if self.session_id is None else check_id(f"{field}.sessionId", self.session_id),
            session_id_prefix=None
            if self.session_id_prefix is None
            else check_unicode(f"{field}.sessionIdPrefix", self.session_id_prefix.replace("\x00", "")),
            session_type=None if self.session_type is None else self.session_type.value,
            labels=labels,
            snapshot_backed=self.snapshot_backed,
            created=self.created.to_db() if self.created else stored.TimeRange(),
            updated=self.updated.to_db() if self.updated else stored.TimeRange(),
            last_activity=self.last_activity.to_db() if self.last_activity else stored.TimeRange(),
            agent_id=None if self.agent_id is None else check_id(f"{field}.agentId", self.agent_id),
            role=None if self.role is None else check_unicode(f"{field}.role", self.role.replace("\x00", "")),
            content_type=None if self.content_type is None else self.content_type.value,
            tool_name=None
            if self.tool_name is None
            else check_unicode(f"{field}.toolName", self.tool_name.replace("\x00", "")),
            tool_status=None if self.tool_status is None else self.tool_status.value,
            redacted=self.redacted,
        )


def filter_of(given: ConversationFilter | None, field: str = "filter") -> stored.ConversationFilter:
    return stored.EVERYTHING if given is None else given.to_db(field)


@strawberry.enum
class Direction(Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.enum(description="What sessions and agents can be ordered by; ties go by id.")
class ListOrderField(Enum):
    CREATED_AT = "CREATED_AT"
    LAST_ACTIVITY_AT = "LAST_ACTIVITY_AT"
    MESSAGE_COUNT = "MESSAGE_COUNT"
    TOTAL_TOKENS = "TOTAL_TOKENS"


@strawberry.enum(description="What messages can be ordered by; ties go by session, agent and message id.")
class MessageOrderField(Enum):
    CREATED_AT = "CREATED_AT"
    TOTAL_TOKENS = "TOTAL_TOKENS"


@strawberry.input
class ListOrder:
    field: ListOrderField = ListOrderField.CREATED_AT
    direction: Direction = Direction.DESC

    def to_db(self) -> Order:
        return Order(self.field.value, self.direction is Direction.DESC)


@strawberry.input
class MessageOrder:
    field: MessageOrderField = MessageOrderField.CREATED_AT
    direction: Direction = Direction.DESC

    def to_db(self) -> Order:
        return Order(self.field.value, self.direction is Direction.DESC)


NEWEST_FIRST = Order("CREATED_AT", descending=True)
