"""With 100,000 messages stored and ANALYZEd, the SQL the server sends for a dashboard's usual questions
reads ``session_messages`` (and, for the recent-sessions listing, ``sessions``) through indexes: the
planner, left to itself, never scans those tables sequentially.

The rows are written by bulk SQL shaped like Strands messages (text, toolUse and toolResult blocks,
``metadata.usage`` and ``metadata.metrics``, a few redactions), with the derived columns filled by SQL
that a test checks against ``db.conversations.facts.facts_of``. The plans are those of the statements
the running server really sent, with their parameters, captured on its engine.
"""

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.conversations.facts import facts_of
from db.conversations.message_writes import TOTALS, facts_json
from db.engine import create_engine
from db.migrate import upgrade
from graphql_api.settings import Limits, Settings
from tests.conftest import RunningServer, sent_in_background
from tests.scratch_database import scratch_database

START = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 30
TENANTS = ("plan-a", "plan-b", "plan-c", "plan-d")
TENANT = "plan-b"
SESSIONS = 2000
AGENTS = ("support", "researcher")
TURNS = 25
MESSAGES = SESSIONS * len(AGENTS) * TURNS
SESSION_SPACING = timedelta(days=DAYS) / SESSIONS
TURN_SPACING = timedelta(seconds=20)
# fmt: off
VOCABULARY = (
    "order", "delivery", "account", "password", "invoice", "shipping", "address", "payment", "card",
    "subscription", "plan", "upgrade", "cancel", "help", "thanks", "question", "problem", "error", "login",
    "email", "phone", "support", "time", "week", "today", "status", "package", "store", "price", "discount",
)
# fmt: on
TOOLS = ("search_orders", "issue_refund", "lookup_customer", "send_email", "get_weather")
RARE_WORD = "refund"
"""In about one message in a hundred: what "which conversations mention a refund" looks for."""
REDACTION = {"role": "user", "content": [{"text": "[REDACTED]"}]}


