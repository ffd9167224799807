"""Per caller: how many requests a second (across replicas), and how many heavy ones at once.

Rates hold across replicas, at about one statement per handful of requests.
The bucket itself lives in PostgreSQL (``db.control.rate_limits``), so ten replicas do not give a key ten
times its rate. Each replica leases a quarter second's worth of tokens at a time and spends them
locally; a lease unused after ``LEASE_SECONDS`` lapses, so an idle replica cannot hoard them.
"""

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from db.control import rate_limits
from db.engine import Database
from graphql_api.errors import ErrorCode, LimitError

logger = logging.getLogger(__name__)

LEASE_SECONDS = 1.0
LEASE_SHARE_SECONDS = 0.25
IDLE_BUCKET_SECONDS = 3600.0


@dataclass
class _Lease:
    tokens: int
    expires: float


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after:.3f} s")
        self.retry_after = retry_after


class RateLimiter:
    """``rate`` requests per second with bursts of ``burst``, per bucket; ``rate`` 0 admits everything."""

    def __init__(self, db: Database, rate: float, burst: int) -> None:
        self._db = db
        self.rate = rate
        self.burst = burst
        self._chunk = max(1, min(burst, math.ceil(rate * LEASE_SHARE_SECONDS)))
        self._leases: dict[str, _Lease] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._failing = False

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    async def admit(self, bucket: str) -> None:
        """Spends one token of ``bucket``, or raises ``RateLimited`` saying when one will be there."""
        if not self.enabled or self._spend(bucket):
            return
        # One lease at a time per caller: its concurrent requests wait for it instead of each
        # claiming from the shared bucket.
        async with self._locks.setdefault(bucket, asyncio.Lock()):
            if self._spend(bucket):
                return
            await self._lease(bucket)

    def _spend(self, bucket: str) -> bool:
        lease = self._leases.get(bucket)
        if lease is None or lease.tokens <= 0 or lease.expires < time.monotonic():
            return False
        lease.tokens -= 1
        return True

    async def _lease(self, bucket: str) -> None:
        try:
            want, rate, burst = self._chunk, self.rate, self.burst
            grant = await self._db.run(
                lambda conn: rate_limits.claim(conn, bucket, want=want, rate=rate, burst=burst)
            )
        except Exception as error:
            # Fail open: a request that needs the database fails on its own, and one that does not
            # should not be refused because the limiter's table is out of reach.
            if not self._failing:
                logger.warning("rate limiter cannot reach the database; admitting requests: %r", error)
            self._failing = True
            return
        self._failing = False
        if grant.tokens < 1:
            self._leases.pop(bucket, None)
            raise RateLimited(max(0.001, (1 - grant.left) / self.rate))
        self._leases[bucket] = _Lease(tokens=grant.tokens - 1, expires=time.monotonic() + LEASE_SECONDS)

    async def forget_idle(self) -> None:
        """Drops this replica's lapsed leases and the shared buckets nobody used for an hour."""
        now = time.monotonic()
        for bucket, lease in list(self._leases.items()):
            if lease.expires < now:
                del self._leases[bucket]
        for bucket, lock in list(self._locks.items()):
            if bucket not in self._leases and not lock.locked():
                del self._locks[bucket]
        await self._db.run(lambda conn: rate_limits.forget_idle(conn, IDLE_BUCKET_SECONDS), idempotent=True)


def retry_after_header(seconds: float) -> str:
    """An HTTP ``Retry-After`` value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))


class HeavyRequests:
    """At most ``most`` heavy requests of one caller at once, on this replica.

    Per replica on purpose: what a heavy request spends (memory, the event loop, a database
    connection) is this process's, and a load balancer spreads a caller's requests over all of
    them. The others wait up to ``wait_seconds`` for a slot, then are refused with ``RATE_LIMITED``.
    """

    def __init__(self, most: int, wait_seconds: float) -> None:
        self.most = most
        self.wait_seconds = wait_seconds
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def slot(self, caller: str) -> AsyncIterator[None]:
        if self.most <= 0:
            yield
            return
        slots = self._slots.setdefault(caller, asyncio.Semaphore(self.most))
        self._users[caller] = self._users.get(caller, 0) + 1
        try:
            try:
                async with asyncio.timeout(self.wait_seconds):
                    await slots.acquire()
            except TimeoutError:
                raise LimitError(
                    ErrorCode.RATE_LIMITED,
                    f"these credentials already have {self.most} heavy requests (statistics, search, "
                    "storage objects, large pages) running; retry in a second",
                    extensions={"retryAfter": 1.0},
                ) from None
            try:
                yield
            finally:
                slots.release()
        finally:
            # A caller's semaphore lives while someone holds or waits for it: callers come and go.
            self._users[caller] -= 1
            if self._users[caller] == 0:
                del self._users[caller], self._slots[caller]
