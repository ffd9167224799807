"""The connection pool and the two ways of using it: one statement, or one transaction."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from db.json_values import dump_json, load_json

T = TypeVar("T")

# A database that accepts connections but never answers must fail a request in seconds, not
# hang it for asyncpg's default minute.
CONNECT_TIMEOUT_SECONDS = 5.0
POOL_TIMEOUT_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 60.0


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        json_serializer=dump_json,
        json_deserializer=load_json,
        connect_args={
            "timeout": CONNECT_TIMEOUT_SECONDS,
            "command_timeout": COMMAND_TIMEOUT_SECONDS,
            "server_settings": {"application_name": "session-graphql"},
        },
    )


class Database:
    """Hands out pooled connections; each caller gets its own, so concurrent resolvers never share one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Single statements run in autocommit: no BEGIN/COMMIT round trips, and each statement is
        # still atomic on its own.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def _statement(self) -> AsyncIterator[AsyncConnection]:
        async with self._autocommit.connect() as conn:
            yield conn

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work`` on a connection in autocommit: for reads and single-statement writes."""
        return await self._with_retry(self._statement, work)

    async def run_in_transaction(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work`` inside a transaction that commits on success and rolls back on error."""
        return await self._with_retry(self.engine.begin, work)

    async def _with_retry(
        self,
        connect: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        work: Callable[[AsyncConnection], Awaitable[T]],
    ) -> T:
        # After a database restart the pool still holds connections to the old server; the first
        # use of one fails and invalidates the pool. The work never reached the new server, so it
        # is run again, once, on a fresh connection.
        try:
            async with connect() as conn:
                return await work(conn)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
        async with connect() as conn:
            return await work(conn)

    async def ping(self) -> None:
        async def select_one(conn: AsyncConnection) -> None:
            await conn.execute(text("SELECT 1"))

        await self.run(select_one)

    async def dispose(self) -> None:
        await self.engine.dispose()
