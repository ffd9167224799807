"""What the retention and erasure tests share: conversations seeded through the API, agents
writing while sessions are deleted, and statistics checked against the rows."""

import asyncio
import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from strands import Agent
from strands.session import RepositorySessionManager

from client import GraphQLSessionRepository
from graphql_api.settings import Limits
from tests.api_calls import data_of
from tests.fake_model import FakeModel
from tests.secured import Secured
from tests.stats_from_rows import RawRows
from tests.strands_messages import assistant, tool_results, user
from tests.test_migrations import inspect, rows
from tests.test_stats_exactness import Window, assert_served_equals_rows, reads_for

AGENT = "support"
STRANDS_WINDOW = {"__name__": "SlidingWindowConversationManager", "removed_message_count": 0}
"""The conversation manager state Strands' default agent keeps, so agents can load seeded sessions."""
SESSIONS_PER_REQUEST = 12
"""Three aliased fields a session: under the server's 50 aliases."""

AGENTS_UNLIMITED = Limits(rate_per_second=100_000, rate_burst=100_000)
"""The writers talk as fast as the machine lets them, which the default rate limit (50 a second
per key) would refuse on a fast one: these tests are about deletes, not rate limits."""
SESSIONS_PER_WRITER = 5
TURNS_PER_SESSION = 3
TURN_PAUSE_SECONDS = 0.2
"""A writer's pace: five sessions of three turns take it three seconds or more, however fast the
machine, and it stops there, so the statistics' checks (grouped by session) stay within a chart's
key limit and no transcript outgrows Strands' window of 40 messages."""


def conversation_at(at: datetime, n: int) -> list[dict[str, Any]]:
    """Four messages: a question, a tool call, its result, an answer with usage and latency."""
    call = f"call-{n}"
    return [
        {"messageId": 0, "message": user(f"question {n}"), "createdAt": at.isoformat()},
        {
            "messageId": 1,
            "message": assistant(tools=[(call, "refund" if n % 3 == 0 else "lookup", {"n": n})]),
            "createdAt": (at + timedelta(minutes=1)).isoformat(),
        },
        {
            "messageId": 2,
            "message": tool_results((call, "error" if n % 4 == 0 else "success")),
            "createdAt": (at + timedelta(minutes=2)).isoformat(),
        },
        {
            "messageId": 3,
            "message": assistant(f"answer {n}", usage=(10 + n % 7, 5, 15 + n % 7), latency_ms=100 + n % 50),
            "createdAt": (at + timedelta(minutes=3)).isoformat(),
        },
    ]


def seed(secured: Secured, key: str, sessions: list[tuple[str, dict[str, str]]], start: datetime) -> None:
    """Sessions (id, labels), each with one agent and four messages from ``start`` on, and a storage
    object under the session's key; through the API, a dozen sessions a request."""
    for first in range(0, len(sessions), SESSIONS_PER_REQUEST):
        chunk = sessions[first : first + SESSIONS_PER_REQUEST]
        params, fields, variables = [], [], {}
        for n, (session_id, labels) in enumerate(chunk, start=first):
            params.append(f"$l{n}: JSON, $m{n}: [MessageInput!]!, $d{n}: Base64!")
            variables |= {
                f"l{n}": labels,
                f"m{n}": conversation_at(start + timedelta(seconds=40 * n), n),
                f"d{n}": base64.b64encode(f"notes of {session_id}".encode()).decode(),
            }
            fields.append(
                f's{n}: createSession(session: {{sessionId: "{session_id}", labels: $l{n}}}) {{ sessionId }} '
                f'a{n}: createAgent(sessionId: "{session_id}", agent: {{agentId: "{AGENT}", state: {{}}, '
                f"conversationManagerState: $c}}) {{ agentId }} "
                f'm{n}: appendMessages(sessionId: "{session_id}", agentId: "{AGENT}", messages: $m{n}) '
                "{ messageId } "
                f'o{n}: writeStorageObject(key: "session/{session_id}/notes.json", data: $d{n}) {{ key }}'
            )
        document = f"mutation($c: JSON!, {', '.join(params)}) {{ {' '.join(fields)} }}"
        data_of(secured.graphql(document, {**variables, "c": STRANDS_WINDOW}, key=key))


