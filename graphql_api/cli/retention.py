"""``session-graphql retention [--dry-run]``: the sessions retention deletes, straight in the database.

``--dry-run`` says, per tenant, its rule and what a pass would delete now. Without it, one pass runs
at once, under the same advisory lock as the replicas' background pass (so never beside one).
"""

import time

from db.control import retention
from db.conversations.bulk_deletes import Deleted
from db.engine import Database
from db.records import Actor
from db.startup import StartupError
from graphql_api.auth.identity import check_tenant
from graphql_api.cli.tokens import run_on
from graphql_api.settings import RetentionSettings

OPERATOR = Actor(name="session-graphql retention", role="admin")


def _rule(rule: retention.RetentionRule, default_keep_days: int | None) -> str:
    kept = "kept" if rule.keep_days is None else f"{rule.keep_days} days"
    if rule.own:
        return f"{kept} (its own rule)"
    return f"{kept} (the default)" if default_keep_days is not None else "kept (no default is set)"


def _deleted(deleted: Deleted) -> str:
    return f"{deleted.sessions} sessions ({deleted.messages} messages)"


def dry_run(url: str, settings: RetentionSettings, tenant: str | None) -> list[str]:
    if tenant is not None:
        try:
            check_tenant(tenant)
        except ValueError as error:
            raise StartupError(str(error)) from None
    default = settings.default_keep_days

    async def work(database: Database) -> list[tuple[retention.RetentionRule, Deleted]]:
        return await database.run(lambda conn: retention.would_expire(conn, default, tenant), idempotent=True)

    found = run_on(url, work)
    if not found:
        return ["retention --dry-run: no tenant has sessions or a rule"]
    return [
        f"{rule.tenant}: {_rule(rule, default)}: {_deleted(deleted)} would be deleted"
        for rule, deleted in found
    ]


def run_pass(url: str, settings: RetentionSettings) -> list[str]:
    async def work(database: Database) -> dict[str, Deleted] | None:
        return await retention.expire(
            database, settings.default_keep_days, batch_size=settings.batch_size, actor=OPERATOR
        )

    started = time.perf_counter()
    found = run_on(url, work)
    if found is None:
        raise StartupError("a retention pass is running already (a replica holds its lock); try again later")
    total = sum(found.values(), Deleted())
    lines = [f"retention: deleted {_deleted(total)} in {time.perf_counter() - started:.1f} s"]
    return lines + [f"{tenant}: {_deleted(deleted)}" for tenant, deleted in sorted(found.items())]
