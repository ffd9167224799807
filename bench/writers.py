"""The concurrent writers of ``bench.cases.concurrent_writers``, in a process of their own.

    python -m bench.writers URL LIBPQ_URL --writers 32 --messages 25 [--token KEY]

The case starts one and drives it over stdin and stdout, one JSON line each way: a round
(``{"mode": ..., "prefix": ...}``) is answered ``{"ready": true}`` once its sessions, agents and
connections are made, then waits for ``go``, writes, and answers what it measured
(``seconds``, ``failed``, ``requests``). So the writers' CPU is not the bench's, the server's
capacity is what the rate measures, and the case can read the server's CPU time just around the
timed part; the answer also says the CPU time this process spent in it (``cpu``), which tells
whether the writers themselves were the limit (near ``seconds``: one core busy). Modes:

- ``raw``: ``writers`` asyncpg connections, each inserting its agent's rows with the prepared
  statement of ``bench.raw_insert``, one at a time.
- ``client``: ``writers`` ``AsyncGraphQLSessionRepository`` instances, each calling
  ``create_message`` for its own session's agent, one at a time.
- ``behind``: the same with ``write_behind=True``; the clock stops when every ``flush()`` returned.
- ``shared``: one ``AsyncGraphQLSessionRepository`` with ``write_behind=True`` for all the
  agents, as agents of one process can share it (its sender puts several agents' messages in
  one request).

``requests`` counts the HTTP requests the timed part sent to the server (0 for raw).
"""

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from bench.conversation import APPEND_MESSAGE
from bench.raw_insert import RawInsert, create_session_and_agent
from client import AsyncGraphQLSessionRepository, GraphQLSessionError, calls

AGENT_ID = "writer"
MODES = ("raw", "client", "behind", "shared")

T = TypeVar("T")


class CountingRepository(AsyncGraphQLSessionRepository):
    """Counts the requests it sends (a retry inside one call is not counted again)."""

    requests = 0

    async def _run(self, call: calls.Call[T], *args: Any, **kwargs: Any) -> T:
        self.requests += 1
        return await super()._run(call, *args, **kwargs)


def session_id(prefix: str, number: int) -> str:
    return f"{prefix}-{number:02d}"


@dataclass
class Round:
    """A round made ready: ``timed()`` writes and answers how many calls raised."""

    timed: Callable[[], Coroutine[Any, Any, int]]
    close: Callable[[], Coroutine[Any, Any, None]]
    repositories: list[CountingRepository] = field(default_factory=list)

    def requests(self) -> int:
        return sum(repository.requests for repository in self.repositories)


@dataclass(frozen=True)
class Writers:
    url: str
    token: str | None
    libpq_url: str
    writers: int
    messages: int

    async def prepare(self, mode: str, prefix: str) -> Round:
        """Makes the round's sessions and agents (and connections), outside the timed part."""
        if mode == "raw":
            return await self._prepare_raw(prefix)
        shared = mode == "shared"
        repositories = [
            CountingRepository(self.url, token=self.token, write_behind=mode != "client")
            for _ in range(1 if shared else self.writers)
        ]
        mine = [repositories[0 if shared else number] for number in range(self.writers)]
        for number, repository in enumerate(mine):
            session = Session(session_id=session_id(prefix, number), session_type=SessionType.AGENT)
            await repository.create_session(session)
            agent = SessionAgent(agent_id=AGENT_ID, state={}, conversation_manager_state={})
            await repository.create_agent(session.session_id, agent)
        for repository in repositories:
            repository.requests = 0
        failed = 0

        async def write(repository: AsyncGraphQLSessionRepository, number: int) -> None:
            nonlocal failed
            for message_id in range(self.messages):
                message = SessionMessage(message=APPEND_MESSAGE, message_id=message_id)  # type: ignore[arg-type]
                try:
                    await repository.create_message(session_id(prefix, number), AGENT_ID, message)
                except GraphQLSessionError:
                    failed += 1
            try:
                await repository.flush()
            except GraphQLSessionError:
                failed += 1

        async def timed() -> int:
            await asyncio.gather(*(write(repository, number) for number, repository in enumerate(mine)))
            return failed

        async def close() -> None:
            await asyncio.gather(*(repository.aclose() for repository in repositories))

        return Round(timed, close, repositories)

    async def _prepare_raw(self, prefix: str) -> Round:
        connections = [await asyncpg.connect(self.libpq_url) for _ in range(self.writers)]
        inserts = []
        for number, conn in enumerate(connections):
            await create_session_and_agent(conn, session_id(prefix, number), AGENT_ID)
            inserts.append(await RawInsert.prepare(conn, APPEND_MESSAGE))

        async def write(insert: RawInsert, number: int) -> None:
            for message_id in range(self.messages):
                await insert(session_id(prefix, number), AGENT_ID, message_id)

        async def timed() -> int:
            await asyncio.gather(*(write(insert, number) for number, insert in enumerate(inserts)))
            return 0

        async def close() -> None:
            await asyncio.gather(*(conn.close() for conn in connections))

        return Round(timed, close)


def _answer(value: dict[str, Any]) -> None:
    print(json.dumps(value), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("libpq_url")
    parser.add_argument("--token")
    parser.add_argument("--writers", type=int, required=True)
    parser.add_argument("--messages", type=int, required=True)
    args = parser.parse_args()
    writers = Writers(args.url, args.token, args.libpq_url, args.writers, args.messages)
    with asyncio.Runner() as runner:
        for line in sys.stdin:
            asked = json.loads(line)
            made = runner.run(writers.prepare(asked["mode"], asked["prefix"]))
            try:
                _answer({"ready": True})
                if sys.stdin.readline().strip() != "go":
                    return
                start, cpu_start = time.perf_counter(), time.process_time()
                failed = runner.run(made.timed())
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                requests = made.requests()
            finally:
                runner.run(made.close())
            _answer({"seconds": seconds, "cpu": cpu, "failed": failed, "requests": requests})


if __name__ == "__main__":
    main()
