"""Retention: each tenant's rule for how long idle sessions are kept, and the pass that applies them.

A tenant's own rule (``retention_rules``, set by an admin) wins over the server's default
(``SESSION_GRAPHQL_RETENTION_DAYS``); a rule of 0 days keeps the tenant's sessions whatever the
default. A session whose last activity is older than its tenant's rule is deleted by a pass
(``expire``), in batches (``db.conversations.bulk_deletes``), one replica at a time: the pass
holds ``RETENTION_LOCK``, a session-level advisory lock, from its first batch to its last.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.control.audit import record_event
from db.conversations.bulk_deletes import Deleted, add_up, count_matching, delete_batch, is_busy
from db.engine import Database
from db.models import retention_rules, sessions
from db.records import Actor

RETENTION_LOCK = 7_283_916_402
"""The advisory lock a retention pass holds: one replica deletes expired sessions at a time."""
MOST_BUSY_BATCHES = 20
"""Batches in a row that may give up on agents' locks before the pass leaves the rest for the next one."""


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """The rule a tenant's sessions follow."""

    tenant: str
    keep_days: int | None
    """Sessions idle longer are deleted; None: kept."""
    own: bool
    """Set for this tenant by an admin (else: the server's default)."""
    updated_at: datetime | None = None
    updated_by: str | None = None


async def own_rules(conn: AsyncConnection, tenant: str | None = None) -> dict[str, RetentionRule]:
    """The rules admins set: ``tenant``'s, or every tenant's (None)."""
    stmt = select(retention_rules)
    if tenant is not None:
        stmt = stmt.where(retention_rules.c.tenant == tenant)
    return {
        row.tenant: RetentionRule(row.tenant, row.keep_days or None, True, row.updated_at, row.updated_by)
        for row in await conn.execute(stmt)
    }


async def _tenants_with_sessions(conn: AsyncConnection) -> list[str]:
    # A loose index scan: one index probe per tenant, not a read of every session.
    found = await conn.execute(
        text(
            "WITH RECURSIVE t AS ("
            " SELECT min(tenant) AS tenant FROM sessions"
            " UNION ALL SELECT (SELECT min(tenant) FROM sessions WHERE tenant > t.tenant) FROM t"
            " WHERE t.tenant IS NOT NULL"
            ") SELECT tenant FROM t WHERE tenant IS NOT NULL"
        )
    )
    return [row.tenant for row in found]


async def rules(
    conn: AsyncConnection, default_keep_days: int | None, tenant: str | None
) -> list[RetentionRule]:
    """The rule of ``tenant``, or of every tenant with sessions or a rule of its own (None)."""
    own = await own_rules(conn, tenant)
    tenants = [tenant] if tenant is not None else sorted(set(own) | set(await _tenants_with_sessions(conn)))
    return [own.get(name) or RetentionRule(name, default_keep_days, False) for name in tenants]


async def set_rule(conn: AsyncConnection, tenant: str, keep_days: int, actor: Actor) -> RetentionRule:
    """Gives ``tenant`` its own rule (0: keep its sessions), audited; run in a transaction."""
    stmt = insert(retention_rules).values(tenant=tenant, keep_days=keep_days, updated_by=actor.name)
    stmt = stmt.on_conflict_do_update(
        index_elements=[retention_rules.c.tenant],
        set_={"keep_days": keep_days, "updated_by": actor.name, "updated_at": func.now()},
    )
    row = (await conn.execute(stmt.returning(retention_rules))).one()
    await record_event(
        conn, tenant=tenant, actor=actor, action="setRetentionRule", target={"keepDays": keep_days}
    )
    return RetentionRule(row.tenant, row.keep_days or None, True, row.updated_at, row.updated_by)


async def remove_rule(conn: AsyncConnection, tenant: str, actor: Actor) -> bool:
    """Takes ``tenant`` back to the default rule, audited; False if it had no rule of its own."""
    gone = await conn.execute(
        delete(retention_rules)
        .where(retention_rules.c.tenant == tenant)
        .returning(retention_rules.c.keep_days)
    )
    row = gone.first()
    if row is None:
        return False
    await record_event(
        conn, tenant=tenant, actor=actor, action="removeRetentionRule", target={"keepDays": row.keep_days}
    )
    return True


