"""Admins' fields: API keys and the audit log of deletes and key changes."""

from functools import partial

import strawberry

from db.control import api_keys, audit
from graphql_api.auth.api_keys import check_label, issue_key
from graphql_api.auth.identity import check_tenant
from graphql_api.context import Context, Info
from graphql_api.errors import ForbiddenError
from graphql_api.guards.arguments import check_id, check_page_size, checked
from graphql_api.types.api_key import ApiKey, KeyRole, NewApiKey
from graphql_api.types.audit import AuditEventConnection, decode_audit_cursor


def listing_tenant(info: Info) -> str | None:
    """The tenant an admin listing reads: None for every tenant."""
    scope = info.context.scope
    return None if scope.all_tenants else scope.tenant


@strawberry.type
class AdminQuery:
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
            lambda conn: api_keys.list_keys(conn, tenant=tenant, include_revoked=include_revoked),
            idempotent=True,
        )
        return [ApiKey.from_record(record) for record in records]


@strawberry.type
class AdminMutation:
    @strawberry.mutation(
        description="Admins: make an API key. A tenant's admin makes keys of its own tenant only; a "
        "tenantless admin may make keys of any tenant, or tenantless ones (tenant omitted)."
    )
    async def create_api_key(
        self, info: Info, role: KeyRole, tenant: str | None = None, label: str | None = None
    ) -> NewApiKey:
        tenant = _key_tenant(info.context, tenant)
        if label is not None:
            checked("label", check_label, label)
        made, record = await issue_key(
            partial(info.context.write, transaction=True),
            role=role.role(),
            tenant=tenant,
            label=label,
            actor=info.context.actor,
        )
        return NewApiKey(key=made.token, api_key=ApiKey.from_record(record))

    @strawberry.mutation(description="Admins: revoke a key; every replica refuses it within seconds.")
    async def revoke_api_key(self, info: Info, label: str, tenant: str | None = None) -> ApiKey:
        tenant = _key_tenant(info.context, tenant)
        checked("label", check_label, label)
        actor = info.context.actor
        record = await info.context.write(
            lambda conn: api_keys.revoke_key(conn, label=label, tenant=tenant, actor=actor),
            transaction=True,
        )
        return ApiKey.from_record(record)


def _key_tenant(context: Context, requested: str | None) -> str | None:
    """The tenant a key command addresses: a tenant's admin only ever its own."""
    if requested is not None:
        checked("tenant", check_tenant, requested)
    own = context.caller.tenant
    if own is not None:
        if requested not in (None, own):
            raise ForbiddenError(f"these credentials manage the keys of tenant {own!r} only")
        return own
    if requested is not None:
        return requested
    return None if context.scope.all_tenants else context.scope.tenant
