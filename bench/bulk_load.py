"""Stores many messages fast, with SQL, as the server would have stored them one by one.

The eight conversation templates (``bench.conversation``) are derived once with ``db.conversations.facts``
and ``db.conversations.message_writes.facts_json``, the functions the server derives messages with; their
facts go into a temporary table, and ``generate_series`` replicates them over sessions, agents
and message ids, filling the placeholders (order number, tool use ids, tracking id) in both the
JSON and the text, and spreading ``created_at`` over one day. Tool calls go into
``session_tool_calls`` as the server merges a call and its result, and the agents' and
sessions' totals and activity times are summed from the stored rows, as migration 0003 does.
The messages go in time order, a slice of the day at a time, as agents write them. Each session
is labelled as a deployment would label it: a team (one of ``TEAMS``, taking turns, so
``{labels: {team: "payments"}}`` keeps a quarter), a user and a channel. ``verify`` re-derives a
sample of stored rows with ``db.conversations.facts`` and checks the totals and the teams.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from bench.conversation import MESSAGE_ID, ORDER, PREVIOUS_ID, TEMPLATES, TRACKING_ID
from db.conversations.facts import facts_of
from db.conversations.message_writes import FACT_COLUMNS, TOTALS, facts_json

AGENT_NAMES = ("triage", "billing", "shipping", "support", "qa")
MESSAGES_PER_AGENT = 1_000
SESSION_PREFIX = "load-"
TEAM_LABEL = "team"
"""The label the dashboard's label variable filters by in the benchmark (and the rollups keep)."""
TEAMS = ("payments", "logistics", "support", "sales")
DAY = timedelta(days=1)
SLICES = 20
"""Time slices the day is loaded in, one after another."""


@dataclass(frozen=True)
class Layout:
    """Where the messages go: ``sessions`` sessions of five agents, ``per_agent`` messages each."""

    sessions: int
    per_agent: int
    day_start: datetime

    @property
    def messages(self) -> int:
        return self.sessions * len(AGENT_NAMES) * self.per_agent

    @property
    def day_end(self) -> datetime:
        return self.day_start + DAY

    def team_sessions(self, team: str) -> int:
        """Sessions labelled ``{"team": team}``: session ``n`` is in team ``TEAMS[n % len(TEAMS)]``."""
        return len(range(TEAMS.index(team), self.sessions, len(TEAMS)))

    def team_messages(self, team: str) -> int:
        return self.team_sessions(team) * len(AGENT_NAMES) * self.per_agent


def layout_for(messages: int, day_start: datetime) -> Layout:
    per_session = len(AGENT_NAMES) * MESSAGES_PER_AGENT
    return Layout(
        sessions=max(1, round(messages / per_session)), per_agent=MESSAGES_PER_AGENT, day_start=day_start
    )


_TEMPLATE_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS bench_templates (
    t int PRIMARY KEY, role text, body text,
    plain_text text, content_types text[], tool_names text[], tool_statuses text[], tool_calls int,
    tool_errors int, input_tokens int, output_tokens int, total_tokens int, cache_read_tokens int,
    cache_write_tokens int, latency_ms int, time_to_first_byte_ms int, is_redacted boolean,
    call_ids text[], call_names text[], result_ids text[], result_statuses text[]
) ON COMMIT PRESERVE ROWS;
TRUNCATE bench_templates;
"""


def template_rows() -> list[tuple[Any, ...]]:
    """Each template with the facts the server derives from it, placeholders still in."""
    rows = []
    for number, message in enumerate(TEMPLATES):
        facts = facts_json(facts_of(message, None), 0)
        rows.append(
            (
                number,
                message["role"],
                json.dumps(message, ensure_ascii=False, separators=(",", ":")),
                *(facts["text" if name == "plain_text" else name] for name in FACT_COLUMNS),
                [call["id"] for call in facts["calls"]],
                [call["name"] for call in facts["calls"]],
                [result["id"] for result in facts["results"]],
                [result["status"] for result in facts["results"]],
            )
        )
    return rows


# One row per message to store, for the sessions numbered $1 to $2 - 1: the messages numbered $5 to
# $6 - 1 of each agent's $3, spread over the day from $4 in message order, each agent a little
# apart from the others.
_GENERATED = f"""
WITH agents AS (
    SELECT format('{SESSION_PREFIX}%s', lpad(n::text, 6, '0')) AS session_id,
        (ARRAY{list(AGENT_NAMES)})[k + 1] AS agent_id, n * {len(AGENT_NAMES)} + k AS agent_number
    FROM generate_series($1::int, $2::int - 1) n, generate_series(0, {len(AGENT_NAMES) - 1}) k
),
generated AS (
    SELECT a.session_id, a.agent_id, g.i AS message_id, t.*,
        (100000 + (a.agent_number * 7919 + g.i / {len(TEMPLATES)}) % 900000)::text AS order_number,
        $4::timestamptz + make_interval(
            secs => (g.i + (a.agent_number % 97) / 100.0) * 86400.0 / $3::int
        ) AS created_at
    FROM agents a, generate_series($5::int, $6::int - 1) g(i)
    JOIN bench_templates t ON t.t = g.i % {len(TEMPLATES)}
)
"""
_INSERT_MESSAGES = (
    _GENERATED
    + f"""
