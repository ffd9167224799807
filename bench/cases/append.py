"""Append: one 1 KB message per call, as an agent turn writes it, through each client.

Three candidates take turns in rounds (round 0 only warms up), each writing to its own agent:
the raw prepared asyncpg insert of the same row (``bench.raw_insert``), the sync
``GraphQLSessionRepository.create_message`` and the async
``AsyncGraphQLSessionRepository.create_message``, one call at a time. The figure is each
client's median wall time per call; the ratio is to the raw insert's median.

Then the sync client with ``write_behind=True``, what an agent pays when it never waits on the
store: the same calls, ``BEHIND_PAUSE`` apart (the model's time between two messages, in which
the sender delivers), and a ``flush()`` at the end that must deliver them all.
"""

import asyncio
import statistics
import time

import asyncpg
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from bench.conversation import APPEND_MESSAGE
from bench.raw_insert import RawInsert, create_session_and_agent
from bench.report import Row, duration, ratio
from bench.run_context import BenchRun
from client import AsyncGraphQLSessionRepository, GraphQLSessionRepository

TARGET = 2.5
WARMUP_CALLS = 50
BEHIND_TARGET = 0.05e-3
BEHIND_PAUSE = 1e-3


def _messages(first: int, count: int) -> list[SessionMessage]:
    return [SessionMessage(message=APPEND_MESSAGE, message_id=n) for n in range(first, first + count)]  # type: ignore[arg-type]


async def _raw(insert: RawInsert, session_id: str, first: int, count: int) -> list[float]:
    timings = []
    for message_id in range(first, first + count):
        start = time.perf_counter()
        await insert(session_id, "raw", message_id)
        timings.append(time.perf_counter() - start)
    return timings


def _sync(
    repository: GraphQLSessionRepository,
    session_id: str,
    first: int,
    count: int,
    agent_id: str = "sync-client",
    pause: float = 0.0,
) -> list[float]:
    timings = []
    for message in _messages(first, count):
        start = time.perf_counter()
        repository.create_message(session_id, agent_id, message)
        timings.append(time.perf_counter() - start)
        if pause:
            time.sleep(pause)
    return timings


async def _async(
    repository: AsyncGraphQLSessionRepository, session_id: str, first: int, count: int
) -> list[float]:
    timings = []
    for message in _messages(first, count):
        start = time.perf_counter()
        await repository.create_message(session_id, "async-client", message)
        timings.append(time.perf_counter() - start)
    return timings


def run(bench: BenchRun) -> list[Row]:
    sizes = bench.sizes
    bench.log(f"append: {sizes.append_rounds} rounds x {sizes.append_calls} calls per candidate")
    session_id = "append"
    agent = SessionAgent(agent_id="", state={}, conversation_manager_state={})
    raw: list[float] = []
    sync: list[float] = []
    async_: list[float] = []
    with asyncio.Runner() as runner, bench.repository() as repository:
        repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
        for agent_id in ("sync-client", "async-client", "write-behind"):
            agent.agent_id = agent_id
            repository.create_agent(session_id, agent)
        conn = runner.run(asyncpg.connect(bench.database.libpq_url))
        async_repository = bench.async_repository()
        try:
            runner.run(create_session_and_agent(conn, "append-raw", "raw"))
            insert = runner.run(RawInsert.prepare(conn, APPEND_MESSAGE))
            first = 0
            for round_number in range(sizes.append_rounds + 1):
                count = sizes.append_calls if round_number else WARMUP_CALLS
                measured = (
                    runner.run(_raw(insert, "append-raw", first, count)),
                    _sync(repository, session_id, first, count),
                    runner.run(_async(async_repository, session_id, first, count)),
                )
                if round_number:
                    for timings, into in zip(measured, (raw, sync, async_), strict=True):
                        into.extend(timings)
                first += count
        finally:
            runner.run(async_repository.aclose())
            runner.run(conn.close())
    with bench.repository(write_behind=True) as behind_repository:
        behind = _sync(behind_repository, session_id, 0, sizes.append_calls, "write-behind", BEHIND_PAUSE)
        behind_repository.flush()
    floor = statistics.median(raw)
    rows = []
    for name, timings in (("sync", sync), ("async", async_)):
        median = statistics.median(timings)
        rows.append(
            Row(
                case=f"append 1 KB, {name} client (median/call)",
                figure=duration(median),
                reference=f"{duration(floor)} raw insert",
                ratio=ratio(median, floor),
                target=f"<= {TARGET}x",
                met=median / floor <= TARGET,
            )
        )
    median = statistics.median(behind)
    rows.append(
        Row(
            case="append 1 KB, sync client write-behind (median/call)",
            figure=duration(median),
            reference=f"{duration(statistics.median(sync))} sync client",
            ratio=ratio(median, statistics.median(sync)),
            target=f"< {duration(BEHIND_TARGET)}",
            met=median < BEHIND_TARGET,
        )
    )
    return rows
