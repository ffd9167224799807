"""Root mutations: validate the arguments, call ``db.commands``, return the stored rows.

Writes go to the caller's tenant (``info.context.scope.tenant``). ``db.errors`` raised here reach
the client as NOT_FOUND, ALREADY_EXISTS, CONFLICT or BAD_USER_INPUT through ``graphql_api.errors``.
Who may call which mutation is decided before any of them runs, in ``graphql_api.access``.
"""

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from db import commands, message_writes
from db import keys as stored_keys
from db.errors import NotFoundError
from db.records import MessageDraft, MessageRecord
from graphql_api.api_keys import check_label, issue_key
from graphql_api.context import Context, Info
from graphql_api.errors import ErrorCode, ForbiddenError, InputError, LimitError
from graphql_api.identity import check_tenant
from graphql_api.resolvers.storage import StorageMutation
from graphql_api.types.agent import Agent
from graphql_api.types.api_key import ApiKey, KeyRole, NewApiKey
from graphql_api.types.filters import check_labels
from graphql_api.types.inputs import AgentInput, MessageInput, MultiAgentInput, SessionInput, check_title
from graphql_api.types.message import Message
from graphql_api.types.multi_agent import MultiAgent
from graphql_api.types.scalars import JSON
from graphql_api.types.session import Session
from graphql_api.validation import check_id, check_message_id


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


