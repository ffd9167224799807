"""Statistics served from the rollups equal the statistics computed from the rows: with every bucket
queued for the fold, with every bucket folded, and after writes that change folded buckets
(backdated messages, redactions, deletes, label changes), in every tenant and time zone.

The module has its own database and server (label key ``team`` kept, no background fold): the
test folds with ``db.analytics.rollups.fold`` itself, so it knows what is folded.
"""

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.analytics import rollups, stats
from db.analytics.filters import ConversationFilter, TimeRange
from db.engine import Database, create_engine
from db.tenancy import Scope
from graphql_api.settings import RollupSettings, Settings
from tests.api_calls import CREATE_MESSAGE, DELETE_AGENT, DELETE_SESSION
from tests.conftest import RunningServer
from tests.scratch_database import scratch_database
from tests.strands_messages import assistant, at, tool_results, user

T = TypeVar("T")
DAY0 = datetime(2025, 6, 2, tzinfo=UTC)  # a Monday
TENANTS = ("north", "south")
ZONES = ("UTC", "Asia/Kathmandu", "America/St_Johns", "Europe/Lisbon")
GROUPS = (("NONE", None), ("AGENT", None), ("ROLE", None), ("TOOL", None), ("LABEL", "team"))
FILTERS = (
    ConversationFilter(),
    ConversationFilter(labels=(("team", "red"),)),
    ConversationFilter(agent_id="billing", role="assistant"),
    ConversationFilter(session_type="AGENT", snapshot_backed=False),
)
RANGES = (
    (DAY0, DAY0 + timedelta(days=3), "HOUR"),
    (DAY0 + timedelta(hours=5, minutes=7), DAY0 + timedelta(days=2, hours=1, minutes=52), "DAY"),
    (DAY0 - timedelta(days=7), DAY0 + timedelta(days=7), "WEEK"),
    (DAY0 + timedelta(hours=10, minutes=3), DAY0 + timedelta(hours=10, minutes=11), "HOUR"),
)


@dataclass
class Store:
    server: RunningServer
    url: str
    http: httpx.Client

    def call(self, tenant: str, query: str, **variables: Any) -> dict[str, Any]:
        answer = self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers={"X-Tenant": tenant}
        ).json()
        assert "errors" not in answer, answer["errors"]
        data: dict[str, Any] = answer["data"]
        return data

    def on_database(self, work: Callable[[Database], Awaitable[T]]) -> T:
        async def run() -> T:
            database = Database(create_engine(self.url, pool_size=1, max_overflow=0))
            try:
                return await work(database)
            finally:
                await database.dispose()

        return asyncio.run(run())

    def fold_everything(self) -> None:
        async def work(database: Database) -> None:
            while await database.run_in_transaction(rollups.fold):
                pass

        self.on_database(work)

    def queued(self) -> int:
        async def work(database: Database) -> int:
            return (await database.run(rollups.backlog)).entries

        return self.on_database(work)


@pytest.fixture(scope="module")
def store(database_url: str) -> Iterator[Store]:
    with scratch_database(database_url) as url:
        settings = Settings(database_url=url, migrate_on_start=True, rollups=RollupSettings(("team",), 0))
        server = RunningServer(settings)
        server.start()
        try:
            with httpx.Client(base_url=server.base_url, timeout=60) as http:
                yield Store(server, url, http)
        finally:
            server.stop()


SESSION = "mutation($s: SessionInput!) { createSession(session: $s) { sessionId } }"
AGENT = "mutation($s: String!, $a: AgentInput!) { createAgent(sessionId: $s, agent: $a) { agentId } }"
LABELS = "mutation($s: String!, $l: JSON!) { updateSession(sessionId: $s, labels: $l) { sessionId } }"


def _agent(store: Store, tenant: str, session_id: str, agent_id: str) -> None:
    agent = {"agentId": agent_id, "state": {}, "conversationManagerState": {}}
    store.call(tenant, AGENT, s=session_id, a=agent)


def _message(store: Store, tenant: str, session_id: str, agent_id: str, message: dict[str, Any]) -> None:
    store.call(tenant, CREATE_MESSAGE, sessionId=session_id, agentId=agent_id, message=message)


def _conversations(store: Store, tenant: str, seed: int) -> None:
    """Sessions of two teams, two agents each, talking over three days: tool calls with errors,
    latencies from 20 ms to 9 s, messages at any minute and second."""
    pick = random.Random(seed)
    for number in range(6):
        session_id = f"s{number}"
        team = ("red", "blue")[number % 2]
        store.call(
            tenant, SESSION, s={"sessionId": session_id, "sessionType": "AGENT", "labels": {"team": team}}
        )
        for agent_id in ("support", "billing"):
            _agent(store, tenant, session_id, agent_id)
            when = DAY0 + timedelta(minutes=pick.randrange(0, 3 * 24 * 60 - 200), seconds=pick.randrange(60))
            for turn in range(pick.randrange(2, 5)):
                call = f"{session_id}-{agent_id}-{turn}"
                tool = pick.choice(("lookup", "refund", "search"))
                sent = [
                    user(f"question {turn}"),
                    assistant(
                        tools=[(call, tool, {})],
                        usage=(pick.randrange(1, 500), pick.randrange(1, 100), 0),
                        latency_ms=pick.choice((20, 63, 64, 250, 999, 1000, 4321, 9000)),
                    ),
                    tool_results((call, pick.choice(("success", "error")))),
                    assistant("done", usage=(5, 5, 10), latency_ms=pick.randrange(30, 3000)),
                ]
                for message in sent:
                    when += timedelta(minutes=pick.randrange(0, 40), seconds=pick.randrange(60))
                    base = 4 * turn + sent.index(message)
                    _message(store, tenant, session_id, agent_id, at(base, message, when.isoformat()))


