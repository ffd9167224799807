"""Sessions, agents, messages and multi-agents: look-ups by id, and the writes of Strands' repository.

Look-ups and writes address the caller's tenant (``info.context.scope``); nested fields then follow
the tenant of the row they hang from. ``db.errors`` raised by a write reach the client as NOT_FOUND,
ALREADY_EXISTS, CONFLICT or BAD_USER_INPUT through ``graphql_api.errors``; who may call which field
is decided before any of them runs (``graphql_api.auth.permissions``).
"""

from collections.abc import Awaitable, Callable
from datetime import datetime

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from db.conversations import message_writes, writes
from db.errors import NotFoundError
from db.records import (
    AgentDraft,
    AgentKey,
    AgentRecord,
    MessageDraft,
    MessageKey,
    MessageRecord,
    MultiAgentDraft,
    MultiAgentKey,
    MultiAgentRecord,
    SessionKey,
)
from db.tenancy import Scope
from graphql_api.context import Context, Info
from graphql_api.errors import ErrorCode, InputError, LimitError
from graphql_api.guards.arguments import check_id, check_message_id
from graphql_api.types.agent import Agent
from graphql_api.types.filters import check_labels
from graphql_api.types.inputs import (
    AgentActivityInput,
    AgentInput,
    MessageInput,
    MultiAgentInput,
    SessionInput,
    check_title,
)
from graphql_api.types.message import Message
from graphql_api.types.multi_agent import MultiAgent
from graphql_api.types.scalars import JSON
from graphql_api.types.session import Session


@strawberry.type
class ConversationQuery:
    @strawberry.field(description="A session by id, or null.")
    async def session(self, info: Info, session_id: str) -> Session | None:
        key = SessionKey(info.context.scope.tenant, check_id("sessionId", session_id))
        record = await info.context.loaders.session.load(key)
        return None if record is None else Session.from_record(record)

    @strawberry.field(description="An agent by session and agent id, or null.")
    async def agent(self, info: Info, session_id: str, agent_id: str) -> Agent | None:
        tenant = info.context.scope.tenant
        key = AgentKey(tenant, check_id("sessionId", session_id), check_id("agentId", agent_id))
        record = await info.context.loaders.agent.load(key)
        return None if record is None else Agent.from_record(record)

    @strawberry.field(description="A message by session, agent and message id, or null.")
    async def message(self, info: Info, session_id: str, agent_id: str, message_id: int) -> Message | None:
        key = MessageKey(
            info.context.scope.tenant,
            check_id("sessionId", session_id),
            check_id("agentId", agent_id),
            check_message_id("messageId", message_id),
        )
        record = await info.context.loaders.load_message(key)
        return None if record is None else Message.from_record(record)

    @strawberry.field(description="A multi-agent state by session and multi-agent id, or null.")
    async def multi_agent(self, info: Info, session_id: str, multi_agent_id: str) -> MultiAgent | None:
        key = MultiAgentKey(
            info.context.scope.tenant,
            check_id("sessionId", session_id),
            check_id("multiAgentId", multi_agent_id),
        )
        record = await info.context.loaders.multi_agent.load(key)
        return None if record is None else MultiAgent.from_record(record)


def _message_draft(context: Context, field: str, message: MessageInput) -> MessageDraft:
    return message.to_draft(field, context.limits)


def _check_batch(context: Context, messages: list[MessageInput]) -> list[MessageDraft]:
    most = context.limits.max_batch
    if len(messages) > most:
        raise LimitError(
            ErrorCode.BATCH_TOO_LARGE,
            f"messages: at most {most} messages per call, got {len(messages)}",
            "messages",
        )
    drafts = [_message_draft(context, f"messages[{i}]", m) for i, m in enumerate(messages)]
    seen: set[int] = set()
    for i, draft in enumerate(drafts):
        if draft.message_id in seen:
            raise InputError(f"messages[{i}].messageId", f"repeats message id {draft.message_id}")
        seen.add(draft.message_id)
    return drafts


AgentWrite = Callable[[AsyncConnection, Scope, str, AgentDraft], Awaitable[AgentRecord]]
MultiAgentWrite = Callable[[AsyncConnection, Scope, str, MultiAgentDraft], Awaitable[MultiAgentRecord]]


