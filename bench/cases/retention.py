"""Retention: appends while a retention pass deletes ``sizes.expired_sessions`` expired sessions.

The expired sessions are bulk-loaded with SQL into a tenant of their own (one agent and four
messages each, idle for 400 days), and the tenant is given a 30-day rule. A client appends one
message per call (the sync ``GraphQLSessionRepository.create_message``, as an agent turn does) to
a fresh session of another tenant: first with nothing being deleted (the reference), then while
``db.control.retention.expire``, the pass the replicas run in the background, deletes them in its
batches. The figures are the append's p50 and p99 in both phases, and the deletion rate.
"""

import asyncio
import statistics
import threading
import time

import asyncpg
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from bench.conversation import APPEND_MESSAGE
from bench.report import Row, duration, ratio
from bench.run_context import BenchRun
from db.control import retention
from db.engine import Database, create_engine
from db.records import Actor
from graphql_api.settings import RetentionSettings

TENANT = "expired"
KEEP_DAYS = 30
IDLE_DAYS = 400
LOAD_CHUNK = 10_000
BASELINE_CALLS = 1_000
P99_TARGET = 2.0
"""The p99 of an append while retention deletes, at most this many times the p99 without."""
OPERATOR = Actor(name="bench", role="admin")

_LOAD = f"""
WITH made AS (
    INSERT INTO sessions (session_id, tenant, session_type, created_at, updated_at, last_activity_at,
        labels, message_count, total_tokens)
    SELECT 'expired-' || n, '{TENANT}', 'AGENT', t, t, t, jsonb_build_object('user', 'u' || (n % 1000)), 4, 40
    FROM generate_series($1::int, $2::int) AS n, (SELECT now() - interval '{IDLE_DAYS} days' AS t) AS at
    RETURNING session_id, created_at
), agents AS (
    INSERT INTO session_agents (session_id, tenant, agent_id, state, conversation_manager_state,
        internal_state, created_at, updated_at, last_activity_at, message_count, total_tokens)
    SELECT session_id, '{TENANT}', 'support', '{{}}', '{{}}', '{{}}', created_at, created_at,
        created_at, 4, 40
    FROM made
    RETURNING session_id, created_at
)
INSERT INTO session_messages (session_id, tenant, agent_id, message_id, role, message, created_at,
    updated_at, plain_text, content_types, total_tokens)
SELECT session_id, '{TENANT}', 'support', m, CASE WHEN m % 2 = 0 THEN 'user' ELSE 'assistant' END,
    json_build_object('role', CASE WHEN m % 2 = 0 THEN 'user' ELSE 'assistant' END,
        'content', json_build_array(json_build_object('text', 'message ' || m))),
    created_at + m * interval '1 second', created_at + m * interval '1 second', 'message ' || m,
    '{{text}}', CASE WHEN m % 2 = 1 THEN 20 END
FROM agents, generate_series(0, 3) AS m
"""


async def _load(libpq_url: str, count: int) -> None:
    conn = await asyncpg.connect(libpq_url)
    try:
        for first in range(0, count, LOAD_CHUNK):
            await conn.execute(_LOAD, first, min(first + LOAD_CHUNK, count) - 1)
    finally:
        await conn.close()


async def _expire_all(url: str, batch_size: int) -> float:
    """Gives the tenant its rule and runs passes until its sessions are gone; the seconds it took."""
    database = Database(create_engine(url, pool_size=2, max_overflow=0))
    try:
        await database.run_in_transaction(lambda conn: retention.set_rule(conn, TENANT, KEEP_DAYS, OPERATOR))
        started = time.perf_counter()
        while True:
            # None: the server's own background pass has the lock, and is deleting them.
            if await retention.expire(database, None, batch_size=batch_size, actor=OPERATOR) is None:
                await asyncio.sleep(0.2)
            left = await database.run(lambda conn: retention.would_expire(conn, None, TENANT))
            if not any(deleted.sessions for _, deleted in left):
                return time.perf_counter() - started
    finally:
        await database.dispose()


def _percentile(timings: list[float], fraction: float) -> float:
    return statistics.quantiles(timings, n=100, method="inclusive")[round(fraction * 100) - 1]


def run(bench: BenchRun) -> list[Row]:
    count = bench.sizes.expired_sessions
    bench.log(f"retention: bulk-loading {count:,} expired sessions ({4 * count:,} messages)")
    asyncio.run(_load(bench.database.libpq_url, count))
    session_id, agent_id = "retention-appends", "writer"
    with bench.repository() as repository:
        repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
        repository.create_agent(
            session_id, SessionAgent(agent_id=agent_id, state={}, conversation_manager_state={})
        )
        message_id = 0

        def append() -> float:
            nonlocal message_id
            message = SessionMessage(message=APPEND_MESSAGE, message_id=message_id)  # type: ignore[arg-type]
            message_id += 1
            start = time.perf_counter()
            repository.create_message(session_id, agent_id, message)
            return time.perf_counter() - start

        for _ in range(50):
            append()  # warm-up
        bench.log(f"retention: {BASELINE_CALLS} appends with nothing being deleted")
        quiet = [append() for _ in range(BASELINE_CALLS)]
        bench.log(f"retention: appends while a pass deletes {count:,} sessions")
        took: list[float] = []
        deleting = threading.Thread(
            target=lambda: took.append(
                asyncio.run(_expire_all(bench.database.url, RetentionSettings().batch_size))
            )
        )
        deleting.start()
        busy: list[float] = []
        while deleting.is_alive():
            busy.append(append())
        deleting.join()
    if not took:
        raise RuntimeError("the retention pass failed (see above)")
    seconds = took[0]
    rate = count / seconds
    bench.log(
        f"retention: deleted {count:,} sessions in {seconds:.1f} s ({rate:,.0f}/s); "
        f"{len(busy)} appends meanwhile"
    )
    quiet_p50, quiet_p99 = _percentile(quiet, 0.5), _percentile(quiet, 0.99)
    busy_p50, busy_p99 = _percentile(busy, 0.5), _percentile(busy, 0.99)
    return [
        Row(
            f"append p50 while retention deletes {count:,} sessions (ref: none deleting)",
            duration(busy_p50),
            duration(quiet_p50),
            ratio(busy_p50, quiet_p50),
            "-",
            True,
        ),
        Row(
            f"append p99 while retention deletes {count:,} sessions (ref: none deleting)",
            duration(busy_p99),
            duration(quiet_p99),
            ratio(busy_p99, quiet_p99),
            f"<= {P99_TARGET:g}x",
            busy_p99 <= P99_TARGET * quiet_p99,
        ),
        Row(
            f"retention deletion rate ({RetentionSettings().batch_size} sessions a batch)",
            f"{rate:,.0f} sessions/s",
            "-",
            "-",
            "-",
            True,
        ),
    ]