def _array(values: tuple[str, ...] | list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{value}'" for value in values) + "]"


# Every message of every agent: turn n of an agent is a user question (even n), an answer (odd n),
# a tool call (n % 10 == 3, an assistant turn) or that call's result (n % 10 == 4, a user turn).
# ``h`` is a per-message hash that picks words, tools, statuses, tokens and latencies.
_TURNS = f"""
WITH turns AS (
    SELECT a.session_id, a.tenant, a.agent_id, n AS message_id,
        a.created_at
            + (2 * n + (a.agent_id = 'researcher')::int + 1) * interval '{TURN_SPACING.seconds // 2} s' AS at,
        hashtext(a.session_id || '/' || a.agent_id || '/' || n)::bigint & 2147483647 AS h,
        format('call-%s-%s-%s', a.session_id, a.agent_id, n - (n % 10 = 4)::int) AS call_id,
        CASE WHEN n % 10 = 3 THEN 'call' WHEN n % 10 = 4 THEN 'result'
             WHEN n % 2 = 1 THEN 'answer' ELSE 'question' END AS kind
    FROM session_agents a, generate_series(0, {TURNS - 1}) n
),
shaped AS (
    SELECT *,
        concat_ws(' ', ({_array(VOCABULARY)})[1 + h % {len(VOCABULARY)}],
            ({_array(VOCABULARY)})[1 + (h / 31) % {len(VOCABULARY)}],
            ({_array(VOCABULARY)})[1 + (h / 997) % {len(VOCABULARY)}],
            CASE WHEN h % 97 = 0 THEN '{RARE_WORD}' END) AS words,
        ({_array(TOOLS)})[1 + h % {len(TOOLS)}] AS tool,
        CASE WHEN h % 6 = 0 THEN 'error' ELSE 'success' END AS status,
        kind IN ('answer', 'call') AS from_model,
        kind = 'question' AND h % 499 = 0 AS redacted,
        200 + h % 800 AS input_tokens, 20 + (h / 800) % 300 AS output_tokens,
        CASE WHEN h % 3 = 0 THEN 128 ELSE 0 END AS cache_read_tokens,
        300 + h % 2500 AS latency_ms, 80 + h % 400 AS ttfb_ms
    FROM turns
),
bodies AS (
    SELECT *,
        CASE kind
            WHEN 'question' THEN words
            WHEN 'answer' THEN 'Here is what I found: ' || words
            WHEN 'call' THEN 'Let me check that.'
            ELSE 'Tool said: ' || words
        END AS body_text
    FROM shaped
)
INSERT INTO session_messages (
    session_id, tenant, agent_id, message_id, role, message, redact_message, created_at, updated_at,
    plain_text, content_types, tool_names, tool_statuses, tool_calls, tool_errors, input_tokens,
    output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, latency_ms, time_to_first_byte_ms,
    is_redacted
)
SELECT session_id, tenant, agent_id, message_id,
    CASE WHEN from_model THEN 'assistant' ELSE 'user' END,
    json_build_object(
        'role', CASE WHEN from_model THEN 'assistant' ELSE 'user' END,
        'content', CASE kind
            WHEN 'call' THEN json_build_array(
                json_build_object('text', body_text),
                json_build_object('toolUse', json_build_object(
                    'toolUseId', call_id, 'name', tool, 'input', json_build_object('query', words))))
            WHEN 'result' THEN json_build_array(json_build_object('toolResult', json_build_object(
                'toolUseId', call_id, 'status', status,
                'content', json_build_array(json_build_object('text', body_text)))))
            ELSE json_build_array(json_build_object('text', body_text))
        END,
        'metadata', CASE WHEN from_model THEN json_build_object(
            'usage', json_build_object('inputTokens', input_tokens, 'outputTokens', output_tokens,
                'totalTokens', input_tokens + output_tokens, 'cacheReadInputTokens', cache_read_tokens),
            'metrics', json_build_object('latencyMs', latency_ms, 'timeToFirstByteMs', ttfb_ms)) END
    ),
    CASE WHEN redacted THEN CAST(:redaction AS json) END,
    at, at,
    CASE WHEN redacted THEN '[REDACTED]' ELSE body_text END,
    CASE kind WHEN 'call' THEN ARRAY['text', 'toolUse'] WHEN 'result' THEN ARRAY['toolResult']
        ELSE ARRAY['text'] END,
    CASE WHEN kind = 'call' THEN ARRAY[tool] ELSE '{{}}'::text[] END,
    CASE WHEN kind = 'result' THEN ARRAY[status] ELSE '{{}}'::text[] END,
    (kind = 'call')::int,
    (kind = 'result' AND status = 'error')::int,
    CASE WHEN from_model THEN input_tokens END,
    CASE WHEN from_model THEN output_tokens END,
    CASE WHEN from_model THEN input_tokens + output_tokens END,
    CASE WHEN from_model THEN cache_read_tokens END,
    CASE WHEN from_model THEN 0 END,
    CASE WHEN from_model THEN latency_ms END,
    CASE WHEN from_model THEN ttfb_ms END,
    redacted
FROM bodies
"""

_SUMS = "count(*) AS message_count, " + ", ".join(f"coalesce(sum({name}), 0) AS {name}" for name in TOTALS)
_SETS = ", ".join(f"{name} = f.{name}" for name in ("message_count", *TOTALS))

LOAD = [
    text(
        "INSERT INTO sessions (session_id, tenant, session_type, created_at, updated_at, last_activity_at, "
        "labels, title) "
        "SELECT format('plan-s%s', lpad(s::text, 5, '0')), "
        f"({_array(TENANTS)})[1 + s % {len(TENANTS)}], 'AGENT', at, at, at, "
        "jsonb_build_object('user', 'user-' || s % 50, "
        "'channel', (ARRAY['web', 'app', 'email'])[1 + s % 3]), "
        "'Conversation ' || s "
        f"FROM generate_series(0, {SESSIONS - 1}) s, "
        "LATERAL (SELECT CAST(:start AS timestamptz) "
        f"+ s * interval '{SESSION_SPACING.total_seconds()} s') t(at)"
    ),
    text(
        "INSERT INTO session_agents (session_id, tenant, agent_id, state, conversation_manager_state, "
        "internal_state, created_at, updated_at, last_activity_at) "
        """SELECT s.session_id, s.tenant, a.agent_id, '{"turns": 0}', '{"removed_message_count": 0}', """
        "'{}', s.created_at, s.created_at, s.created_at "
        f"FROM sessions s, unnest({_array(AGENTS)}) a(agent_id)"
    ),
    text(_TURNS),
    # A call and its result (the next message of the same agent) are one row, as insert_messages makes it.
    text(
        "INSERT INTO session_tool_calls (session_id, tenant, agent_id, tool_use_id, name, called_message_id, "
        "called_at, status, result_message_id) "
        "SELECT c.session_id, c.tenant, c.agent_id, c.message->'content'->1->'toolUse'->>'toolUseId', "
        "c.tool_names[1], c.message_id, c.created_at, r.tool_statuses[1], r.message_id "
        "FROM session_messages c JOIN session_messages r ON r.session_id = c.session_id "
        "AND r.tenant = c.tenant AND r.agent_id = c.agent_id AND r.message_id = c.message_id + 1 "
        "WHERE c.tool_calls > 0"
    ),
    text(
        f"UPDATE session_agents a SET {_SETS}, last_activity_at = f.latest "
        f"FROM (SELECT session_id, tenant, agent_id, {_SUMS}, max(updated_at) AS latest "
        "FROM session_messages GROUP BY 1, 2, 3) f "
        "WHERE a.session_id = f.session_id AND a.tenant = f.tenant AND a.agent_id = f.agent_id"
    ),
    text(
        f"UPDATE sessions s SET {_SETS}, last_activity_at = f.latest, updated_at = f.latest "
        f"FROM (SELECT session_id, tenant, {_SUMS}, max(updated_at) AS latest "
        "FROM session_messages GROUP BY 1, 2) f "
        "WHERE s.session_id = f.session_id AND s.tenant = f.tenant"
    ),
]


async def _load(url: str) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            for statement in LOAD:
                await conn.execute(statement, {"start": START, "redaction": json.dumps(REDACTION)})
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            # The statistics, and the visibility map autovacuum would have written by the time a
            # table is this large (counts read indexes only with it).
            await conn.execute(text("VACUUM (ANALYZE)"))
    finally:
        await engine.dispose()


Captured = list[tuple[str, Any]]


@dataclass
class Loaded:
    url: str
    server: RunningServer
    http: httpx.Client

    def ask(
        self, query: str, variables: dict[str, Any] | None = None, *, tenant: str | None = TENANT
    ) -> tuple[dict[str, Any], Captured]:
        """Runs a document in ``tenant`` (None: as a tenantless admin, across tenants) and returns its
        data and the statements it sent, with parameters."""
        headers = {} if tenant is None else {"X-Tenant": tenant}
        with statements_sent(self.server) as sent:
            response = self.http.post(
                "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"], list(sent)

    def sql(self, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
        async def read() -> list[Any]:
            engine = create_engine(self.url, pool_size=1)
            try:
                async with engine.connect() as conn:
                    return list((await conn.execute(text(statement), params or {})).all())
            finally:
                await engine.dispose()

        return asyncio.run(read())


@contextmanager
def statements_sent(server: RunningServer) -> Iterator[Captured]:
    """The statements (and their parameters, as the driver got them) the server sends while the block runs."""
    sent: Captured = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if not sent_in_background() and "api_keys" not in statement:
            sent.append((statement, parameters))

    engine = server.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture(scope="module")
def loaded(database_url: str) -> Iterator[Loaded]:
    with scratch_database(database_url) as url:
        upgrade(url)
        asyncio.run(_load(url))
        server = RunningServer(Settings(database_url=url))
        server.start()
        try:
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                yield Loaded(url, server, client)
        finally:
            server.stop()


# --- plans ---


@dataclass(frozen=True)
class Plan:
    statement: str
    tree: dict[str, Any]
    generic: bool

    def nodes(self) -> Iterator[dict[str, Any]]:
        stack = [self.tree]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.get("Plans", []))

    def scans_of(self, relation: str) -> list[str]:
        """How ``relation`` is read: each scan's node type and the indexes it uses."""
        found = []
        for node in self.nodes():
            if node.get("Relation Name") == relation:
                indexes = [node["Index Name"]] if "Index Name" in node else []
                if node["Node Type"] == "Bitmap Heap Scan":
                    indexes = [
                        child["Index Name"]
                        for child in Plan(self.statement, node, self.generic).nodes()
                        if child["Node Type"] == "Bitmap Index Scan"
                    ]
                found.append(" ".join([node["Node Type"], *indexes]))
        return found

    def sequential_scans(self) -> set[str]:
        return {node["Relation Name"] for node in self.nodes() if node["Node Type"] == "Seq Scan"}

    def shown(self) -> str:
        kind = "generic" if self.generic else "custom"
        return f"{kind} plan of\n{self.statement}\n{json.dumps(self.tree, indent=1)}"


async def _plan(conn: AsyncConnection, explain: str, parameters: Any = None) -> dict[str, Any]:
    found = (await conn.exec_driver_sql(explain, parameters)).scalar_one()
    tree: dict[str, Any] = (json.loads(found) if isinstance(found, str) else found)[0]["Plan"]
    return tree


def plans_of(url: str, sent: Captured) -> list[Plan]:
    """Each statement's plan for its parameters (what the server's first executions of it run), and
    its generic plan (what a prepared statement may switch to after five executions: dashboards send
    the same statements at every refresh)."""

    async def explain() -> list[Plan]:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as conn:
                plans = []
                for statement, parameters in sent:
                    if statement.lstrip().upper().startswith("SET "):  # a setting, not a plan
                        continue
                    custom = await _plan(conn, f"EXPLAIN (FORMAT JSON) {statement}", parameters)
                    plans.append(Plan(statement, custom, generic=False))
                    # A generic plan does not depend on the values, so NULLs can stand in for them.
                    await conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
                    await conn.exec_driver_sql(f"PREPARE checked AS {statement}")
                    nulls = ", ".join(["NULL"] * len(parameters or ()))
                    execute = f"EXECUTE checked({nulls})" if nulls else "EXECUTE checked"
                    generic = await _plan(conn, f"EXPLAIN (FORMAT JSON) {execute}")
                    plans.append(Plan(statement, generic, generic=True))
                    await conn.exec_driver_sql("DEALLOCATE checked")
                    await conn.exec_driver_sql("RESET plan_cache_mode")
                return plans
        finally:
            await engine.dispose()

    return asyncio.run(explain())


def assert_no_sequential_scan(url: str, sent: Captured, *tables: str) -> list[str]:
    """Fails, showing the plan, when any statement's plan scans one of ``tables`` sequentially;
    returns (and prints, for the record) how each statement reads them."""
    assert sent, "the request sent no SQL"
    reads = []
    for plan in plans_of(url, sent):
        scanned = plan.sequential_scans() & set(tables)
        assert not scanned, f"sequential scan of {scanned} in the " + plan.shown()
        how = [scan for table in tables for scan in plan.scans_of(table)]
        first_line = " ".join(plan.statement.split())[:90]
        reads.append(f"{'generic' if plan.generic else 'custom '} {how} <- {first_line}")
    print("", *reads, sep="\n")
    return reads


# --- the rows are what the server would have written ---


def test_loaded_rows_carry_the_facts_db_derived_computes(loaded: Loaded) -> None:
    assert loaded.sql("SELECT count(*) FROM session_messages") == [(MESSAGES,)]
    sample = loaded.sql(
        "SELECT * FROM session_messages WHERE session_id < 'plan-s00008' OR is_redacted "
        "ORDER BY session_id, agent_id, message_id"
    )
    assert len(sample) > 8 * len(AGENTS) * TURNS
    calls = {
        (row.session_id, row.agent_id, row.tool_use_id): row
        for row in loaded.sql("SELECT * FROM session_tool_calls WHERE session_id < 'plan-s00008'")
    }
    kinds: set[tuple[str, ...]] = set()
    for row in sample:
        facts = facts_json(facts_of(row.message, row.redact_message), row.message_id)
        stored = {name: getattr(row, name) for name in facts if hasattr(row, name)}
        expected = {name: facts[name] for name in stored}
        assert stored == expected, (row.session_id, row.agent_id, row.message_id)
        assert row.plain_text == facts["text"]
        kinds.add(tuple(row.content_types) + (("redacted",) if row.is_redacted else ()))
        if row.session_id >= "plan-s00008":
            continue
        for call in facts["calls"]:
            tool_call = calls[(row.session_id, row.agent_id, call["id"])]
            assert (tool_call.name, tool_call.called_message_id) == (call["name"], row.message_id)
            assert tool_call.called_at == row.created_at
        for result in facts["results"]:
            tool_call = calls[(row.session_id, row.agent_id, result["id"])]
            assert (tool_call.status, tool_call.result_message_id) == (result["status"], row.message_id)
    assert kinds == {("text",), ("text", "toolUse"), ("toolResult",), ("text", "redacted")}
    sums = "sum(message_count), sum(total_tokens), sum(tool_calls), sum(tool_errors)"
    from_messages = loaded.sql(
        "SELECT count(*), sum(total_tokens), sum(tool_calls), sum(tool_errors) FROM session_messages"
    )
    assert loaded.sql(f"SELECT {sums} FROM sessions") == from_messages
    assert loaded.sql(f"SELECT {sums} FROM session_agents") == from_messages


# --- the plans ---

RECENT_SESSIONS = """
query Recent($after: String) {
  sessions(first: 20, after: $after, orderBy: {field: LAST_ACTIVITY_AT}) {
    nodes { sessionId lastActivityAt }
    pageInfo { endCursor }
    totalCount
  }
}
"""


def test_recent_sessions_of_a_tenant_come_from_the_last_activity_index(loaded: Loaded) -> None:
    first, sent = loaded.ask(RECENT_SESSIONS)
    second, sent_next = loaded.ask(RECENT_SESSIONS, {"after": first["sessions"]["pageInfo"]["endCursor"]})

    newest = loaded.sql(
        "SELECT session_id FROM sessions WHERE tenant = :t ORDER BY last_activity_at DESC, session_id DESC "
        "LIMIT 40",
        {"t": TENANT},
    )
    shown = [node["sessionId"] for page in (first, second) for node in page["sessions"]["nodes"]]
    assert shown == [session_id for (session_id,) in newest]
    assert first["sessions"]["totalCount"] == SESSIONS // len(TENANTS)
    assert_no_sequential_scan(loaded.url, sent + sent_next, "sessions", "session_messages")


ACTIVE_ACROSS_TENANTS = """
query Recent($after: String) {
  sessions(first: 20, after: $after, orderBy: {field: LAST_ACTIVITY_AT}) {
    nodes { sessionId tenant }
    pageInfo { endCursor }
  }
}
"""


def test_recent_sessions_across_tenants_come_from_the_cross_tenant_activity_index(loaded: Loaded) -> None:
    first, sent = loaded.ask(ACTIVE_ACROSS_TENANTS, tenant=None)
    second, sent_next = loaded.ask(
        ACTIVE_ACROSS_TENANTS, {"after": first["sessions"]["pageInfo"]["endCursor"]}, tenant=None
    )

    newest = loaded.sql(
        "SELECT session_id, tenant FROM sessions "
        "ORDER BY last_activity_at DESC, session_id DESC, tenant DESC LIMIT 40"
    )
    shown = [
        (node["sessionId"], node["tenant"]) for page in (first, second) for node in page["sessions"]["nodes"]
    ]
    assert shown == [tuple(row) for row in newest]
    assert len({tenant for _, tenant in shown}) > 1
    assert_no_sequential_scan(loaded.url, sent + sent_next, "sessions", "session_messages")


def _window(hours: int) -> tuple[datetime, datetime]:
    """A range in the middle of the month, ``hours`` long."""
    start = START + timedelta(days=DAYS // 2, hours=9)
    return start, start + timedelta(hours=hours)


AGENT_MESSAGES = """
query AgentMessages($filter: ConversationFilter!, $sessionId: String!, $created: TimeRange!) {
  messages(first: 50, filter: $filter) { nodes { sessionId agentId messageId createdAt } totalCount }
  agent(sessionId: $sessionId, agentId: "support") {
    messagesConnection(first: 10, filter: {created: $created}) { nodes { messageId createdAt } totalCount }
  }
}
"""


def test_one_agents_messages_in_a_time_range_are_read_by_index(loaded: Loaded) -> None:
    start, end = _window(hours=6)
    created = {"start": start.isoformat(), "end": end.isoformat()}
    ((session_id,),) = loaded.sql(
        "SELECT session_id FROM sessions WHERE tenant = :t AND created_at >= :s ORDER BY created_at LIMIT 1",
        {"t": TENANT, "s": start},
    )
    across_sessions, sent = loaded.ask(
        AGENT_MESSAGES,
        {"filter": {"agentId": "support", "created": created}, "sessionId": session_id, "created": created},
    )
    one_session, sent_one = loaded.ask(
        AGENT_MESSAGES,
        {
            "filter": {"sessionId": session_id, "agentId": "support", "created": created},
            "sessionId": session_id,
            "created": created,
        },
    )

    ((expected,),) = loaded.sql(
        "SELECT count(*) FROM session_messages WHERE tenant = :t AND agent_id = 'support' "
        "AND created_at >= :s AND created_at < :e",
        {"t": TENANT, "s": start, "e": end},
    )
    assert across_sessions["messages"]["totalCount"] == expected > 50
    assert {node["agentId"] for node in across_sessions["messages"]["nodes"]} == {"support"}
    assert one_session["messages"]["totalCount"] == TURNS
    assert one_session["agent"]["messagesConnection"]["totalCount"] == TURNS
    assert_no_sequential_scan(loaded.url, sent + sent_one, "session_messages")


HOURLY_STATS = """
query Hourly($from: Time!, $to: Time!, $groupBy: GroupBy!) {
  conversationStats(bucket: HOUR, from: $from, to: $to, groupBy: $groupBy) {
    rows { bucketStart key messages totalTokens p95LatencyMs toolErrors }
    totals { messages sessions totalTokens toolCalls }
  }
}
"""


@pytest.mark.parametrize("group_by", ["NONE", "AGENT"])
def test_a_day_of_hourly_stats_reads_messages_by_tenant_and_time(loaded: Loaded, group_by: str) -> None:
    day = START + timedelta(days=DAYS // 2)
    data, sent = loaded.ask(
        HOURLY_STATS,
        {"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat(), "groupBy": group_by},
    )

    ((messages, tokens),) = loaded.sql(
        "SELECT count(*), sum(total_tokens) FROM session_messages WHERE tenant = :t "
        "AND created_at >= :s AND created_at < :e",
        {"t": TENANT, "s": day, "e": day + timedelta(days=1)},
    )
    stats = data["conversationStats"]
    assert (stats["totals"]["messages"], stats["totals"]["totalTokens"]) == (messages, tokens)
    assert len(stats["rows"]) == 24 * (len(AGENTS) if group_by == "AGENT" else 1)
    assert_no_sequential_scan(loaded.url, sent, "session_messages")


SEARCH = """
query Search($query: String!, $after: String) {
  searchMessages(query: $query, first: 20, after: $after) {
    edges { rank snippet node { sessionId agentId messageId text } }
    pageInfo { endCursor hasNextPage }
  }
}
"""
COMMON_WORD = "found"
"""In every answer ("Here is what I found: ..."): about two messages in five."""
VOCABULARY_WORD = "address"
"""One of the 30 words of questions, answers and tool results: in about one message in twelve."""
RAREST_WORD = "redacted"
"""In the redactions only: about one message in a thousand, some 20 per tenant."""
TIME_INDEX = "ix_session_messages_tenant_created_at_key"
SEARCH_INDEX = "ix_session_messages_search"
CANDIDATES = 1000
"""Fewer than the tenant's matches of a common word, more than those of a rare one."""


@pytest.fixture(scope="module")
def few_candidates(loaded: Loaded) -> Iterator[Loaded]:
    """The loaded database, served with best-first search ranking the newest 1,000 matches."""
    limits = replace(Limits(), search_candidates=CANDIDATES)
    server = RunningServer(Settings(database_url=loaded.url, limits=limits))
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            yield Loaded(loaded.url, server, client)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("query", "index"),
    [
        # rare: fewer match than the candidates, so all of them are ranked, from the search index
        (RARE_WORD, SEARCH_INDEX),
        (f'"{RARE_WORD}" -shipping', SEARCH_INDEX),
        (f"{RARE_WORD} or chargeback", SEARCH_INDEX),
        # common: the newest 1,000 matches are within the newest 2,500 messages, read back in time
        (COMMON_WORD, TIME_INDEX),
    ],
)
def test_relevance_search_ranks_the_newest_matches_read_through_an_index(
    few_candidates: Loaded, query: str, index: str
) -> None:
    """Best first, the newest matches are the candidates: read back in time from the time index
    for a common word, or all taken from the search index for a rare one, as the planner chooses
    shown the words (an EXPLAIN); the statement then sent allows only that way, whatever plan a
    prepared statement switches to. Either way the candidates are ranked whole and the page's
    messages read by primary key."""
    first, sent = few_candidates.ask(SEARCH, {"query": query})
    after = first["searchMessages"]["pageInfo"]["endCursor"]
    second, sent_next = few_candidates.ask(SEARCH, {"query": query, "after": after})

    best = few_candidates.sql(
        "SELECT session_id, agent_id, message_id FROM ("
        "  SELECT *, ts_rank_cd(search, websearch_to_tsquery('english', :q)) AS rank FROM ("
        "    SELECT * FROM session_messages"
        "    WHERE tenant = :t AND search @@ websearch_to_tsquery('english', :q)"
        "    ORDER BY created_at DESC, session_id DESC, agent_id DESC, message_id DESC LIMIT :k) newest"
        ") ranked ORDER BY rank DESC, session_id DESC, agent_id DESC, message_id DESC LIMIT 40",
        {"t": TENANT, "q": query, "k": CANDIDATES},
    )
    edges = first["searchMessages"]["edges"] + second["searchMessages"]["edges"]
    shown = [(e["node"]["sessionId"], e["node"]["agentId"], e["node"]["messageId"]) for e in edges]
    assert shown == [tuple(row) for row in best]
    assert len(shown) == 40 and all("**" in edge["snippet"] for edge in edges)
    for request in (sent, sent_next):
        estimates = [statement for statement, _ in request if statement.startswith("EXPLAIN")]
        assert len(estimates) == 1
        searches = [
            (statement, parameters) for statement, parameters in request if statement not in estimates
        ]
        assert_no_sequential_scan(few_candidates.url, searches, "session_messages")
        (plan,) = [plan for plan in plans_of(few_candidates.url, searches) if not plan.generic]
        candidates, page = sorted(plan.scans_of("session_messages"), key=lambda scan: "pk_" in scan)
        assert index in candidates.split() and page == "Index Scan pk_session_messages", plan.shown()
        assert ("matching AS MATERIALIZED" in plan.statement) == (index == SEARCH_INDEX)


NEWEST_SEARCH = """
query Newest($query: String!, $first: Int!, $after: String) {
  searchMessages(query: $query, first: $first, after: $after, orderBy: NEWEST) {
    edges { rank snippet node { sessionId agentId messageId text } }
    pageInfo { endCursor hasNextPage }
  }
}
"""


@pytest.mark.parametrize(
    ("query", "first", "reads"),
    [
        # a common word fills the page from the newest messages: one statement
        (COMMON_WORD, 20, [[TIME_INDEX]]),
        # a rare one does not; the statistics say it is rare: all its matches, from the search index
        (RAREST_WORD, 20, [[TIME_INDEX], [SEARCH_INDEX]]),
        # one in twelve fills no page of 1,000 from the newest 5,000 either, but it is no rare word:
        # the planner, which knows how common it is, picks how to read on
        (VOCABULARY_WORD, 1000, [[TIME_INDEX], []]),
    ],
)
def test_newest_search_walks_back_in_time_for_common_words_and_asks_the_search_index_for_rare_ones(
    loaded: Loaded, query: str, first: int, reads: list[list[str]]
) -> None:
    """Newest first, a common word fills a page within the tenant's newest few dozen messages, read
    back in time from the time index. A rare word does not fill it within the newest few thousand;
    the planner's statistics agreeing that it is rare (two EXPLAINs), a second statement takes all
    its matches from the GIN index, fetched whole, and keeps the newest. A word the statistics call
    common is read on by whatever plan the planner picks. (Messages of the page are then read by
    primary key, for their rank and snippet.)"""
    first_page, sent = loaded.ask(NEWEST_SEARCH, {"query": query, "first": first})
    after = first_page["searchMessages"]["pageInfo"]["endCursor"]
    second_page, sent_next = loaded.ask(NEWEST_SEARCH, {"query": query, "first": first, "after": after})

    newest = loaded.sql(
        "SELECT session_id, agent_id, message_id FROM session_messages "
        "WHERE tenant = :t AND search @@ websearch_to_tsquery('english', :q) "
        "ORDER BY created_at DESC, session_id DESC, agent_id DESC, message_id DESC LIMIT :n",
        {"t": TENANT, "q": query, "n": 2 * first},
    )
    edges = first_page["searchMessages"]["edges"] + second_page["searchMessages"]["edges"]
    shown = [(e["node"]["sessionId"], e["node"]["agentId"], e["node"]["messageId"]) for e in edges]
    assert shown == [tuple(row) for row in newest]
    assert len(shown) > 10 and all(f"**{query}**" in edge["snippet"].lower() for edge in edges)
    for request in (sent, sent_next):
        estimates = [statement for statement, _ in request if statement.startswith("EXPLAIN")]
        assert len(estimates) == (0 if len(reads) == 1 else 2)
        searches = [
            (statement, parameters) for statement, parameters in request if statement not in estimates
        ]
        assert_no_sequential_scan(loaded.url, searches, "session_messages")
        plans = [plan for plan in plans_of(loaded.url, searches) if not plan.generic]
        # Near the end of the tenant's time, the time index may also narrow the search index's matches.
        indexes = [
            {
                name
                for scan in plan.scans_of("session_messages")
                for name in scan.split()
                if name.startswith("ix_")
            }
            for plan in plans
        ]
        assert len(indexes) == len(reads), "\n\n".join(plan.shown() for plan in plans)
        for found, expected in zip(indexes, reads, strict=True):
            assert set(expected) <= found, "\n\n".join(plan.shown() for plan in plans)
        fetched_whole = ["MATERIALIZED" in plan.statement for plan in plans]
        assert fetched_whole == [SEARCH_INDEX in expected for expected in reads]


TOOL_STATS = """
query Tools($created: TimeRange!) {
  toolStats(filter: {created: $created}) { name calls errors errorRate }
}
"""


def test_tool_stats_for_a_time_range_read_no_message_sequentially(loaded: Loaded) -> None:
    start, end = _window(hours=7 * 24)
    data, sent = loaded.ask(TOOL_STATS, {"created": {"start": start.isoformat(), "end": end.isoformat()}})

    expected = loaded.sql(
        "SELECT name, count(*), count(*) FILTER (WHERE status = 'error') FROM session_tool_calls "
        "WHERE tenant = :t AND called_at >= :s AND called_at < :e GROUP BY name",
        {"t": TENANT, "s": start, "e": end},
    )
    assert {(tool["name"], tool["calls"], tool["errors"]) for tool in data["toolStats"]} == {
        tuple(row) for row in expected
    }
    assert_no_sequential_scan(loaded.url, sent, "session_messages", "session_tool_calls")
