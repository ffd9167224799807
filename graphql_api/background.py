"""The work each replica does beside answering requests, started and stopped by the app's lifespan.

- Re-reading the API keys every few seconds (a revoked key stops working everywhere).
- Every five minutes, housekeeping (rate-limit leases and idle buckets).
- Folding the rollups' queue about every second (``db.analytics.rollups``); one replica at a
  time, under a PostgreSQL advisory lock: the others find it taken and wait for the next round.
  At start, when the configured label keys differ from the ones the rollups keep, the rollups are
  rebuilt with the new keys first (answers stay exact meanwhile; labelled ones read rows).
- With metrics on (``graphql_api.metrics``): the pool's use every second, and every
  ``refresh_seconds`` what the metrics read from the database (the rollups' backlog, one indexed
  read of their queue; stored rows per tenant, from PostgreSQL's statistics, not the rows).
- Every ``retention.interval_seconds``, deleting the sessions idle longer than their tenant's
  retention rule (``db.control.retention``); one replica at a time, under an advisory lock.
- Listening for changes (``db.notifications``) on a connection of its own, for this replica's
  subscribers (``graphql_api.live``).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from db.analytics import rollups
from db.analytics.stored_rows import estimate_stored_rows
from db.control import retention
from db.engine import Database
from db.notifications import Listener
from db.records import Actor
from graphql_api import metrics
from graphql_api.auth.api_keys import KeyRing
from graphql_api.auth.rate_limits import RateLimiter
from graphql_api.settings import RetentionSettings, RollupSettings, Settings

logger = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 300.0
TASK_PREFIX = "background:"
"""Names the tasks, so what they send can be told from what requests send."""
FOLD_RETRY_SECONDS = 5.0
POOL_SAMPLE_SECONDS = 1.0
RETENTION_ACTOR = Actor(name="retention", role="admin")
"""Who the audit log says deleted an expired session."""


async def housekeeping(limiter: RateLimiter) -> None:
    while True:
        await asyncio.sleep(HOUSEKEEPING_SECONDS)
        with contextlib.suppress(Exception):  # the next round tries again; outages are logged elsewhere
            await limiter.forget_idle()


async def _adopt_label_keys(database: Database, wanted: tuple[str, ...]) -> None:
    kept = await database.run(rollups.label_keys, idempotent=True)
    if list(wanted) == kept:
        return
    logger.info("rebuilding the rollups: label keys %s, were %s", list(wanted), kept)
    started = time.perf_counter()
    buckets = await database.run_in_transaction(lambda conn: rollups.adopt(conn, wanted))
    if buckets is not None:
        logger.info("rollups rebuilt: %d buckets in %.1f s", buckets, time.perf_counter() - started)


async def fold_rollups(database: Database, settings: RollupSettings) -> None:
    """Keeps the rollups caught up: a round every ``fold_seconds``, batches back to back while the
    queue is long."""
    adopted, failed = False, False
    while True:
        try:
            if not adopted:
                await _adopt_label_keys(database, settings.label_keys)
                adopted = True
                if not settings.fold_seconds:
                    return
            # After a failure, one bucket at a time in any order: one that cannot be folded stays
            # queued (read from rows, exact) without holding up the others.
            folded = await database.run_in_transaction(
                partial(rollups.fold, most_buckets=1, any_order=True) if failed else rollups.fold
            )
        except Exception as error:  # an outage, or a bucket that cannot be folded: try again
            logger.warning("rollup fold failed, retrying in %.0f s: %r", FOLD_RETRY_SECONDS, error)
            failed = True
            await asyncio.sleep(FOLD_RETRY_SECONDS)
            continue
        failed = failed and folded == 1
        if not folded or (folded < rollups.BUCKETS_PER_FOLD and not failed):
            await asyncio.sleep(settings.fold_seconds)


async def sample_pool(database: Database) -> None:
    while True:
        metrics.record_pool(database.connections_in_use(), database.waiting)
        await asyncio.sleep(POOL_SAMPLE_SECONDS)


async def refresh_database_metrics(database: Database, every_seconds: float) -> None:
    while True:
        try:
            metrics.record_backlog(await database.run(rollups.backlog, idempotent=True))
            metrics.record_stored_rows(await database.run(estimate_stored_rows, idempotent=True))
        except Exception as error:  # an outage: the figures stay as last read, /ready tells the rest
            logger.debug("cannot refresh the database's metrics: %r", error)
        await asyncio.sleep(every_seconds)


async def expire_sessions(database: Database, settings: RetentionSettings) -> None:
    """A retention pass every ``interval_seconds``; the rules are read again at each one."""
    if not settings.interval_seconds:
        return
    while True:
        try:
            deleted = await retention.expire(
                database, settings.default_keep_days, batch_size=settings.batch_size, actor=RETENTION_ACTOR
            )
        except Exception as error:  # an outage: the next round tries again
            logger.warning("retention pass failed, retrying in %.0f s: %r", settings.interval_seconds, error)
        else:
            if deleted:
                metrics.count_retention_deletions(
                    sum(each.sessions for each in deleted.values()),
                    sum(each.messages for each in deleted.values()),
                )
                logger.info(
                    "retention deleted %d sessions (%d messages): %s",
                    sum(each.sessions for each in deleted.values()),
                    sum(each.messages for each in deleted.values()),
                    ", ".join(f"{tenant} {each.sessions}" for tenant, each in sorted(deleted.items())),
                )
        await asyncio.sleep(settings.interval_seconds)


@asynccontextmanager
async def background_tasks(
    keys: KeyRing,
    limiter: RateLimiter,
    database: Database,
    settings: Settings,
    listener: Listener | None = None,
) -> AsyncIterator[None]:
    """Runs the replica's background work while the block runs, and stops it after."""
    work: dict[str, Coroutine[Any, Any, None]] = {
        "keys": keys.keep_fresh(),
        "housekeeping": housekeeping(limiter),
    }
    if listener is not None:
        work["listener"] = listener.run()
    work["rollups"] = fold_rollups(database, settings.rollups)
    work["retention"] = expire_sessions(database, settings.retention)
    if settings.metrics.enabled:
        work["pool-metrics"] = sample_pool(database)
        work["database-metrics"] = refresh_database_metrics(database, settings.metrics.refresh_seconds)
    tasks = [asyncio.create_task(each, name=f"{TASK_PREFIX}{name}") for name, each in work.items()]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