async def _agent_write(info: Info, write: AgentWrite, session_id: str, agent: AgentInput) -> AgentRecord:
    """An agent's create or update: its checks, then the write."""
    check_id("sessionId", session_id)
    draft, scope = agent.to_draft("agent", info.context.limits), info.context.scope
    return await info.context.write(lambda conn: write(conn, scope, session_id, draft))


async def _multi_agent_write(
    info: Info, write: MultiAgentWrite, session_id: str, multi_agent: MultiAgentInput
) -> MultiAgentRecord:
    """A multi-agent state's create or update: its checks, then the write."""
    check_id("sessionId", session_id)
    draft, scope = multi_agent.to_draft("multiAgent", info.context.limits), info.context.scope
    return await info.context.write(lambda conn: write(conn, scope, session_id, draft))


@strawberry.type
class ConversationMutation:
    @strawberry.mutation(description="Create a session. ALREADY_EXISTS if the id is taken.")
    async def create_session(self, info: Info, session: SessionInput) -> Session:
        draft = session.to_draft("session")
        scope = info.context.scope
        record = await info.context.write(lambda conn: writes.create_session(conn, scope, draft))
        return Session.from_record(record)

    @strawberry.mutation(
        description='Set a session\'s labels (replacing them all; {} removes them) and/or title ("" '
        "removes it); what is left out stays. Its updatedAt moves, its lastActivityAt (the "
        "conversation's) does not."
    )
    async def update_session(
        self, info: Info, session_id: str, labels: JSON | None = None, title: str | None = None
    ) -> Session:
        check_id("sessionId", session_id)
        changes: dict[str, object] = {}
        if labels is not None:
            changes["labels"] = check_labels("labels", labels)
        if title is not None:
            changes["title"] = check_title("title", title) or None
        scope = info.context.scope
        record = await info.context.write(
            lambda conn: writes.update_session(conn, scope, session_id, changes)
        )
        return Session.from_record(record)

    @strawberry.mutation(
        description="Delete a session with its agents, messages, multi-agents and storage objects."
    )
    async def delete_session(self, info: Info, session_id: str) -> bool:
        check_id("sessionId", session_id)
        scope, actor = info.context.scope, info.context.actor
        await info.context.write(
            lambda conn: writes.delete_session(conn, scope, session_id, actor),
            transaction=True,
        )
        return True

    @strawberry.mutation(
        description="Admins, restoring an export: set a session's updatedAt and lastActivityAt, and "
        "its agents' lastActivityAt, to the times given (every write moves them to its own time)."
    )
    async def restore_session_times(
        self,
        info: Info,
        session_id: str,
        updated_at: datetime,
        last_activity_at: datetime,
        agents: list[AgentActivityInput] | None = None,
    ) -> Session:
        check_id("sessionId", session_id)
        if agents is not None and len(agents) > info.context.limits.max_batch:
            most = info.context.limits.max_batch
            raise LimitError(ErrorCode.BATCH_TOO_LARGE, f"agents: at most {most} per call", "agents")
        activity = {
            check_id(f"agents[{i}].agentId", a.agent_id): a.last_activity_at
            for i, a in enumerate(agents or [])
        }
        scope = info.context.scope
        record = await info.context.write(
            lambda conn: writes.restore_session_times(
                conn, scope, session_id, updated_at, last_activity_at, activity
            ),
            transaction=True,
        )
        return Session.from_record(record)

    @strawberry.mutation(description="Create an agent in a session. NOT_FOUND if the session is missing.")
    async def create_agent(self, info: Info, session_id: str, agent: AgentInput) -> Agent:
        return Agent.from_record(await _agent_write(info, writes.create_agent, session_id, agent))

    @strawberry.mutation(description="Replace an agent's states; its createdAt is kept.")
    async def update_agent(self, info: Info, session_id: str, agent: AgentInput) -> Agent:
        return Agent.from_record(await _agent_write(info, writes.update_agent, session_id, agent))

    @strawberry.mutation(description="Delete an agent and its messages.")
    async def delete_agent(self, info: Info, session_id: str, agent_id: str) -> bool:
        check_id("sessionId", session_id)
        check_id("agentId", agent_id)
        scope, actor = info.context.scope, info.context.actor
        await info.context.write(lambda conn: writes.delete_agent(conn, scope, session_id, agent_id, actor))
        return True

    @strawberry.mutation(
        description="Store one message. Resending a stored message with equal content succeeds "
        "(safe to retry); different content under the same messageId is a CONFLICT."
    )
    async def create_message(
        self, info: Info, session_id: str, agent_id: str, message: MessageInput
    ) -> Message:
        check_id("sessionId", session_id)
        check_id("agentId", agent_id)
        draft = _message_draft(info.context, "message", message)
        scope = info.context.scope
        # Storing equal content again succeeds, so a retry can never report a false error.
        (record,) = await info.context.write(
            lambda conn: message_writes.insert_messages(conn, scope, session_id, agent_id, [draft]),
            idempotent=True,
        )
        return Message.from_record(record)

    @strawberry.mutation(
        description="Store many messages of one agent in one transaction: all of them or none. "
        "Each follows createMessage's rules."
    )
    async def append_messages(
        self, info: Info, session_id: str, agent_id: str, messages: list[MessageInput]
    ) -> list[Message]:
        check_id("sessionId", session_id)
        check_id("agentId", agent_id)
        drafts = _check_batch(info.context, messages)
        scope = info.context.scope

        async def append(conn: AsyncConnection) -> list[MessageRecord]:
            if drafts:
                return await message_writes.insert_messages(conn, scope, session_id, agent_id, drafts)
            if not await message_writes.agent_exists(conn, scope, session_id, agent_id):
                raise NotFoundError(f"agent {agent_id!r} not found in session {session_id!r}")
            return []

        records = await info.context.write(append, transaction=True, idempotent=True)
        return [Message.from_record(record) for record in records]

    @strawberry.mutation(
        description="Replace a message's content (a guardrail redaction); createdAt is kept."
    )
    async def update_message(
        self, info: Info, session_id: str, agent_id: str, message: MessageInput
    ) -> Message:
        check_id("sessionId", session_id)
        check_id("agentId", agent_id)
        draft = _message_draft(info.context, "message", message)
        scope = info.context.scope
        record = await info.context.write(
            lambda conn: message_writes.update_message(conn, scope, session_id, agent_id, draft),
            transaction=True,
        )
        return Message.from_record(record)

    @strawberry.mutation(description="Delete one message.")
    async def delete_message(self, info: Info, session_id: str, agent_id: str, message_id: int) -> bool:
        check_id("sessionId", session_id)
        check_id("agentId", agent_id)
        check_message_id("messageId", message_id)
        scope, actor = info.context.scope, info.context.actor
        await info.context.write(
            lambda conn: message_writes.delete_message(conn, scope, session_id, agent_id, message_id, actor),
            transaction=True,
        )
        return True

    @strawberry.mutation(description="Store a Graph's or Swarm's state. NOT_FOUND if the session is missing.")
    async def create_multi_agent(
        self, info: Info, session_id: str, multi_agent: MultiAgentInput
    ) -> MultiAgent:
        record = await _multi_agent_write(info, writes.create_multi_agent, session_id, multi_agent)
        return MultiAgent.from_record(record)

    @strawberry.mutation(description="Replace a multi-agent state; its createdAt is kept.")
    async def update_multi_agent(
        self, info: Info, session_id: str, multi_agent: MultiAgentInput
    ) -> MultiAgent:
        record = await _multi_agent_write(info, writes.update_multi_agent, session_id, multi_agent)
        return MultiAgent.from_record(record)

    @strawberry.mutation(description="Delete a multi-agent state.")
    async def delete_multi_agent(self, info: Info, session_id: str, multi_agent_id: str) -> bool:
        check_id("sessionId", session_id)
        check_id("multiAgentId", multi_agent_id)
        scope, actor = info.context.scope, info.context.actor
        await info.context.write(
            lambda conn: writes.delete_multi_agent(conn, scope, session_id, multi_agent_id, actor)
        )
        return True
