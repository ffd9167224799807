"""Migration 0007 on conversations stored under 0006: the rule table comes empty (nothing is deleted
until a default or a rule is set), retention works on the old rows, and downgrading to 0006 removes
the rules and leaves the conversations as they were."""

import asyncio
from typing import Any

from alembic import command
from sqlalchemy import Connection, text

from db.control import retention
from db.conversations.bulk_deletes import Deleted
from db.engine import Database, create_engine
from db.migrate import alembic_config, upgrade
from db.records import Actor
from tests.scratch_database import scratch_database
from tests.test_migration_rollups import _fill_0005
from tests.test_migrations import inspect, rows

OPERATOR = Actor(name="test-operator", role="admin")


def _idle_since_created(conn: Connection) -> None:
    conn.execute(text("UPDATE sessions SET last_activity_at = created_at"))
    conn.commit()


def _on(url: str, work: Any) -> Any:
    async def run() -> Any:
        database = Database(create_engine(url, pool_size=2, max_overflow=0))
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


def test_0007_adds_empty_rules_that_retention_applies_to_0006_rows_and_downgrade_keeps_the_rows(
    database_url: str,
) -> None:
    with scratch_database(database_url) as url:
        upgrade(url, "0005")
        inspect(url, _fill_0005)
        inspect(url, _idle_since_created)
        upgrade(url, "0006")
        upgrade(url)
        assert inspect(url, rows("SELECT * FROM retention_rules")) == []

        async def dry_run(database: Database) -> list[tuple[str, int | None, Deleted]]:
            found = await database.run(lambda conn: retention.would_expire(conn, 30))
            return [(rule.tenant, rule.keep_days, deleted) for rule, deleted in found]

        async def keep_acme_and_expire(database: Database) -> dict[str, Deleted] | None:
            await database.run_in_transaction(lambda conn: retention.set_rule(conn, "acme", 0, OPERATOR))
            return await retention.expire(database, 30, batch_size=1, actor=OPERATOR)

        before = _on(url, dry_run)
        deleted = _on(url, keep_acme_and_expire)
        left = inspect(url, rows("SELECT tenant, session_id FROM sessions ORDER BY 1, 2"))
        queued = inspect(url, rows("SELECT count(*) FROM rollup_invalidations WHERE tenant = 'default'"))

        config = alembic_config(url)
        command.downgrade(config, "0006")
        tables = inspect(url, rows("SELECT to_regclass('retention_rules') IS NULL"))
        after_downgrade = inspect(url, rows("SELECT tenant, session_id FROM sessions ORDER BY 1, 2"))
        upgrade(url)

    # 0005's rows hold no message counts of their own (the API keeps them): zero messages.
    assert before == [("acme", 30, Deleted(2, 0)), ("default", 30, Deleted(1, 0))]
    assert deleted == {"default": Deleted(1, 0)}
    assert left == [("acme", "chat-1"), ("acme", "chat-2")]
    assert queued[0][0] > 0  # the deleted messages' buckets wait for the fold
    assert tables == [(True,)]
    assert after_downgrade == left