def assert_same_stats(served: stats.Stats, computed: stats.Stats) -> None:
    """Equal, but for p95 latencies: within 2% of percentile_cont."""

    def plain(row: stats.StatsRow) -> dict[str, Any]:
        values = {name: getattr(row, name) for name in row.__slots__}  # type: ignore[attr-defined]
        p95, average = values.pop("p95_latency_ms"), values.pop("avg_latency_ms")
        values["avg"] = None if average is None else round(average, 6)
        values["p95"] = None if p95 is None else pytest.approx(p95, rel=0.02)
        return values

    for mine, theirs in zip(
        [*served.rows, *served.key_totals, served.totals],
        [*computed.rows, *computed.key_totals, computed.totals],
        strict=True,
    ):
        expected = plain(theirs)
        assert plain(mine) == expected


def _compare_all(store: Store, *, served_expected: bool) -> int:
    """Every (range, bucket, grouping, zone, filter) of every tenant, served against the rows."""

    async def work(database: Database) -> int:
        compared = 0
        for tenant in TENANTS:
            scope = Scope(tenant)
            for number, ((start, end, bucket), (group_by, label), zone, f) in enumerate(
                itertools.product(RANGES, GROUPS, ZONES, FILTERS)
            ):
                if (
                    number % 3 != TENANTS.index(tenant) % 3
                ):  # a third of the cases each, all zones and filters
                    continue
                request = stats.StatsRequest(bucket, start, end, group_by, label, zone)

                served, computed = await database.run_in_snapshot(
                    partial(_both_stats, scope=scope, f=f, request=request)
                )
                assert served.from_rollups == served_expected, (request, f)
                assert_same_stats(served, computed)
                compared += 1
            for start, end, _ in RANGES:
                for f in FILTERS:
                    ranged = ConversationFilter(**{**_fields(f), "created": TimeRange(start, end)})

                    served_tools, computed_tools = await database.run_in_snapshot(
                        partial(_both_tools, scope=scope, f=ranged)
                    )
                    assert served_tools == computed_tools
        return compared

    return store.on_database(work)


async def _both_stats(
    conn: AsyncConnection, *, scope: Scope, f: ConversationFilter, request: stats.StatsRequest
) -> tuple[stats.Stats, stats.Stats]:
    """Served, and computed from the rows, in one snapshot."""
    arguments: dict[str, Any] = {"most_rows": 100_000, "most_keys": 100}
    served = await stats.conversation_stats(conn, scope, f, request, **arguments)
    return served, await stats.conversation_stats(conn, scope, f, request, rows_only=True, **arguments)


async def _both_tools(
    conn: AsyncConnection, *, scope: Scope, f: ConversationFilter
) -> tuple[list[stats.ToolStat], list[stats.ToolStat]]:
    served = await stats.tool_stats(conn, scope, f, 100)
    return served, await stats.tool_stats(conn, scope, f, 100, rows_only=True)


def _fields(f: ConversationFilter) -> dict[str, Any]:
    return {name: getattr(f, name) for name in f.__slots__}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def written(store: Store) -> Store:
    for seed, tenant in enumerate(TENANTS):
        _conversations(store, tenant, seed)
    return store


def test_queued_buckets_are_read_from_the_rows_and_equal_them(written: Store) -> None:
    assert written.queued() > 0
    assert _compare_all(written, served_expected=True) > 0


def test_folded_buckets_are_read_from_the_rollups_and_equal_the_rows(written: Store) -> None:
    written.fold_everything()
    assert written.queued() == 0
    rows = written.on_database(
        lambda database: database.run(
            lambda conn: _scalar(conn, "SELECT count(*) FROM message_rollups WHERE tenant = 'north'")
        )
    )
    assert rows > 0
    _compare_all(written, served_expected=True)


async def _scalar(conn: AsyncConnection, sql: str) -> int:
    return int((await conn.execute(text(sql))).scalar_one())


