"""The connection pool and the two ways of using it: one statement, or one transaction."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from db.json_values import dump_json, load_json


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        json_serializer=dump_json,
        json_deserializer=load_json,
        connect_args={"server_settings": {"application_name": "session-graphql"}},
    )


class Database:
    """Hands out pooled connections; each caller gets its own, so concurrent resolvers never share one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Single statements run in autocommit: no BEGIN/COMMIT round trips, and each statement is
        # still atomic on its own.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads and single-statement writes."""
        async with self._autocommit.connect() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction that commits on success and rolls back on error."""
        async with self.engine.begin() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.statement() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
