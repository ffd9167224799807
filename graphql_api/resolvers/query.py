"""Root queries: look-ups by id and the session list."""

import strawberry

from db import queries
from graphql_api.context import Info
from graphql_api.types.agent import Agent
from graphql_api.types.message import Message
from graphql_api.types.multi_agent import MultiAgent
from graphql_api.types.pagination import SessionConnection, decode_session_cursor
from graphql_api.types.session import Session
from graphql_api.validation import check_id, check_message_id, check_page_size


@strawberry.type
class Query:
    @strawberry.field(description="A session by id, or null.")
    async def session(self, info: Info, session_id: str) -> Session | None:
        record = await info.context.loaders.session.load(check_id("sessionId", session_id))
        return None if record is None else Session.from_record(record)

    @strawberry.field(description="Sessions, newest first, as a cursor connection.")
    async def sessions(self, info: Info, first: int = 20, after: str | None = None) -> SessionConnection:
        check_page_size("first", first)
        position = None if after is None else decode_session_cursor("after", after)
        records = await info.context.db.run(
            lambda conn: queries.list_sessions_page(conn, first, position), idempotent=True
        )
        info.context.loaders.prime_sessions(records)
        return SessionConnection.from_records(records, first)

    @strawberry.field(description="An agent by session and agent id, or null.")
    async def agent(self, info: Info, session_id: str, agent_id: str) -> Agent | None:
        key = (check_id("sessionId", session_id), check_id("agentId", agent_id))
        record = await info.context.loaders.agent.load(key)
        return None if record is None else Agent.from_record(record)

    @strawberry.field(description="A message by session, agent and message id, or null.")
    async def message(self, info: Info, session_id: str, agent_id: str, message_id: int) -> Message | None:
        key = (
            check_id("sessionId", session_id),
            check_id("agentId", agent_id),
            check_message_id("messageId", message_id),
        )
        record = await info.context.loaders.message.load(key)
        return None if record is None else Message.from_record(record)

    @strawberry.field(description="A multi-agent state by session and multi-agent id, or null.")
    async def multi_agent(self, info: Info, session_id: str, multi_agent_id: str) -> MultiAgent | None:
        key = (check_id("sessionId", session_id), check_id("multiAgentId", multi_agent_id))
        record = await info.context.loaders.multi_agent.load(key)
        return None if record is None else MultiAgent.from_record(record)
