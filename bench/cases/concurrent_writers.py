"""32 agents appending at once, each with its own client and its own session.

A round of the client: 32 async tasks, each with its own ``AsyncGraphQLSessionRepository``, each
appending its messages (1 KB, one ``create_message`` at a time) to its own session's agent. A
round of the reference: 32 asyncpg connections, each inserting the same rows with the prepared
statement of ``bench.raw_insert``. Sessions and agents are made before the clock starts. Rounds
alternate; the figure is each one's median messages per second. After the client's rounds the
stored rows are counted per agent: ids missing are lost, rows beyond the distinct ids duplicated,
and each session's ``message_count`` must equal its rows.

A second figure runs the same rounds with ``write_behind=True`` (what an agent that never waits
on the store uses): its clock stops when every repository's ``flush()`` has delivered it all.
"""

import asyncio
import statistics
import time

import asyncpg
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from bench.conversation import APPEND_MESSAGE
from bench.raw_insert import RawInsert, create_session_and_agent
from bench.report import Row, ratio
from bench.run_context import BenchRun
from client import AsyncGraphQLSessionRepository, GraphQLSessionError

TARGET = 0.6
AGENT_ID = "writer"


async def _client_round(bench: BenchRun, prefix: str, write_behind: bool = False) -> tuple[float, int]:
    """Messages per second, and how many calls raised."""
    writers, count = bench.sizes.writers, bench.sizes.writer_messages
    repositories = [bench.async_repository(write_behind=write_behind) for _ in range(writers)]
    failed = 0
    try:
        for number, repository in enumerate(repositories):
            session_id = f"{prefix}-{number:02d}"
            await repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
            await repository.create_agent(
                session_id, SessionAgent(agent_id=AGENT_ID, state={}, conversation_manager_state={})
            )
        batches = [
            [SessionMessage(message=APPEND_MESSAGE, message_id=n) for n in range(count)]  # type: ignore[arg-type]
            for _ in repositories
        ]

        async def write(
            repository: AsyncGraphQLSessionRepository, session_id: str, batch: list[SessionMessage]
        ) -> None:
            nonlocal failed
            for message in batch:
                try:
                    await repository.create_message(session_id, AGENT_ID, message)
                except GraphQLSessionError:
                    failed += 1
            try:
                await repository.flush()
            except GraphQLSessionError:
                failed += 1

        start = time.perf_counter()
        await asyncio.gather(
            *(
                write(repository, f"{prefix}-{number:02d}", batch)
                for number, (repository, batch) in enumerate(zip(repositories, batches, strict=True))
            )
        )
        elapsed = time.perf_counter() - start
    finally:
        await asyncio.gather(*(repository.aclose() for repository in repositories))
    return writers * count / elapsed, failed


async def _raw_round(bench: BenchRun, prefix: str) -> float:
    writers, count = bench.sizes.writers, bench.sizes.writer_messages
    connections = [await asyncpg.connect(bench.database.libpq_url) for _ in range(writers)]
    try:
        inserts = []
        for number, conn in enumerate(connections):
            await create_session_and_agent(conn, f"{prefix}-{number:02d}", AGENT_ID)
            inserts.append(await RawInsert.prepare(conn, APPEND_MESSAGE))

        async def write(insert: RawInsert, session_id: str) -> None:
            for message_id in range(count):
                await insert(session_id, AGENT_ID, message_id)

        start = time.perf_counter()
        await asyncio.gather(*(write(insert, f"{prefix}-{n:02d}") for n, insert in enumerate(inserts)))
        elapsed = time.perf_counter() - start
    finally:
        await asyncio.gather(*(conn.close() for conn in connections))
    return writers * count / elapsed


async def _count(bench: BenchRun, prefix: str, rounds: int) -> tuple[int, int, int]:
    """Lost messages, duplicated messages and sessions whose message_count is not their rows."""
    conn = await asyncpg.connect(bench.database.libpq_url)
    try:
        rows = await conn.fetch(
            """
            SELECT s.session_id, s.message_count, count(m.message_id) AS stored,
                count(DISTINCT m.message_id) FILTER (WHERE m.message_id < $2) AS distinct_ids
            FROM sessions s LEFT JOIN session_messages m
                ON (m.session_id, m.tenant) = (s.session_id, s.tenant) AND m.agent_id = $3
            WHERE s.tenant = 'default' AND s.session_id LIKE $1 || '%'
            GROUP BY s.session_id, s.message_count
            """,
            prefix,
            bench.sizes.writer_messages,
            AGENT_ID,
        )
    finally:
        await conn.close()
    expected_sessions = bench.sizes.writers * rounds
    assert len(rows) == expected_sessions, (len(rows), expected_sessions)
    lost = sum(bench.sizes.writer_messages - row["distinct_ids"] for row in rows)
    duplicated = sum(row["stored"] - row["distinct_ids"] for row in rows)
    miscounted = sum(row["message_count"] != row["stored"] for row in rows)
    return lost, duplicated, miscounted


def run(bench: BenchRun) -> list[Row]:
    sizes = bench.sizes
    bench.log(
        f"concurrent: {sizes.writer_rounds} rounds of {sizes.writers} writers"
        f" x {sizes.writer_messages} messages, client and raw"
    )
    rates: dict[str, list[float]] = {"": [], "behind-": []}
    raw_rates: list[float] = []
    failed = dict.fromkeys(rates, 0)
    with asyncio.Runner() as runner:
        for number in range(sizes.writer_rounds):
            raw_rates.append(runner.run(_raw_round(bench, f"raw-writers-{number}")))
            for mode, mode_rates in rates.items():
                rate, round_failed = runner.run(
                    _client_round(bench, f"{mode}writers-{number}", write_behind=bool(mode))
                )
                mode_rates.append(rate)
                failed[mode] += round_failed
        counts = {mode: runner.run(_count(bench, f"{mode}writers-", sizes.writer_rounds)) for mode in rates}
    reference = statistics.median(raw_rates)
    rows = []
    for mode, mode_rates in rates.items():
        figure = statistics.median(mode_rates)
        lost, duplicated, miscounted = counts[mode]
        notes = f", {failed[mode]} calls failed" if failed[mode] else ""
        notes += f", {miscounted} sessions miscounted" if miscounted else ""
        rows.append(
            Row(
                case=f"{sizes.writers} concurrent writers{', write-behind' if mode else ''} (msg/s)",
                figure=f"{figure:.0f} msg/s, {lost} lost, {duplicated} dup{notes}",
                reference=f"{reference:.0f} msg/s raw, {sizes.writers} conns",
                ratio=ratio(figure, reference),
                target=f">= {TARGET}x, 0 lost, 0 dup",
                met=figure / reference >= TARGET and lost == duplicated == miscounted == 0,
            )
        )
    return rows