INSERT INTO session_messages (
    session_id, tenant, agent_id, message_id, role, message, redact_message, created_at, updated_at,
    {", ".join(FACT_COLUMNS)}
)
SELECT session_id, 'default', agent_id, message_id, role,
    replace(replace(replace(replace(body, '{ORDER}', order_number), '{MESSAGE_ID}', message_id::text),
        '{PREVIOUS_ID}', (message_id - 1)::text),
        '{TRACKING_ID}', md5(session_id || '/' || agent_id || '/' || message_id)::uuid::text)::json,
    NULL, created_at, created_at, replace(plain_text, '{ORDER}', order_number),
    {", ".join(FACT_COLUMNS[1:])}
FROM generated ORDER BY created_at
"""
)
# Calls first, then results merged into them, as ``db.conversations.message_writes`` merges a result
# into its call.
_INSERT_TOOL_CALLS = (
    _GENERATED
    + f"""
INSERT INTO session_tool_calls (
    session_id, tenant, agent_id, tool_use_id, name, called_message_id, called_at, status, result_message_id
)
SELECT session_id, 'default', agent_id, replace(c.id, '{MESSAGE_ID}', message_id::text), c.name,
    message_id, created_at, NULL, NULL
FROM generated, unnest(call_ids, call_names) AS c(id, name)
"""
)
_MERGE_TOOL_RESULTS = (
    _GENERATED
    + f"""
INSERT INTO session_tool_calls AS c (
    session_id, tenant, agent_id, tool_use_id, name, called_message_id, called_at, status, result_message_id
)
SELECT session_id, 'default', agent_id, replace(r.id, '{PREVIOUS_ID}', (message_id - 1)::text), '',
    NULL, NULL, r.status, message_id
FROM generated, unnest(result_ids, result_statuses) AS r(id, status)
ON CONFLICT (session_id, tenant, agent_id, tool_use_id) DO UPDATE SET
    status = coalesce(excluded.status, c.status),
    result_message_id = coalesce(excluded.result_message_id, c.result_message_id)
