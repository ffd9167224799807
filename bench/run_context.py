"""What the cases of one run share: the database, the server, the sizes, and data made once on demand.

Data several cases read (the 10,000-message agent, the bulk-loaded messages) is made by the first
case that asks for it, so ``--only`` any case works on its own.
"""

import asyncio
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from strands.session.file_session_manager import FileSessionManager
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from bench import bulk_load
from bench.conversation import render
from bench.fresh_database import Database
from bench.rollup_catch_up import catch_up_seconds, wait_for_rollups
from bench.server_process import Server
from bench.sizes import Sizes
from client import AsyncGraphQLSessionRepository, GraphQLSessionRepository

BATCH = 1_000
"""Messages per appendMessages while seeding (the server's SESSION_GRAPHQL_MAX_BATCH)."""
RESTORE_AGENT_NUMBER = 10_000_000
"""Keeps the restored agent's order numbers apart from the bulk-loaded ones."""


@dataclass(frozen=True)
class RestoreAgent:
    session_id: str
    agent_id: str
    messages: int
    storage_dir: Path
    """Where FileSessionManager keeps the same agent."""


@dataclass
class BenchRun:
    sizes: Sizes
    database: Database
    server: Server
    workdir: Path
    started: float = field(default_factory=time.perf_counter)
    _restore_agent: RestoreAgent | None = None
    _stored: bulk_load.Layout | None = None
    _rollups_caught_up: bool = False

    def log(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f}s] {text}", file=sys.stderr, flush=True)

    def repository(
        self, headers: dict[str, str] | None = None, *, write_behind: bool = False
    ) -> GraphQLSessionRepository:
        return GraphQLSessionRepository(
            self.server.url, token=self.server.token, headers=headers, write_behind=write_behind
        )

    def async_repository(
        self, headers: dict[str, str] | None = None, *, write_behind: bool = False
    ) -> AsyncGraphQLSessionRepository:
        return AsyncGraphQLSessionRepository(
            self.server.url, token=self.server.token, headers=headers, write_behind=write_behind
        )

    def restore_agent(self) -> RestoreAgent:
        """One agent of ``sizes.restore_messages`` messages, in the store and in Strands' files."""
        if self._restore_agent is None:
            count = self.sizes.restore_messages
            self.log(f"writing a {count:,}-message agent to the server and to FileSessionManager files")
            session_id, agent_id = "restore", "restored-agent"
            messages = [
                SessionMessage(message=render(RESTORE_AGENT_NUMBER, n), message_id=n)  # type: ignore[arg-type]
                for n in range(count)
            ]
            with self.repository() as repository:
                repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
                repository.create_agent(
                    session_id, SessionAgent(agent_id=agent_id, state={}, conversation_manager_state={})
                )
                for first in range(0, count, BATCH):
                    repository.append_messages(session_id, agent_id, messages[first : first + BATCH])
            storage_dir = self.workdir / "strands-files"
            files = FileSessionManager(session_id, storage_dir=str(storage_dir))
            files.create_agent(
                session_id, SessionAgent(agent_id=agent_id, state={}, conversation_manager_state={})
            )
            for message in messages:
                files.create_message(session_id, agent_id, message)
            self._restore_agent = RestoreAgent(session_id, agent_id, count, storage_dir)
        return self._restore_agent

    def stored_messages(self) -> bulk_load.Layout:
        """``sizes.stored_messages`` messages over the last whole day, loaded with SQL and checked, once
        the rollups have taken them in (``bench.rollup_catch_up``; until they have, each case waits)."""
        if self._stored is None:
            day_start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
            layout = bulk_load.layout_for(self.sizes.stored_messages, day_start)
            self.log(f"loading {layout.messages:,} messages with SQL ({layout.sessions} sessions x 5 agents)")
            began = time.perf_counter()
            asyncio.run(bulk_load.load(self.database.libpq_url, layout))
            asyncio.run(bulk_load.verify(self.database.libpq_url, layout))
            self.log(f"loaded and checked in {time.perf_counter() - began:.1f} s")
            self._stored = layout
        if not self._rollups_caught_up:
            timeout = catch_up_seconds(self._stored.messages)
            asyncio.run(wait_for_rollups(self.database.libpq_url, timeout, self.log))
            self._rollups_caught_up = True
        return self._stored
