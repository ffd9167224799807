"""Alembic environment: runs migrations over asyncpg, one migrator at a time."""

import asyncio

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from db.models import Base

# Any number of API replicas may start at once; the lock makes all but one wait, then find
# nothing left to do.
MIGRATION_LOCK_ID = 7_310_452_226


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()


async def run_online() -> None:
    engine = create_async_engine(context.config.get_main_option("sqlalchemy.url") or "", poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `session-graphql migrate`")
asyncio.run(run_online())
