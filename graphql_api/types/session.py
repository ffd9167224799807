"""The Session type: a conversation container with its agents and multi-agents."""

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated

import strawberry

from db.conversations.reads import AgentsOfSessionKey
from db.records import AgentKey, MultiAgentKey, SessionRecord, record_of
from graphql_api.context import Info
from graphql_api.guards.arguments import check_id
from graphql_api.types.scalars import JSON
from graphql_api.types.session_type import SessionType
from graphql_api.types.totals import Totals
from graphql_api.types.windows import load_window

if TYPE_CHECKING:
    from graphql_api.types.agent import Agent
    from graphql_api.types.multi_agent import MultiAgent


@strawberry.type(description="A Strands session: the agents and multi-agents that share one session id.")
class Session:
    session_id: str
    tenant: str = strawberry.field(description="The tenant the session belongs to.")
    session_type: SessionType
    created_at: datetime
    updated_at: datetime = strawberry.field(
        description="Moves whenever anything inside the session is written."
    )
    labels: JSON = strawberry.field(
        description='Who and where the conversation belongs to, e.g. {"user": "ana"}.'
    )
    title: str | None
    last_activity_at: datetime = strawberry.field(
        description="When a message, agent or multi-agent of the session was last written."
    )
    totals: Totals = strawberry.field(description="What the session's messages add up to.")
    snapshot_backed: bool = strawberry.field(
        description="Written by Strands' SnapshotSessionManager through the storage API (GraphQLStorage)."
    )

    @classmethod
    def from_record(cls, record: SessionRecord) -> "Session":
        return record_of(
            cls,
            record,
            shared_only=True,
            session_type=SessionType(record.session_type),
            labels=JSON(record.labels),
            last_activity_at=record.last_activity_at or record.updated_at,
            totals=Totals.from_record(record.totals),
        )

    @strawberry.field(description="How many messages the session's agents have.")
    def message_count(self) -> int:
        return self.totals.messages

    @strawberry.field(
        description="The session's agents, oldest first. No limit returns all from offset (at most "
        "the server's largest list)."
    )
    async def agents(
        self, info: Info, offset: int = 0, limit: int | None = None
    ) -> list[Annotated["Agent", strawberry.lazy("graphql_api.types.agent")]]:
        from graphql_api.types.agent import Agent

        loaders, most = info.context.loaders, info.context.limits.max_list_size
        key = partial(AgentsOfSessionKey, self.tenant, self.session_id)
        records = await load_window(loaders.agents_of_session, key, offset, limit, most=most, what="agents")
        loaders.prime_agents(records)
        return [Agent.from_record(record) for record in records]

    @strawberry.field(description="One agent of the session, or null.")
    async def agent(
        self, info: Info, agent_id: str
    ) -> Annotated["Agent", strawberry.lazy("graphql_api.types.agent")] | None:
        from graphql_api.types.agent import Agent

        key = AgentKey(self.tenant, self.session_id, check_id("agentId", agent_id))
        record = await info.context.loaders.agent.load(key)
        return None if record is None else Agent.from_record(record)

    @strawberry.field(
        description="The session's multi-agent (Graph, Swarm) states, oldest first. No limit returns "
        "all from offset (at most the server's largest list)."
    )
    async def multi_agents(
        self, info: Info, offset: int = 0, limit: int | None = None
    ) -> list[Annotated["MultiAgent", strawberry.lazy("graphql_api.types.multi_agent")]]:
        from graphql_api.types.multi_agent import MultiAgent

        loaders, most = info.context.loaders, info.context.limits.max_list_size
        key = partial(AgentsOfSessionKey, self.tenant, self.session_id)
        loader = loaders.multi_agents_of_session
        records = await load_window(loader, key, offset, limit, most=most, what="multi-agents")
        loaders.prime_multi_agents(records)
        return [MultiAgent.from_record(record) for record in records]

    @strawberry.field(description="One multi-agent state of the session, or null.")
    async def multi_agent(
        self, info: Info, multi_agent_id: str
    ) -> Annotated["MultiAgent", strawberry.lazy("graphql_api.types.multi_agent")] | None:
        from graphql_api.types.multi_agent import MultiAgent

        key = MultiAgentKey(self.tenant, self.session_id, check_id("multiAgentId", multi_agent_id))
        record = await info.context.loaders.multi_agent.load(key)
        return None if record is None else MultiAgent.from_record(record)
