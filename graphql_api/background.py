"""The work each replica does beside answering requests, started and stopped by the app's lifespan.

Now: re-reading the API keys every few seconds (a revoked key stops working everywhere) and, every
five minutes, housekeeping (rate-limit leases and idle buckets). Work to come that must run on one
replica at a time (rollups, retention) goes here too, under a PostgreSQL advisory lock.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from graphql_api.auth.api_keys import KeyRing
from graphql_api.auth.rate_limits import RateLimiter

HOUSEKEEPING_SECONDS = 300.0


async def housekeeping(limiter: RateLimiter) -> None:
    while True:
        await asyncio.sleep(HOUSEKEEPING_SECONDS)
        with contextlib.suppress(Exception):  # the next round tries again; outages are logged elsewhere
            await limiter.forget_idle()


@asynccontextmanager
async def background_tasks(keys: KeyRing, limiter: RateLimiter) -> AsyncIterator[None]:
    """Runs the replica's background work while the block runs, and stops it after."""
    work: list[Coroutine[Any, Any, None]] = [keys.keep_fresh(), housekeeping(limiter)]
    tasks = [asyncio.create_task(each) for each in work]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