@dataclass(frozen=True, slots=True)
class Expiry:
    """Which sessions one rule deletes: ``conditions`` on ``sessions``."""

    keep_days: int
    tenant: str | None
    """None: every tenant without a rule of its own (the default)."""
    conditions: tuple[ColumnElement[bool], ...]


def expiries(own: dict[str, RetentionRule], default_keep_days: int | None) -> list[Expiry]:
    """The rules in force as conditions on sessions; the cutoff is the statement's ``now()``."""
    found = [
        Expiry(
            rule.keep_days,
            name,
            (sessions.c.tenant == name, _idle_for(rule.keep_days)),
        )
        for name, rule in sorted(own.items())
        if rule.keep_days is not None
    ]
    if default_keep_days is not None:
        others = (sessions.c.tenant.not_in(sorted(own)),) if own else ()
        found.append(Expiry(default_keep_days, None, (*others, _idle_for(default_keep_days))))
    return found


def _idle_for(days: int) -> ColumnElement[bool]:
    return sessions.c.last_activity_at < func.now() - timedelta(days=days)


async def would_expire(
    conn: AsyncConnection, default_keep_days: int | None, tenant: str | None = None
) -> list[tuple[RetentionRule, Deleted]]:
    """The dry run: each tenant's rule and what a pass would delete now (tenants with sessions or a
    rule; ``tenant`` alone if given)."""
    rules_now = await rules(conn, default_keep_days, tenant)
    own = await own_rules(conn)
    expiring: dict[str, Deleted] = {}
    for expiry in expiries(own, default_keep_days):
        if tenant is not None and expiry.tenant not in (None, tenant):
            continue
        narrowed = expiry.conditions if tenant is None else (*expiry.conditions, sessions.c.tenant == tenant)
        add_up(expiring, await count_matching(conn, narrowed))
    return [(rule, expiring.get(rule.tenant, Deleted())) for rule in rules_now]


async def expire(
    database: Database, default_keep_days: int | None, *, batch_size: int, actor: Actor
) -> dict[str, Deleted] | None:
    """One pass: deletes every session idle longer than its tenant's rule, ``batch_size`` per
    transaction, audited as ``retention``. What went, per tenant; None when another replica (or
    ``session-graphql retention``) holds the lock."""
    async with database.engine.connect() as conn:
        locked = await conn.execute(text("SELECT pg_try_advisory_lock(:lock)"), {"lock": RETENTION_LOCK})
        if not locked.scalar_one():
            await conn.rollback()
            return None
        await conn.commit()
        try:
            own = await own_rules(conn)
            await conn.commit()
            total: dict[str, Deleted] = {}
            for expiry in expiries(own, default_keep_days):
                await _expire_one(conn, expiry, batch_size, actor, total)
            return total
        finally:
            await conn.rollback()
            await conn.execute(text("SELECT pg_advisory_unlock(:lock)"), {"lock": RETENTION_LOCK})
            await conn.commit()


async def _expire_one(
    conn: AsyncConnection, expiry: Expiry, batch_size: int, actor: Actor, total: dict[str, Deleted]
) -> None:
    target = {"keepDays": expiry.keep_days, "rule": "tenant" if expiry.tenant is not None else "default"}
    busy = 0
    while busy < MOST_BUSY_BATCHES:
        try:
            deleted = await delete_batch(
                conn,
                expiry.conditions,
                most=batch_size,
                actor=actor,
                action="retention",
                target=target,
                oldest_first=True,
            )
            await conn.commit()
        except Exception as error:
            await conn.rollback()
            if not is_busy(error):
                raise
            busy += 1
            continue
        add_up(total, deleted)
        if sum(each.sessions for each in deleted.values()) < batch_size:
            return
