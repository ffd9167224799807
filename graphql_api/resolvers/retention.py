"""Admins' fields for deleting sessions in bulk: tenants' retention rules and erasure."""

from datetime import datetime
from typing import Any

import strawberry

from db.analytics import filters as stored
from db.control import retention
from db.conversations import bulk_deletes
from graphql_api.auth.identity import check_tenant
from graphql_api.context import Context, Info
from graphql_api.errors import ForbiddenError, InputError
from graphql_api.guards.arguments import checked
from graphql_api.resolvers.admin import listing_tenant
from graphql_api.settings import MOST_KEEP_DAYS
from graphql_api.types.filters import ConversationFilter
from graphql_api.types.retention import RetentionRule, SessionsDeleted


@strawberry.type
class RetentionQuery:
    @strawberry.field(
        description="Admins: each tenant's retention rule (its own, or the server's default); a "
        "tenant's admin sees its own tenant's, a tenantless admin every tenant's with sessions or a rule."
    )
    async def retention_rules(self, info: Info, tenant: str | None = None) -> list[RetentionRule]:
        named = _rule_tenant(info.context, tenant) if tenant is not None else listing_tenant(info)
        default = info.context.retention.default_keep_days
        rules = await info.context.db.run(lambda conn: retention.rules(conn, default, named), idempotent=True)
        return [RetentionRule.from_record(rule) for rule in rules]


@strawberry.type
class RetentionMutation:
    @strawberry.mutation(
        description="Admins: give a tenant its own retention rule: sessions idle longer than keepDays "
        "days are deleted (0: kept, whatever the default). A tenant's admin sets its own tenant's."
    )
    async def set_retention_rule(
        self, info: Info, keep_days: int, tenant: str | None = None
    ) -> RetentionRule:
        if not 0 <= keep_days <= MOST_KEEP_DAYS:
            raise InputError("keepDays", f"must be between 0 and {MOST_KEEP_DAYS}, not {keep_days}")
        named = _rule_tenant(info.context, tenant)
        actor = info.context.actor
        rule = await info.context.write(
            lambda conn: retention.set_rule(conn, named, keep_days, actor), transaction=True
        )
        return RetentionRule.from_record(rule)

    @strawberry.mutation(
        description="Admins: take a tenant back to the server's default rule; false if it had none "
        "of its own."
    )
    async def remove_retention_rule(self, info: Info, tenant: str | None = None) -> bool:
        named = _rule_tenant(info.context, tenant)
        actor = info.context.actor
        return await info.context.write(
            lambda conn: retention.remove_rule(conn, named, actor), transaction=True
        )

    @strawberry.mutation(
        description="Admins: delete every session sessions(filter:) lists, with everything in it and "
        'its storage objects (a right-to-erasure request: filter: {labels: {user: "ana"}}). A message '
        "condition deletes the whole sessions having such a message. Audited with its filter, in "
        "batches that never hold agents' writes for long. dryRun: count only, change nothing. A filter "
        "that names nothing ({}) is refused."
    )
    async def delete_sessions(
        self, info: Info, filter: ConversationFilter, dry_run: bool = False
    ) -> SessionsDeleted:
        wanted = filter.to_db()
        if wanted == stored.EVERYTHING:
            raise InputError("filter", "names no condition; deleting every session is refused")
        context = info.context
        if dry_run:
            counted = await bulk_deletes.count_sessions(context.primary, context.scope, wanted)
            return SessionsDeleted.from_record(counted)
        deleted = await context.write_in_batches(
            lambda primary: bulk_deletes.delete_sessions(
                primary,
                context.scope,
                wanted,
                most=context.retention.batch_size,
                actor=context.actor,
                filter_given=_described(wanted),
            )
        )
        return SessionsDeleted.from_record(deleted)


def _rule_tenant(context: Context, requested: str | None) -> str:
    """The tenant a rule command addresses: a tenant's admin only ever its own; a tenantless admin
    the one it names (argument, else X-Tenant)."""
    if requested is not None:
        checked("tenant", check_tenant, requested)
    own = context.caller.tenant
    if own is not None:
        if requested not in (None, own):
            raise ForbiddenError(f"these credentials manage the retention of tenant {own!r} only")
        return own
    if requested is not None:
        return requested
    if context.scope.all_tenants:
        raise InputError("tenant", "name the tenant (the argument, or the X-Tenant header)")
    return context.scope.tenant


def _described(f: stored.ConversationFilter) -> dict[str, Any]:
    """The filter as the audit log keeps it: its conditions, in the API's names."""
    found: dict[str, Any] = {}
    for name in f.__dataclass_fields__:
        value = getattr(f, name)
        if isinstance(value, stored.TimeRange):
            value = {
                end: at.isoformat()
                for end, at in (("start", value.start), ("end", value.end))
                if isinstance(at, datetime)
            } or None
        elif name == "labels":
            value = dict(value) or None
        if value is not None:
            camel = name.split("_")[0] + "".join(part.title() for part in name.split("_")[1:])
            found[camel] = value
    return found
