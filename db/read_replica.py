"""A streaming replica for dashboards' reads, and where those reads go while it is away.

Which requests read here is the API's decision (``graphql_api.read_routing``); this module only
runs what it is given, on the replica or, while the replica is away, on the primary.
"""

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.availability import OutageLog, is_unavailable
from db.engine import Database

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[T]]


class ReplicaUnavailable(ConnectionError):
    """The read replica is away and reads may not go to the primary instead (SERVICE_UNAVAILABLE)."""


class ReadReplica(Database):
    """A ``Database`` on a streaming replica whose reads go to ``primary`` while the replica is away.

    Away means what ``is_unavailable`` says: refused, unreachable, timed out, starting up or
    shutting down. The first such failure sets the replica aside for ``retry_seconds``: meanwhile
    reads go straight to the primary (``fallback``) or are refused with ``ReplicaUnavailable``,
    without waiting on connections that would fail; the first read after that tries the replica
    again. The outage is logged once, when it starts, and its end once.

    Only reads are sent here, on read-only connections (``create_engine(read_only=True)``), so a read
    the replica failed part-way wrote nothing, and running it again on the primary is safe whether
    it is idempotent or not.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        primary: Database,
        *,
        fallback: bool = True,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(engine)
        self.primary = primary
        self.fallback = fallback
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._aside_until = float("-inf")
        self.outages = OutageLog(
            "read replica",
            "reading from the primary until it returns"
            if fallback
            else "answering dashboards' reads SERVICE_UNAVAILABLE until it returns",
        )

    @property
    def set_aside(self) -> bool:
        """Whether reads skip the replica now, after it failed less than ``retry_seconds`` ago."""
        return self._clock() < self._aside_until

    async def run(self, work: Work[T], *, idempotent: bool = False) -> T:
        return await self._routed(super().run, self.primary.run, work, idempotent)

    async def run_in_transaction(self, work: Work[T], *, idempotent: bool = False) -> T:
        return await self._routed(
            super().run_in_transaction, self.primary.run_in_transaction, work, idempotent
        )

    async def run_in_snapshot(self, work: Work[T]) -> T:
        async def on_replica(each: Work[T], *, idempotent: bool) -> T:
            return await Database.run_in_snapshot(self, each)

        async def on_primary(each: Work[T], *, idempotent: bool) -> T:
            return await self.primary.run_in_snapshot(each)

        return await self._routed(on_replica, on_primary, work, True)

    async def _routed(
        self,
        on_replica: Callable[..., Awaitable[T]],
        on_primary: Callable[..., Awaitable[T]],
        work: Work[T],
        idempotent: bool,
    ) -> T:
        failure: BaseException | None = None
        if not self.set_aside:
            try:
                return await on_replica(work, idempotent=idempotent)
            except Exception as error:
                if not is_unavailable(error):
                    raise
                self._aside_until = self._clock() + self.retry_seconds
                failure = error
        if not self.fallback:
            raise ReplicaUnavailable("the read replica is unavailable") from failure
        return await on_primary(work, idempotent=idempotent)
