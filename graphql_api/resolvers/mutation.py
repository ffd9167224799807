"""Root mutations: validate the arguments, call ``db.commands``, return the stored rows.

``db.errors`` raised here reach the client as NOT_FOUND, ALREADY_EXISTS, CONFLICT or
BAD_USER_INPUT through ``graphql_api.errors``.
"""

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from db import commands
from db.errors import NotFoundError
from db.records import MessageDraft, MessageRecord
from graphql_api.context import Info
from graphql_api.errors import InputError
from graphql_api.types.agent import Agent
from graphql_api.types.inputs import AgentInput, MessageInput, MultiAgentInput, SessionInput
from graphql_api.types.message import Message
from graphql_api.types.multi_agent import MultiAgent
from graphql_api.types.session import Session
from graphql_api.validation import check_id, check_message_id

MAX_APPEND = 1000


def _check_batch(messages: list[MessageInput]) -> list[MessageDraft]:
    if len(messages) > MAX_APPEND:
        raise InputError("messages", f"at most {MAX_APPEND} messages per call, got {len(messages)}")
    drafts = [m.to_draft(f"messages[{i}]") for i, m in enumerate(messages)]
    seen: set[int] = set()
    for i, draft in enumerate(drafts):
        if draft.message_id in seen:
            raise InputError(f"messages[{i}].messageId", f"repeats message id {draft.message_id}")
        seen.add(draft.message_id)
    return drafts


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a session. ALREADY_EXISTS if the id is taken.")
    async def create_session(self, info: Info, session: SessionInput) -> Session:
        draft = session.to_draft("session")
        record = await info.context.database_for_write().run(
            lambda conn: commands.create_session(conn, draft)
        )
        return Session.from_record(record)

    @strawberry.mutation(description="Delete a session with its agents, messages and multi-agents.")
    async def delete_session(self, info: Info, session_id: str) -> bool:
        check_id("sessionId", session_id)
        await info.context.database_for_write().run(lambda conn: commands.delete_session(conn, session_id))
        return True

    @strawberry.mutation(description="Create an agent in a session. NOT_FOUND if the session is missing.")
    async def create_agent(self, info: Info, session_id: str, agent: AgentInput) -> Agent:
        check_id("sessionId", session_id)
        draft = agent.to_draft("agent")
        record = await info.context.database_for_write().run(
            lambda conn: commands.create_agent(conn, session_id, draft)
        )
        return Agent.from_record(record)

    @strawberry.mutation(description="Replace an agent's states; its createdAt is kept.")
    async def update_agent(self, info: Info, session_id: str, agent: AgentInput) -> Agent:
        check_id("sessionId", session_id)
        draft = agent.to_draft("agent")
        record = await info.context.database_for_write().run(
            lambda conn: commands.update_agent(conn, session_id, draft)
        )
        return Agent.from_record(record)

    @strawberry.mutation(description="Delete an agent and its messages.")
    async def delete_agent(self, info: Info, session_id: str, agent_id: str) -> bool:
        check_id("sessionId", session_id)
        check_id("agentId", agent_id)
        await info.context.database_for_write().run(
            lambda conn: commands.delete_agent(conn, session_id, agent_id)
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
        draft = message.to_draft("message")
        # Storing equal content again succeeds, so a retry can never report a false error.
        (record,) = await info.context.database_for_write().run(
            lambda conn: commands.insert_messages(conn, session_id, agent_id, [draft]), idempotent=True
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
        drafts = _check_batch(messages)

        async def append(conn: AsyncConnection) -> list[MessageRecord]:
            if drafts:
                return await commands.insert_messages(conn, session_id, agent_id, drafts)
            if not await commands.agent_exists(conn, session_id, agent_id):
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
        draft = message.to_draft("message")
        record = await info.context.database_for_write().run(
            lambda conn: commands.update_message(conn, session_id, agent_id, draft)
        )
        return Message.from_record(record)

    @strawberry.mutation(description="Delete one message.")
    async def delete_message(self, info: Info, session_id: str, agent_id: str, message_id: int) -> bool:
        check_id("sessionId", session_id)
        check_id("agentId", agent_id)
        check_message_id("messageId", message_id)
        await info.context.database_for_write().run(
            lambda conn: commands.delete_message(conn, session_id, agent_id, message_id)
        )
        return True

    @strawberry.mutation(description="Store a Graph's or Swarm's state. NOT_FOUND if the session is missing.")
    async def create_multi_agent(
        self, info: Info, session_id: str, multi_agent: MultiAgentInput
    ) -> MultiAgent:
        check_id("sessionId", session_id)
        draft = multi_agent.to_draft("multiAgent")
        record = await info.context.database_for_write().run(
            lambda conn: commands.create_multi_agent(conn, session_id, draft)
        )
        return MultiAgent.from_record(record)

    @strawberry.mutation(description="Replace a multi-agent state; its createdAt is kept.")
    async def update_multi_agent(
        self, info: Info, session_id: str, multi_agent: MultiAgentInput
    ) -> MultiAgent:
        check_id("sessionId", session_id)
        draft = multi_agent.to_draft("multiAgent")
        record = await info.context.database_for_write().run(
            lambda conn: commands.update_multi_agent(conn, session_id, draft)
        )
        return MultiAgent.from_record(record)

    @strawberry.mutation(description="Delete a multi-agent state.")
    async def delete_multi_agent(self, info: Info, session_id: str, multi_agent_id: str) -> bool:
        check_id("sessionId", session_id)
        check_id("multiAgentId", multi_agent_id)
        await info.context.database_for_write().run(
            lambda conn: commands.delete_multi_agent(conn, session_id, multi_agent_id)
        )
        return True
