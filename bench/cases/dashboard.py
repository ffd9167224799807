"""Dashboard: one nested query, 10 sessions x 5 agents x 20 messages with their JSON, under load.

The data lives in its own tenant (``bench-dashboard``) so other cases' sessions never enter it:
our server is asked with ``X-Tenant``, PostGraphile with ``condition: {tenant: ...}``. Both
queries select the same columns (session id, times, labels; agent id and time; message id, role,
JSON and time) and both answers must carry the same 1,000 messages. The load driver
(``bench.load_driver``, 10 concurrent httpx clients) runs rounds alternately on our server and
on PostGraphile; the figure is each one's median requests per second over the rounds.
"""

import asyncio
import statistics
import time
from typing import Any

import httpx
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from bench import postgraphile
from bench.conversation import render
from bench.load_driver import requests_per_second
from bench.report import Row, ratio
from bench.run_context import BenchRun

TENANT = "bench-dashboard"
SESSIONS, AGENTS, MESSAGES = 10, 5, 20
CLIENTS = 10
TARGET = 1.0
CASE = f"dashboard {SESSIONS}x{AGENTS}x{MESSAGES} msgs, {CLIENTS} clients (req/s)"

OUR_QUERY = f"""
query Dashboard {{
  sessions(first: {SESSIONS}, orderBy: {{field: CREATED_AT, direction: DESC}}) {{
    nodes {{
      sessionId createdAt lastActivityAt labels
      agents {{
        agentId createdAt
        messagesConnection(first: {MESSAGES}) {{ nodes {{ messageId role message createdAt }} }}
      }}
    }}
  }}
}}"""


def postgraphile_query(fields: postgraphile.NestedFields) -> str:
    return f"""
query Dashboard {{
  {fields.sessions}(first: {SESSIONS}, orderBy: [CREATED_AT_DESC], condition: {{tenant: "{TENANT}"}}) {{
    nodes {{
      sessionId createdAt lastActivityAt labels
      {fields.agents}(orderBy: [PRIMARY_KEY_ASC]) {{
        nodes {{
          agentId createdAt
          {fields.messages}(first: {MESSAGES}, orderBy: [PRIMARY_KEY_ASC]) {{
            nodes {{ messageId role message createdAt }}
          }}
        }}
      }}
    }}
  }}
}}"""


def _seed(bench: BenchRun) -> None:
    with bench.repository(headers={"X-Tenant": TENANT}) as repository:
        for s in range(SESSIONS):
            session_id = f"dashboard-{s:02d}"
            repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
            for a in range(AGENTS):
                agent_id = f"agent-{a}"
                repository.create_agent(
                    session_id, SessionAgent(agent_id=agent_id, state={}, conversation_manager_state={})
                )
                messages = [
                    SessionMessage(message=render(s * AGENTS + a, n), message_id=n)  # type: ignore[arg-type]
                    for n in range(MESSAGES)
                ]
                repository.append_messages(session_id, agent_id, messages)


def _messages_in(data: Any, path: list[str]) -> int:
    """How many items the lists at the end of ``path`` hold (lists on the way are stepped through)."""
    if not path:
        return len(data) if isinstance(data, list) else 1
    if isinstance(data, list):
        return sum(_messages_in(item, path) for item in data)
    return _messages_in(data[path[0]], path[1:])


def _answer(url: str, query: str, headers: dict[str, str]) -> Any:
    answer = httpx.post(url, json={"query": query}, headers=headers, timeout=60).json()
    if "errors" in answer:
        raise RuntimeError(f"{url}: {answer['errors']}")
    return answer["data"]


def run(bench: BenchRun) -> list[Row]:
    target = f">= {TARGET}x"
    try:
        if postgraphile.installed_version(postgraphile.cache_dir()) is None:
            bench.log(
                f"dashboard: installing {' '.join(postgraphile.PACKAGES)} into {postgraphile.cache_dir()}"
            )
        postgraphile.install()
        bench.log(f"dashboard: seeding {SESSIONS * AGENTS * MESSAGES} messages in tenant {TENANT}")
        _seed(bench)
        return _measure(bench)
    except postgraphile.PostGraphileUnavailableError as error:
        return [Row.skip(CASE, target, f"PostGraphile unavailable: {error}")]


def _measure(bench: BenchRun) -> list[Row]:
    ours_headers = {**bench.server.headers, "X-Tenant": TENANT}
    log = bench.workdir / "postgraphile.log"
    with postgraphile.running_postgraphile(bench.database.libpq_url, log) as theirs:
        theirs_url = theirs.url
        fields = postgraphile.nested_fields(theirs_url)
        theirs_query = postgraphile_query(fields)
        ours_count = _messages_in(
            _answer(bench.server.url, OUR_QUERY, ours_headers),
            ["sessions", "nodes", "agents", "messagesConnection", "nodes"],
        )
        theirs_count = _messages_in(
            _answer(theirs_url, theirs_query, {}),
            [fields.sessions, "nodes", fields.agents, "nodes", fields.messages, "nodes"],
        )
        expected = SESSIONS * AGENTS * MESSAGES
        if not ours_count == theirs_count == expected:
            raise RuntimeError(
                f"answers differ: ours {ours_count} messages,"
                f" PostGraphile {theirs_count}, expected {expected}"
            )
        rounds = bench.sizes.dashboard_rounds
        bench.log(
            f"dashboard: {rounds} rounds of {bench.sizes.dashboard_seconds:.0f} s each,"
            f" ours and {theirs.description}"
        )
        driver_started, wall_started = time.process_time(), time.perf_counter()
        ours_rps: list[float] = []
        theirs_rps: list[float] = []
        for _ in range(rounds):
            for url, query, headers, into in (
                (bench.server.url, OUR_QUERY, ours_headers, ours_rps),
                (theirs_url, theirs_query, {}, theirs_rps),
            ):
                measured = requests_per_second(
                    url, {"query": query}, headers, CLIENTS, bench.sizes.dashboard_seconds
                )
                into.append(asyncio.run(measured))
        driver = time.process_time() - driver_started
        bench.log(
            f"dashboard: the load driver used {driver / (time.perf_counter() - wall_started):.0%} of a CPU"
        )
    figure, reference = statistics.median(ours_rps), statistics.median(theirs_rps)
    return [
        Row(
            case=CASE,
            figure=f"{figure:.1f} req/s",
            reference=f"{reference:.1f} req/s {theirs.description}",
            ratio=ratio(figure, reference),
            target=f">= {TARGET}x",
            met=figure / reference >= TARGET,
        )
    ]
