"""SessionActivity: what ``sessionActivity`` tells an overview page."""

from enum import Enum

import strawberry

from graphql_api.live.readers import Activity, ActivityKind
from graphql_api.types.message import Message
from graphql_api.types.session import Session


@strawberry.enum(description="What happened in a session.")
class SessionActivityKind(Enum):
    SESSION_CREATED = strawberry.enum_value(ActivityKind.SESSION_CREATED.value, description="A new session.")
    MESSAGES_ADDED = strawberry.enum_value(
        ActivityKind.MESSAGES_ADDED.value, description="New messages of one agent, in messageId order."
    )
    RESUMED = strawberry.enum_value(
        ActivityKind.RESUMED.value,
        description="The server stopped hearing of changes for a while and heard again: the session "
        "was active meanwhile; read it again.",
    )


@strawberry.type(description="A new session, or new messages of one of its agents, matching the filter.")
class SessionActivity:
    kind: SessionActivityKind
    session: Session
    agent_id: str | None = strawberry.field(description="Whose messages these are (MESSAGES_ADDED).")
    messages: list[Message] = strawberry.field(description="The new messages (MESSAGES_ADDED), in order.")

    @classmethod
    def from_activity(cls, activity: Activity) -> "SessionActivity":
        return cls(
            kind=SessionActivityKind(activity.kind.value),
            session=Session.from_record(activity.session),
            agent_id=activity.agent_id,
            messages=[Message.from_record(m) for m in activity.messages],
        )
