"""Root queries: look-ups by id, the session list, and (for admins) keys and the audit log.

Look-ups by id address the caller's tenant (``info.context.scope``); nested fields then follow
the tenant of the row they hang from.
"""

import strawberry

from db import audit, keys
from graphql_api.context import Info
from graphql_api.resolvers.analytics import AnalyticsQuery
from graphql_api.resolvers.storage import StorageQuery
from graphql_api.types.agent import Agent
from graphql_api.types.api_key import ApiKey
from graphql_api.types.audit import AuditEventConnection, decode_audit_cursor
from graphql_api.types.message import Message
from graphql_api.types.multi_agent import MultiAgent
from graphql_api.types.session import Session
from graphql_api.validation import check_id, check_message_id, check_page_size


def listing_tenant(info: Info) -> str | None:
    """The tenant an admin listing reads: None for every tenant."""
    scope = info.context.scope
    return None if scope.all_tenants else scope.tenant


@strawberry.type
class LookupQuery:
    @strawberry.field(description="A session by id, or null.")
    async def session(self, info: Info, session_id: str) -> Session | None:
        key = (info.context.scope.tenant, check_id("sessionId", session_id))
        record = await info.context.loaders.session.load(key)
        return None if record is None else Session.from_record(record)

    @strawberry.field(description="An agent by session and agent id, or null.")
    async def agent(self, info: Info, session_id: str, agent_id: str) -> Agent | None:
        key = (info.context.scope.tenant, check_id("sessionId", session_id), check_id("agentId", agent_id))
        record = await info.context.loaders.agent.load(key)
        return None if record is None else Agent.from_record(record)

    @strawberry.field(description="A message by session, agent and message id, or null.")
    async def message(self, info: Info, session_id: str, agent_id: str, message_id: int) -> Message | None:
        key = (
            info.context.scope.tenant,
            check_id("sessionId", session_id),
            check_id("agentId", agent_id),
            check_message_id("messageId", message_id),
        )
        record = await info.context.loaders.message.load(key)
        return None if record is None else Message.from_record(record)

    @strawberry.field(description="A multi-agent state by session and multi-agent id, or null.")
    async def multi_agent(self, info: Info, session_id: str, multi_agent_id: str) -> MultiAgent | None:
        key = (
            info.context.scope.tenant,
            check_id("sessionId", session_id),
            check_id("multiAgentId", multi_agent_id),
        )
        record = await info.context.loaders.multi_agent.load(key)
        return None if record is None else MultiAgent.from_record(record)

    @strawberry.field(description="Admins: deletes and key changes, newest first.")
    async def audit_events(
        self,
        info: Info,
        first: int = 50,
        after: str | None = None,
        action: str | None = None,
        session_id: str | None = None,
    ) -> AuditEventConnection:
        check_page_size("first", first, info.context.limits.max_page_size)
        position = None if after is None else decode_audit_cursor("after", after)
        if action is not None:
            check_id("action", action)
        if session_id is not None:
            check_id("sessionId", session_id)
        tenant = listing_tenant(info)
        records = await info.context.db.run(
            lambda conn: audit.list_events(
                conn, tenant=tenant, first=first, after=position, action=action, session_id=session_id
            ),
            idempotent=True,
        )
        return AuditEventConnection.from_records(records, first)

    @strawberry.field(description="Admins: the API keys of their tenant (all of them for tenantless admins).")
    async def api_keys(self, info: Info, include_revoked: bool = False) -> list[ApiKey]:
        tenant = listing_tenant(info)
        records = await info.context.db.run(
            lambda conn: keys.list_keys(conn, tenant=tenant, include_revoked=include_revoked), idempotent=True
        )
        return [ApiKey.from_record(record) for record in records]


@strawberry.type
class Query(LookupQuery, AnalyticsQuery, StorageQuery):
    """Look-ups by id, the admin fields, and the listings, search and statistics of analytics."""
