"""Subscriptions: conversations as they are written, on any replica (``graphql_api.live``).

Over websockets only (graphql-transport-ws, or the legacy graphql-ws), at ``/graphql``. Each
subscription reads its rows through ``db.conversations`` in the caller's tenant, woken by the
notices every write sends (``db.notifications``).
"""

from collections.abc import AsyncGenerator, Callable

import strawberry

from db.records import AgentKey, SessionKey
from graphql_api.context import Context, Info
from graphql_api.errors import InputError
from graphql_api.guards.arguments import check_id
from graphql_api.live.connection import CLOSE_TOO_SLOW
from graphql_api.live.readers import AgentsUpdated, MessagesAdded, MessagesUpdated, SessionActivity
from graphql_api.live.streams import Live, stream
from graphql_api.types.activity import SessionActivity as SessionActivityType
from graphql_api.types.agent import Agent
from graphql_api.types.filters import ConversationFilter, filter_of
from graphql_api.types.message import Message


def _live(context: Context) -> Live:
    if context.live is None:
        raise InputError("subscription", "subscriptions need a server (a websocket at /graphql)")
    return context.live


def _close_when_too_slow(context: Context) -> Callable[[str], None]:
    def close(reason: str) -> None:
        if context.connection is not None:
            context.connection.close_soon(CLOSE_TOO_SLOW, reason)

    return close


@strawberry.type
class LiveSubscription:
    @strawberry.subscription(
        description="An agent's messages in messageId order: first the stored ones after "
        "afterMessageId (-1: all of them), then each new one as it is committed, on any replica; "
        "without afterMessageId only new ones. None is missed or repeated: to resume after a "
        "dropped connection, subscribe again with the last messageId received."
    )
    async def message_added(
        self, info: Info, session_id: str, agent_id: str, after_message_id: int | None = None
    ) -> AsyncGenerator[Message, None]:
        check_id("sessionId", session_id)
        check_id("agentId", agent_id)
        if after_message_id is not None and after_message_id < -1:
            raise InputError("afterMessageId", f"must be -1 or more, got {after_message_id}")
        context = info.context
        live = _live(context)
        key = AgentKey(context.scope.tenant, session_id, agent_id)
        reader = MessagesAdded(live, key, after_message_id)
        async for record in stream(live, key, context.caller_bucket, reader, _close_when_too_slow(context)):
            yield Message.from_record(record)

    @strawberry.subscription(
        description="An agent's messages each time one is replaced (a guardrail's redaction), in the "
        "order of the updates."
    )
    async def message_updated(
        self, info: Info, session_id: str, agent_id: str
    ) -> AsyncGenerator[Message, None]:
        check_id("sessionId", session_id)
        check_id("agentId", agent_id)
        context = info.context
        live = _live(context)
        key = AgentKey(context.scope.tenant, session_id, agent_id)
        reader = MessagesUpdated(live, key)
        async for record in stream(live, key, context.caller_bucket, reader, _close_when_too_slow(context)):
            yield Message.from_record(record)

    @strawberry.subscription(
        description="A session's agents each time one is created or its state is written (a "
        "snapshot-backed agent's too, when its snapshot is stored)."
    )
    async def agent_updated(self, info: Info, session_id: str) -> AsyncGenerator[Agent, None]:
        check_id("sessionId", session_id)
        context = info.context
        live = _live(context)
        key = SessionKey(context.scope.tenant, session_id)
        reader = AgentsUpdated(live, key)
        async for record in stream(live, key, context.caller_bucket, reader, _close_when_too_slow(context)):
            yield Agent.from_record(record)

    @strawberry.subscription(
        description="New sessions, and new messages, that match the filter: for an overview page. "
        "In commit order within each session."
    )
    async def session_activity(
        self, info: Info, filter: ConversationFilter | None = None
    ) -> AsyncGenerator[SessionActivityType, None]:
        wanted = filter_of(filter)
        context = info.context
        live = _live(context)
        tenant = context.scope.tenant
        reader = SessionActivity(live, tenant, wanted)
        topic = (tenant,)
        async for activity in stream(
            live, topic, context.caller_bucket, reader, _close_when_too_slow(context)
        ):
            yield SessionActivityType.from_activity(activity)