"""
)
_SUMS = "count(*) AS message_count, " + ", ".join(f"coalesce(sum({c}), 0) AS {c}" for c in TOTALS)
_SET_TOTALS = ", ".join(f"{c} = f.{c}" for c in ("message_count", *TOTALS))
_SESSION_RANGE = "session_id >= $1 AND session_id < $2"


async def _load_messages(conn: asyncpg.Connection, layout: Layout, first: int, last: int) -> None:
    """The messages numbered ``first`` to ``last - 1`` of every agent, stored in time order."""
    async with conn.transaction():
        arguments = (0, layout.sessions, layout.per_agent, layout.day_start, first, last)
        for statement in (_INSERT_MESSAGES, _INSERT_TOOL_CALLS, _MERGE_TOOL_RESULTS):
            await conn.execute(statement, *arguments)


def _session_id(number: int) -> str:
    return f"{SESSION_PREFIX}{number:06d}"


async def load(libpq_url: str, layout: Layout) -> None:
    """Stores ``layout.messages`` messages in new sessions of tenant ``default``, then analyzes."""
    pool = await asyncpg.create_pool(libpq_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute(
                f"""
                INSERT INTO sessions (session_id, tenant, session_type, created_at, updated_at, labels)
                SELECT format('{SESSION_PREFIX}%s', lpad(n::text, 6, '0')), 'default', 'AGENT', $2, $2,
                    jsonb_build_object('{TEAM_LABEL}', (ARRAY{list(TEAMS)})[n % {len(TEAMS)} + 1],
                        'user', 'user-' || n, 'channel', (ARRAY['web', 'app', 'phone'])[n % 3 + 1])
                FROM generate_series(0, $1::int - 1) n;
                """,
                layout.sessions,
                layout.day_start,
            )
            await conn.execute(
                f"""
                INSERT INTO session_agents (session_id, tenant, agent_id, state, conversation_manager_state,
                    internal_state, created_at, updated_at)
                SELECT s.session_id, s.tenant, agent_id, '{{}}', '{{"removed_message_count": 0}}', '{{}}',
                    s.created_at, s.created_at
                FROM sessions s, unnest($1::text[]) agent_id WHERE s.session_id LIKE '{SESSION_PREFIX}%'
                """,
                list(AGENT_NAMES),
            )
        # In time order, a slice of the day at a time, as agents would have written them: the table
        # then holds a stretch of time in neighbouring pages (what newest-first reads and the
        # rollups' fold of a bucket find), and a result's call is stored before it.
        async with pool.acquire() as conn:
            await conn.execute(_TEMPLATE_TABLE)
            rows = template_rows()
            values = ", ".join(f"${n}" for n in range(1, len(rows[0]) + 1))
            await conn.executemany(f"INSERT INTO bench_templates VALUES ({values})", rows)
            step = -(-layout.per_agent // SLICES)
            for first in range(0, layout.per_agent, step):
                await _load_messages(conn, layout, first, min(first + step, layout.per_agent))
        async with pool.acquire() as conn:
            bounds = (_session_id(0), _session_id(layout.sessions))
            await conn.execute(
                f"""
                UPDATE session_agents a SET {_SET_TOTALS}, last_activity_at = f.latest
                FROM (SELECT session_id, tenant, agent_id, {_SUMS}, max(created_at) AS latest
                      FROM session_messages WHERE {_SESSION_RANGE} GROUP BY session_id, tenant, agent_id) f
                WHERE (a.session_id, a.tenant, a.agent_id) = (f.session_id, f.tenant, f.agent_id)
                """,
                *bounds,
            )
            await conn.execute(
                f"""
                UPDATE sessions s SET {_SET_TOTALS}, last_activity_at = f.latest, updated_at = f.latest
                FROM (SELECT session_id, tenant, {_SUMS}, max(created_at) AS latest
                      FROM session_messages WHERE {_SESSION_RANGE} GROUP BY session_id, tenant) f
                WHERE (s.session_id, s.tenant) = (f.session_id, f.tenant)
                """,
                *bounds,
            )
            # As autovacuum would have done by the time a store holds this much.
            await conn.execute(
                "VACUUM ANALYZE sessions, session_agents, session_messages, session_tool_calls"
            )
    finally:
        await pool.close()


async def verify(libpq_url: str, layout: Layout) -> None:
    """Raises AssertionError unless sampled rows carry the facts ``db.conversations.facts`` finds in them and
    the totals add up."""
    conn = await asyncpg.connect(libpq_url)
    try:
        rows = await conn.fetch(
            f"""
            SELECT message::text AS message, {", ".join(FACT_COLUMNS)}
            FROM session_messages WHERE session_id = $1 AND tenant = 'default' AND message_id < $2
            """,
            _session_id(layout.sessions - 1),
            2 * len(TEMPLATES),
        )
        assert len(rows) == min(2 * len(TEMPLATES), layout.per_agent) * len(AGENT_NAMES), len(rows)
        for row in rows:
            facts = facts_json(facts_of(json.loads(row["message"]), None), 0)
            for name in FACT_COLUMNS:
                expected = facts["text" if name == "plain_text" else name]
                assert row[name] == expected, (name, row[name], expected)
        bounds = (_session_id(0), _session_id(layout.sessions))
        stored = await conn.fetchval(f"SELECT count(*) FROM session_messages WHERE {_SESSION_RANGE}", *bounds)
        counted = await conn.fetchval(
            f"SELECT sum(message_count) FROM sessions WHERE {_SESSION_RANGE}", *bounds
        )
        calls = await conn.fetchrow(
            "SELECT sum(tool_calls) AS calls, sum(tool_errors) AS errors "
            f"FROM sessions WHERE {_SESSION_RANGE}",
            *bounds,
        )
        recorded = await conn.fetchrow(
            "SELECT count(*) AS calls, count(*) FILTER (WHERE status = 'error') AS errors "
            f"FROM session_tool_calls WHERE {_SESSION_RANGE}",
            *bounds,
        )
        assert stored == counted == layout.messages, (stored, counted, layout.messages)
        teams = dict(
            await conn.fetch(
                f"SELECT labels->>'{TEAM_LABEL}', count(*) FROM sessions WHERE {_SESSION_RANGE} GROUP BY 1",
                *bounds,
            )
        )
        expected = {team: layout.team_sessions(team) for team in TEAMS}
        assert teams == {team: n for team, n in expected.items() if n}, (teams, expected)
        assert (calls["calls"], calls["errors"]) == (recorded["calls"], recorded["errors"]), (calls, recorded)
    finally:
        await conn.close()
