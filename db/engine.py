"""The connection pool and the two ways of using it: one statement, or one transaction."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from db.availability import OutageLog, is_unavailable, sqlstate_of
from db.json_values import dump_json, load_json

T = TypeVar("T")

# A database that accepts connections but never answers must fail a request in seconds, not
# hang it for asyncpg's default minute.
CONNECT_TIMEOUT_SECONDS = 5.0
POOL_TIMEOUT_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 60.0


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 20,
    statement_timeout_ms: int = 0,
    read_only: bool = False,
) -> AsyncEngine:
    """The pool; ``statement_timeout_ms`` (0: none) bounds every statement the API sends.

    ``read_only`` makes every transaction read-only: a read replica's pool, so a URL naming a
    writable server by mistake still gets no write from it.
    """
    server_settings = {"application_name": "session-graphql"}
    if statement_timeout_ms:
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    if read_only:
        server_settings["default_transaction_read_only"] = "on"
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        json_serializer=dump_json,
        json_deserializer=load_json,
        connect_args={
            "timeout": CONNECT_TIMEOUT_SECONDS,
            "command_timeout": COMMAND_TIMEOUT_SECONDS,
            "server_settings": server_settings,
        },
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    """After a database restart the pool still holds connections whose sockets the server closed.

    asyncpg has already noticed (no round trip needed to ask), and the pool swaps such a connection
    for a fresh one, so no request is sent down a dead socket. This is the free half of a pre-ping.
    """
    if dbapi_connection._connection.is_closed():
        raise DisconnectionError("pooled connection was closed by the server")


def _worth_retrying(error: BaseException) -> bool:
    """The connection died, or PostgreSQL aborted the work to resolve a deadlock or serialization
    conflict (SQLSTATE class 40): running it again can succeed."""
    state = sqlstate_of(error) or ""
    return (isinstance(error, DBAPIError) and error.connection_invalidated) or state.startswith(("40", "08"))


class Database:
    """Hands out pooled connections; each caller gets its own, so concurrent resolvers never share one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.outages = OutageLog()
        self.waiting = 0
        """Work waiting for a connection of the pool (or for one to be opened): the operations'
        metrics sample it, as SQLAlchemy's pool does not count its waiters."""
        # Single statements run in autocommit: no BEGIN/COMMIT round trips, and each statement is
        # still atomic on its own.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._snapshot = engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)

    @asynccontextmanager
    async def _statement(self) -> AsyncIterator[AsyncConnection]:
        async with self._autocommit.connect() as conn:
            yield conn

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]], *, idempotent: bool = False) -> T:
        """``work`` on a connection in autocommit: for reads and single-statement writes.

        ``idempotent`` work (reads, and writes whose repetition changes nothing) is run once more
        if the connection dies under it or PostgreSQL aborts it to break a deadlock; other work
        could have committed before the failure, so its failure is reported instead.
        """
        return await self._with_retry(self._statement, work, idempotent)

    async def run_in_transaction(
        self, work: Callable[[AsyncConnection], Awaitable[T]], *, idempotent: bool = False
    ) -> T:
        """``work`` inside a transaction that commits on success and rolls back on error."""
        return await self._with_retry(self.engine.begin, work, idempotent)

    async def run_in_snapshot(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Read-only ``work`` whose statements all see one snapshot (repeatable read); retried once."""
        return await self._with_retry(self._snapshot.begin, work, True)

    async def _with_retry(
        self,
        connect: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        work: Callable[[AsyncConnection], Awaitable[T]],
        idempotent: bool,
    ) -> T:
        try:
            return await self._once(connect, work)
        except Exception as error:
            if not (idempotent and _worth_retrying(error)):
                raise
        return await self._once(connect, work)

    async def _once(
        self,
        connect: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        work: Callable[[AsyncConnection], Awaitable[T]],
    ) -> T:
        self.waiting += 1
        connected = False
        try:
            async with connect() as conn:
                self.waiting -= 1
                connected = True
                result = await work(conn)
        except Exception as error:
            if is_unavailable(error):
                self.outages.failed(error)
            raise
        finally:
            if not connected:
                self.waiting -= 1
        self.outages.succeeded()
        return result

    def connections_in_use(self) -> int:
        """Connections of the pool handed out now (each to one piece of work)."""
        pool = self.engine.pool
        return int(pool.checkedout()) if isinstance(pool, QueuePool) else 0

    async def ping(self) -> None:
        async def select_one(conn: AsyncConnection) -> None:
            await conn.execute(text("SELECT 1"))

        await self.run(select_one, idempotent=True)

    async def dispose(self) -> None:
        await self.engine.dispose()