def set_idle(url: str, tenant: str, session_ids: list[str], days: float) -> None:
    """Makes the sessions' last activity ``days`` ago: what time would do."""

    def update(conn: Connection) -> None:
        conn.execute(
            text(
                "UPDATE sessions SET last_activity_at = now() - make_interval(secs => :seconds) "
                "WHERE tenant = :tenant AND session_id = ANY(:ids)"
            ),
            {"seconds": days * 86400, "tenant": tenant, "ids": session_ids},
        )
        conn.commit()

    inspect(url, update)


def session_ids(url: str, tenant: str, prefix: str = "") -> set[str]:
    found = inspect(
        url,
        lambda conn: conn.execute(
            text("SELECT session_id FROM sessions WHERE tenant = :t AND starts_with(session_id, :p)"),
            {"t": tenant, "p": prefix},
        ).all(),
    )
    return {row[0] for row in found}


def count(url: str, sql: str) -> int:
    return int(inspect(url, rows(sql))[0][0])


def agent_on(url: str, key: str, session_id: str) -> Agent:
    manager = RepositorySessionManager(
        session_id=session_id, session_repository=GraphQLSessionRepository(url, token=key)
    )
    return Agent(agent_id=AGENT, model=FakeModel(), session_manager=manager, callback_handler=None)


@dataclass
class Writers:
    """Strands agents talking in fresh sessions, a turn after another, until stopped."""

    url: str
    key: str
    prefix: str
    agents: dict[str, Agent] = field(default_factory=dict)
    failures: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _talk(self, number: int) -> None:
        turn = 0
        try:
            while not self.stop.is_set():
                if turn == SESSIONS_PER_WRITER * TURNS_PER_SESSION:
                    return
                session_id = f"{self.prefix}{number}-{turn // TURNS_PER_SESSION}"
                if session_id not in self.agents:
                    self.agents[session_id] = agent_on(self.url, self.key, session_id)
                self.agents[session_id](f"turn {turn} of writer {number}")
                turn += 1
                self.stop.wait(TURN_PAUSE_SECONDS)
        except BaseException as error:
            self.failures.append(error)

    @contextmanager
    def running(self, count: int) -> Iterator["Writers"]:
        threads = [threading.Thread(target=self._talk, args=(n,), daemon=True) for n in range(count)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert not self.failures, self.failures

    def stored_counts(self, url: str, tenant: str) -> dict[str, int]:
        found = inspect(
            url,
            lambda conn: conn.execute(
                text(
                    "SELECT session_id, message_count FROM sessions "
                    "WHERE tenant = :t AND starts_with(session_id, :p)"
                ),
                {"t": tenant, "p": self.prefix},
            ).all(),
        )
        return {row[0]: row[1] for row in found}


def assert_statistics_equal_the_rows(
    secured: Secured, root_key: str, tenants: list[str], start: datetime, when: str
) -> None:
    """Charts and tool tables of every tenant, and across tenants, equal what the stored rows add
    up to, before the rollups' fold took the deletes in and after (tests/test_stats_exactness.py)."""
    end = datetime.now(UTC) + timedelta(hours=1)
    window = Window(start - timedelta(hours=2), end, live=False)
    middle = window.start + (end - window.start) / 2
    reads = reads_for(window, [(window.start + timedelta(minutes=20), middle), (middle, end)])
    headers = {"Authorization": f"Bearer {root_key}"}
    with (
        asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner,
        httpx.Client(base_url=secured.server.base_url, headers=headers, timeout=60) as http,
    ):
        engine = create_async_engine(secured.database_url, pool_size=1, max_overflow=0)
        raw = RawRows(runner, engine)
        try:
            assert_served_equals_rows(http, raw, "", tenants, reads, f"{when}, before the fold")
            assert raw.wait_for_fold()
            assert_served_equals_rows(http, raw, "", tenants, reads, f"{when}, after the fold")
        finally:
            runner.run(engine.dispose())
