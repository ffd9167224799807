"""Waiting for the server's rollups to take in the bulk-loaded messages before they are measured.

Each stored message leaves a row in ``rollup_invalidations`` that the server's background fold
folds into the rollup tables and deletes; the statistics read the rollups, so they are timed only
once the table is empty, as on a store that has been running for a while. A database without the
table (before the rollups) has nothing to wait for.
"""

import asyncio
import time
from collections.abc import Callable

import asyncpg

POLL_SECONDS = 0.5
SECONDS_PER_MILLION = 60.0
"""How long the fold may take per million messages loaded..."""
MIN_SECONDS = 300.0
"""...and at least (the 10,000,000-message scale gets 10 minutes)."""


class RollupsBehindError(RuntimeError):
    """The fold has not caught up with the loaded messages in time."""


def catch_up_seconds(messages: int) -> float:
    return max(MIN_SECONDS, SECONDS_PER_MILLION * messages / 1_000_000)


async def wait_for_rollups(libpq_url: str, within_seconds: float, log: Callable[[str], None]) -> None:
    """Returns once ``rollup_invalidations`` is empty (or does not exist); logs how long the fold took
    and how many rows it started with. Raises RollupsBehindError after ``within_seconds``."""
    conn = await asyncpg.connect(libpq_url)
    try:
        if await conn.fetchval("SELECT to_regclass('rollup_invalidations')") is None:
            log("rollups: no rollup_invalidations table, nothing to wait for")
            return
        began = time.perf_counter()
        first = left = await conn.fetchval("SELECT count(*) FROM rollup_invalidations")
        while left:
            if time.perf_counter() - began > within_seconds:
                raise RollupsBehindError(
                    f"rollup_invalidations holds {left:,} of {first:,} rows after {within_seconds:.0f} s"
                )
            await asyncio.sleep(POLL_SECONDS)
            left = await conn.fetchval("SELECT count(*) FROM rollup_invalidations")
        took = time.perf_counter() - began
        log(f"rollups: caught up {took:.1f} s after the load ({first:,} rows in rollup_invalidations then)")
        # As autovacuum would have done by then: the rollups' statistics, for their plans.
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