def test_writes_into_folded_buckets_show_at_once_and_after_the_next_fold(written: Store) -> None:
    written.fold_everything()
    tenant = "north"
    # backdated into a folded bucket, a redaction that drops a tool call, label and agent changes
    _message(
        written,
        tenant,
        "s0",
        "support",
        at(
            900, assistant(tools=[("late", "refund", {})], usage=(7, 7, 14), latency_ms=777), DAY0.isoformat()
        ),
    )
    redact = """
      mutation($s: String!, $a: String!, $m: MessageInput!) {
        updateMessage(sessionId: $s, agentId: $a, message: $m) { messageId }
      }"""
    redacted = at(1, assistant("[redacted]", usage=(1, 1, 2), latency_ms=5))
    written.call(tenant, redact, s="s1", a="support", m=redacted)
    written.call(tenant, LABELS, s="s2", l={"team": "blue"})
    written.call(tenant, DELETE_AGENT, sessionId="s3", agentId="billing")
    written.call(tenant, DELETE_SESSION, sessionId="s4")
    assert written.queued() > 0
    _compare_all(written, served_expected=True)
    written.fold_everything()
    _compare_all(written, served_expected=True)


def test_messages_at_infinity_are_in_no_bucket_and_hold_up_no_fold(written: Store) -> None:
    """Rows from before times were checked may say +-infinity: no range holds them, no bucket."""
    written.fold_everything()

    async def legacy(database: Database) -> None:
        async def insert(conn: AsyncConnection) -> None:
            for number, when in enumerate(("infinity", "-infinity")):
                await conn.execute(
                    text(
                        "INSERT INTO session_messages (session_id, tenant, agent_id, message_id, role, "
                        "message, created_at) "
                        f"VALUES ('s5', 'south', 'support', :m, 'user', '{{}}', '{when}')"
                    ),
                    {"m": 800 + number},
                )

        await database.run_in_transaction(insert)

    written.on_database(legacy)
    assert written.queued() == 0
    _message(written, "south", "s5", "support", at(802, user("after"), DAY0.isoformat()))
    written.fold_everything()
    assert written.queued() == 0
    _compare_all(written, served_expected=True)


def test_a_zone_whose_offset_leaves_whole_hours_in_the_range_counts_its_sessions_by_the_quarter(
    written: Store,
) -> None:
    """Lord Howe is +11:00 in March and November but +10:30 in June: a session seen at 13:45 UTC on
    June 10 is on June 11 there, which an hour's presence (13:00 UTC, 23:30 local) would miss."""
    written.call("south", SESSION, s={"sessionId": "howe", "sessionType": "AGENT"})
    _agent(written, "south", "howe", "support")
    _message(written, "south", "howe", "support", at(0, user("late"), "2025-06-10T13:45:00+00:00"))
    written.fold_everything()
    request = stats.StatsRequest(
        "DAY",
        datetime(2025, 3, 1, tzinfo=UTC),
        datetime(2025, 11, 1, tzinfo=UTC),
        "NONE",
        None,
        "Australia/Lord_Howe",
    )

    async def work(database: Database) -> tuple[stats.Stats, stats.Stats]:
        return await database.run_in_snapshot(
            partial(_both_stats, scope=Scope("south"), f=ConversationFilter(), request=request)
        )

    served, computed = written.on_database(work)
    assert served.from_rollups
    assert_same_stats(served, computed)


def test_token_sums_past_32_bits_are_answered_whole(written: Store) -> None:
    """A month of tokens outgrows GraphQL's Int: sums are Count, a JSON number."""
    written.call("south", SESSION, s={"sessionId": "big", "sessionType": "AGENT"})
    _agent(written, "south", "big", "support")
    for number in range(3):
        big = assistant("long", usage=(2_000_000_000, 1, 2_000_000_001), latency_ms=100)
        _message(
            written, "south", "big", "support", at(number, big, (DAY0 + timedelta(hours=number)).isoformat())
        )
    query = """{ conversationStats(bucket: DAY, from: "2025-06-02T00:00:00Z", to: "2025-06-03T00:00:00Z",
                   filter: {agentId: "support"}) { fromRollups totals { inputTokens } } }"""
    before = written.call("south", query)["conversationStats"]
    written.fold_everything()
    after = written.call("south", query)["conversationStats"]
    assert before["totals"]["inputTokens"] == after["totals"]["inputTokens"]
    assert after["totals"]["inputTokens"] >= 6_000_000_000
    assert after["fromRollups"] is True


def test_the_api_says_where_an_answer_came_from(written: Store) -> None:
    query = """
      query($g: GroupBy!, $b: Bucket!, $f: ConversationFilter) {
        conversationStats(bucket: $b, groupBy: $g, from: "2025-06-02T00:00:00Z", to: "2025-06-05T00:00:00Z",
                          label: "team", filter: $f) { fromRollups totals { messages } }
      }"""
    served = written.call("north", query, g="AGENT", b="HOUR", f={"labels": {"team": "red"}})
    by_minute = written.call("north", query, g="AGENT", b="MINUTE", f=None)
    by_session = written.call("north", query, g="SESSION", b="HOUR", f=None)
    unkept_label = written.call("north", query, g="NONE", b="HOUR", f={"labels": {"user": "ana"}})
    assert served["conversationStats"]["fromRollups"] is True
    assert [a["conversationStats"]["fromRollups"] for a in (by_minute, by_session, unkept_label)] == [
        False,
        False,
        False,
    ]