@strawberry.type
class Mutation(StorageMutation):
    @strawberry.mutation(description="Create a session. ALREADY_EXISTS if the id is taken.")
    async def create_session(self, info: Info, session: SessionInput) -> Session:
        draft = session.to_draft("session")
        scope = info.context.scope
        record = await info.context.database_for_write().run(
            lambda conn: commands.create_session(conn, scope, draft)
        )
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
        record = await info.context.database_for_write().run(
            lambda conn: commands.update_session(conn, scope, session_id, changes)
        )
        return Session.from_record(record)

    @strawberry.mutation(
        description="Delete a session with its agents, messages, multi-agents and storage objects."
    )
    async def delete_session(self, info: Info, session_id: str) -> bool:
        check_id("sessionId", session_id)
        scope, actor = info.context.scope, info.context.actor
        await info.context.database_for_write().run_in_transaction(
            lambda conn: commands.delete_session(conn, scope, session_id, actor)
        )
        return True

    @strawberry.mutation(description="Create an agent in a session. NOT_FOUND if the session is missing.")
    async def create_agent(self, info: Info, session_id: str, agent: AgentInput) -> Agent:
        check_id("sessionId", session_id)
        draft = agent.to_draft("agent", info.context.limits)
        scope = info.context.scope
        record = await info.context.database_for_write().run(
            lambda conn: commands.create_agent(conn, scope, session_id, draft)
        )
        return Agent.from_record(record)

    @strawberry.mutation(description="Replace an agent's states; its createdAt is kept.")
    async def update_agent(self, info: Info, session_id: str, agent: AgentInput) -> Agent:
        check_id("sessionId", session_id)
        draft = agent.to_draft("agent", info.context.limits)
        scope = info.context.scope
        record = await info.context.database_for_write().run(
            lambda conn: commands.update_agent(conn, scope, session_id, draft)
        )
        return Agent.from_record(record)

    @strawberry.mutation(description="Delete an agent and its messages.")
    async def delete_agent(self, info: Info, session_id: str, agent_id: str) -> bool:
        check_id("sessionId", session_id)
        check_id("agentId", agent_id)
        scope, actor = info.context.scope, info.context.actor
        await info.context.database_for_write().run(
            lambda conn: commands.delete_agent(conn, scope, session_id, agent_id, actor)
        )
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
        (record,) = await info.context.database_for_write().run(
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

        records = await info.context.database_for_write().run_in_transaction(append, idempotent=True)
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
        record = await info.context.database_for_write().run_in_transaction(
            lambda conn: message_writes.update_message(conn, scope, session_id, agent_id, draft)
        )
        return Message.from_record(record)

    @strawberry.mutation(description="Delete one message.")
    async def delete_message(self, info: Info, session_id: str, agent_id: str, message_id: int) -> bool:
        check_id("sessionId", session_id)
        check_id("agentId", agent_id)
        check_message_id("messageId", message_id)
        scope, actor = info.context.scope, info.context.actor
        await info.context.database_for_write().run_in_transaction(
            lambda conn: message_writes.delete_message(conn, scope, session_id, agent_id, message_id, actor)
        )
        return True

    @strawberry.mutation(description="Store a Graph's or Swarm's state. NOT_FOUND if the session is missing.")
    async def create_multi_agent(
        self, info: Info, session_id: str, multi_agent: MultiAgentInput
    ) -> MultiAgent:
        check_id("sessionId", session_id)
        draft = multi_agent.to_draft("multiAgent", info.context.limits)
        scope = info.context.scope
        record = await info.context.database_for_write().run(
            lambda conn: commands.create_multi_agent(conn, scope, session_id, draft)
        )
        return MultiAgent.from_record(record)

    @strawberry.mutation(description="Replace a multi-agent state; its createdAt is kept.")
    async def update_multi_agent(
        self, info: Info, session_id: str, multi_agent: MultiAgentInput
    ) -> MultiAgent:
        check_id("sessionId", session_id)
        draft = multi_agent.to_draft("multiAgent", info.context.limits)
        scope = info.context.scope
        record = await info.context.database_for_write().run(
            lambda conn: commands.update_multi_agent(conn, scope, session_id, draft)
        )
        return MultiAgent.from_record(record)

    @strawberry.mutation(description="Delete a multi-agent state.")
    async def delete_multi_agent(self, info: Info, session_id: str, multi_agent_id: str) -> bool:
        check_id("sessionId", session_id)
        check_id("multiAgentId", multi_agent_id)
        scope, actor = info.context.scope, info.context.actor
        await info.context.database_for_write().run(
            lambda conn: commands.delete_multi_agent(conn, scope, session_id, multi_agent_id, actor)
        )
        return True

    @strawberry.mutation(
        description="Admins: make an API key. A tenant's admin makes keys of its own tenant only; a "
        "tenantless admin may make keys of any tenant, or tenantless ones (tenant omitted)."
    )
    async def create_api_key(
        self, info: Info, role: KeyRole, tenant: str | None = None, label: str | None = None
    ) -> NewApiKey:
        tenant = _key_tenant(info.context, tenant)
        try:
            made, record = await issue_key(
                info.context.database_for_write(),
                role=role.role(),
                tenant=tenant,
                label=label,
                actor=info.context.actor,
            )
        except ValueError as error:
            raise InputError("label", str(error)) from None
        return NewApiKey(key=made.token, api_key=ApiKey.from_record(record))

    @strawberry.mutation(description="Admins: revoke a key; every replica refuses it within seconds.")
    async def revoke_api_key(self, info: Info, label: str, tenant: str | None = None) -> ApiKey:
        tenant = _key_tenant(info.context, tenant)
        try:
            check_label(label)
        except ValueError as error:
            raise InputError("label", str(error)) from None
        actor = info.context.actor
        record = await info.context.database_for_write().run_in_transaction(
            lambda conn: stored_keys.revoke_key(conn, label=label, tenant=tenant, actor=actor)
        )
        return ApiKey.from_record(record)


def _key_tenant(context: Context, requested: str | None) -> str | None:
    """The tenant a key command addresses: a tenant's admin only ever its own."""
    if requested is not None:
        try:
            check_tenant(requested)
        except ValueError as error:
            raise InputError("tenant", str(error)) from None
    own = context.caller.tenant
    if own is not None:
        if requested not in (None, own):
            raise ForbiddenError(f"these credentials manage the keys of tenant {own!r} only")
        return own
    if requested is not None:
        return requested
    return None if context.scope.all_tenants else context.scope.tenant
