"""``conversationStats`` and ``toolStats`` over a conversation set with known times, tokens,
latencies and tool results (``fixture stats`` below), confined by its own ``sessionIdPrefix``."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.api_calls import GraphQLCall, NewId, assert_error
from tests.conftest import RunningServer
from tests.strands_messages import ask, assistant, at, conversation, percentile_cont, tool_results, user

ROW = """
  bucketStart key messages sessions inputTokens outputTokens totalTokens cacheReadTokens
  avgLatencyMs p95LatencyMs toolCalls toolErrors
"""
STATS = f"""
query(
  $bucket: Bucket! = HOUR, $from: Time, $to: Time, $groupBy: GroupBy! = NONE, $label: String,
  $timeZone: String! = "UTC", $f: ConversationFilter
) {{
  conversationStats(
    bucket: $bucket, from: $from, to: $to, groupBy: $groupBy, label: $label, timeZone: $timeZone, filter: $f
  ) {{ rows {{ {ROW} }} keyTotals {{ {ROW} }} totals {{ {ROW} }} }}
}}
"""
TOOL_STATS = """
query($f: ConversationFilter, $first: Int! = 100) {
  toolStats(filter: $f, first: $first) { name calls errors errorRate }
}
"""
ADDED_UP = (
    "messages",
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "cacheReadTokens",
    "toolCalls",
    "toolErrors",
)


@dataclass(frozen=True)
class Data:
    prefix: str

    def session(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def stats(self, graphql: GraphQLCall, **arguments: Any) -> dict[str, Any]:
        f = {"sessionIdPrefix": self.prefix, **arguments.pop("f", {})}
        if "from_" in arguments:
            arguments["from"] = arguments.pop("from_")
        found: dict[str, Any] = ask(graphql, STATS, f=f, **arguments)["conversationStats"]
        return {
            "rows": [shown(row) for row in found["rows"]],
            "keyTotals": [shown(row) for row in found["keyTotals"]],
            "totals": shown(found["totals"]),
        }


def shown(row: dict[str, Any]) -> dict[str, Any]:
    """Latencies rounded, so averages compare exactly."""
    rounded = {
        name: None if row[name] is None else round(row[name], 6) for name in ("avgLatencyMs", "p95LatencyMs")
    }
    return {**row, **rounded}


def row(
    start: str | None,
    key: str | None = None,
    messages: int = 0,
    sessions: int = 0,
    tokens: tuple[int, int, int, int] = (0, 0, 0, 0),
    latencies: Sequence[float] = (),
    tools: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    """An expected row: ``tokens`` input, output, total, cache-read; ``tools`` calls, errors; the
    latency average and 95th percentile of ``latencies`` as PostgreSQL computes them."""
    return {
        "bucketStart": start,
        "key": key,
        "messages": messages,
        "sessions": sessions,
        "inputTokens": tokens[0],
        "outputTokens": tokens[1],
        "totalTokens": tokens[2],
        "cacheReadTokens": tokens[3],
        "avgLatencyMs": round(sum(latencies) / len(latencies), 6) if latencies else None,
        "p95LatencyMs": round(percentile_cont(latencies, 0.95), 6) if latencies else None,
        "toolCalls": tools[0],
        "toolErrors": tools[1],
    }


def iso(text: str) -> str:
    """2024-03-04T10:00 as the API writes it."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat()


def ms(text: str) -> int:
    return int(datetime.fromisoformat(iso(text)).timestamp() * 1000)


@pytest.fixture(scope="module")
def stats(graphql: GraphQLCall) -> Data:
    """a (user ana, agent support) and b (user bo, agent billing) talk on Monday 2024-03-04 between
    10:05 and 13:10 UTC; c (no user label, agent support) on Tuesday at 03:00 and 09:00."""
    data = Data(f"stats-{uuid.uuid4().hex[:12]}")
    a = [
        at(0, user("hi"), "2024-03-04T10:05:00Z"),
        at(
            1,
            assistant(tools=[("a-1", "lookup", {})], usage=(100, 20, 120), cache=(30, 0), latency_ms=200),
            "2024-03-04T10:06:00Z",
        ),
        at(2, tool_results(("a-1", "error")), "2024-03-04T10:07:00Z"),
        at(
            3,
            assistant(tools=[("a-2", "lookup", {})], usage=(50, 10, 60), latency_ms=400),
            "2024-03-04T10:08:00Z",
        ),
        at(4, tool_results(("a-2", "success")), "2024-03-04T11:30:00Z"),
        at(
            5,
            assistant("found it", usage=(70, 30, 100), cache=(10, 0), latency_ms=100),
            "2024-03-04T11:31:00Z",
        ),
    ]
    b = [
        at(0, user("refund"), "2024-03-04T10:20:00Z"),
        at(
            1,
            assistant(
                tools=[("b-1", "refund", {}), ("b-2", "lookup", {})], usage=(10, 5, 15), latency_ms=1000
            ),
            "2024-03-04T10:21:00Z",
        ),
        at(2, tool_results(("b-1", "error"), ("b-2", "error")), "2024-03-04T10:22:00Z"),
        at(3, assistant("sorry", usage=(5, 5, 10), latency_ms=300), "2024-03-04T13:10:00Z"),
    ]
    c = [
        at(0, user("late question"), "2024-03-05T03:00:00Z"),
        at(
            1,
            assistant(tools=[("c-1", "search", {}), ("c-2", "zeta", {})], usage=(1, 1, 2), latency_ms=50),
            "2024-03-05T09:00:00Z",
        ),
        at(2, tool_results(("c-1", "success")), "2024-03-05T09:01:00Z"),  # c-2 is never answered
    ]
    conversation(graphql, data.session("a"), "support", a, labels={"user": "ana"})
    conversation(graphql, data.session("b"), "billing", b, labels={"user": "bo"})
    conversation(graphql, data.session("c"), "support", c, labels={"channel": "web"})
    return data


MONDAY_10_TO_14 = {"from_": "2024-03-04T10:00:00Z", "to": "2024-03-04T14:00:00Z"}
THREE_DAYS = {"bucket": "DAY", "from_": "2024-03-03T00:00:00Z", "to": "2024-03-06T00:00:00Z"}
A_AND_B_LATENCIES = [200, 400, 100, 1000, 300]


def test_hourly_rows_include_empty_buckets_and_the_totals_add_them_up(
    graphql: GraphQLCall, stats: Data
) -> None:
    found = stats.stats(graphql, **MONDAY_10_TO_14)

    assert found["rows"] == [
        row(iso("2024-03-04T10:00"), None, 7, 2, (160, 35, 195, 30), [200, 400, 1000], (4, 3)),
        row(iso("2024-03-04T11:00"), None, 2, 1, (70, 30, 100, 10), [100]),
        row(iso("2024-03-04T12:00")),
        row(iso("2024-03-04T13:00"), None, 1, 1, (5, 5, 10, 0), [300]),
    ]
    assert found["totals"] == row(None, None, 10, 2, (235, 70, 305, 40), A_AND_B_LATENCIES, (4, 3))
    assert found["keyTotals"] == [found["totals"]]
    # percentile_cont(0.95) of 100 200 300 400 1000: position 0.95 * 4 = 3.8, so 400 + 0.8 * 600
    assert (found["totals"]["avgLatencyMs"], found["totals"]["p95LatencyMs"]) == (400.0, 880.0)


def test_from_and_to_may_be_epoch_milliseconds_as_numbers_or_digit_strings(
    graphql: GraphQLCall, stats: Data
) -> None:
    iso_range = stats.stats(graphql, **MONDAY_10_TO_14)

    numbers = stats.stats(graphql, from_=ms("2024-03-04T10:00"), to=ms("2024-03-04T14:00"))
    strings = stats.stats(graphql, from_=str(ms("2024-03-04T10:00")), to=str(ms("2024-03-04T14:00")))
    mixed = stats.stats(graphql, from_=ms("2024-03-04T10:00"), to="2024-03-04T09:00:00-05:00")

    assert numbers == strings == mixed == iso_range


def test_minute_day_and_week_buckets(graphql: GraphQLCall, stats: Data) -> None:
    minutes = stats.stats(graphql, bucket="MINUTE", from_="2024-03-04T10:05:00Z", to="2024-03-04T10:10:00Z")
    days = stats.stats(graphql, **THREE_DAYS)
    # a week starts on Monday, before `from` here; only messages from `from` on count
    weeks = stats.stats(graphql, bucket="WEEK", from_="2024-03-05T00:00:00Z", to="2024-03-12T00:00:00Z")

    assert [(r["bucketStart"], r["messages"]) for r in minutes["rows"]] == [
        (iso("2024-03-04T10:05"), 1),
        (iso("2024-03-04T10:06"), 1),
        (iso("2024-03-04T10:07"), 1),
        (iso("2024-03-04T10:08"), 1),
        (iso("2024-03-04T10:09"), 0),
    ]
    assert days["rows"] == [
        row(iso("2024-03-03T00:00")),
        row(iso("2024-03-04T00:00"), None, 10, 2, (235, 70, 305, 40), A_AND_B_LATENCIES, (4, 3)),
        row(iso("2024-03-05T00:00"), None, 3, 1, (1, 1, 2, 0), [50], (2, 0)),
    ]
    assert days["totals"] == row(None, None, 13, 3, (236, 71, 307, 40), [*A_AND_B_LATENCIES, 50], (6, 3))
    assert weeks["rows"] == [
        row(iso("2024-03-04T00:00"), None, 3, 1, (1, 1, 2, 0), [50], (2, 0)),
        row(iso("2024-03-11T00:00")),
    ]


def test_to_alone_means_the_day_before_it(graphql: GraphQLCall, stats: Data) -> None:
    found = stats.stats(graphql, to="2024-03-05T00:00:00Z")

    assert [r["bucketStart"] for r in found["rows"]] == [iso(f"2024-03-04T{h:02}:00") for h in range(24)]
    assert found["totals"]["messages"] == 10


def added_up(rows: list[dict[str, Any]], key: str | None) -> dict[str, int]:
    return {name: sum(r[name] for r in rows if r["key"] == key) for name in ADDED_UP}


def assert_consistent(found: dict[str, Any], keys: list[str | None], buckets: int) -> None:
    """Every bucket for every key; each key's rows add up to its key total, the key totals to the totals."""
    assert [r["key"] for r in found["rows"]] == keys * buckets
    assert [r["key"] for r in found["keyTotals"]] == keys
    for total in found["keyTotals"]:
        assert added_up(found["rows"], total["key"]) == {name: total[name] for name in ADDED_UP}
    assert {name: sum(t[name] for t in found["keyTotals"]) for name in ADDED_UP} == {
        name: found["totals"][name] for name in ADDED_UP
    }


def test_grouped_by_role(graphql: GraphQLCall, stats: Data) -> None:
    found = stats.stats(graphql, groupBy="ROLE", **MONDAY_10_TO_14)

    assert_consistent(found, ["assistant", "user"], buckets=4)
    assert found["keyTotals"] == [
        row(None, "assistant", 5, 2, (235, 70, 305, 40), A_AND_B_LATENCIES, (4, 0)),
        row(None, "user", 5, 2, tools=(0, 3)),
    ]
    assert found["rows"][:2] == [
        row(iso("2024-03-04T10:00"), "assistant", 3, 2, (160, 35, 195, 30), [200, 400, 1000], (4, 0)),
        row(iso("2024-03-04T10:00"), "user", 4, 2, tools=(0, 3)),
    ]
    # both sessions have both roles: sessions do not add up across keys
    assert found["totals"] == row(None, None, 10, 2, (235, 70, 305, 40), A_AND_B_LATENCIES, (4, 3))


def test_grouped_by_agent_and_by_session(graphql: GraphQLCall, stats: Data) -> None:
    by_agent = stats.stats(graphql, groupBy="AGENT", **THREE_DAYS)
    by_session = stats.stats(graphql, groupBy="SESSION", **THREE_DAYS)

    assert_consistent(by_agent, ["billing", "support"], buckets=3)
    assert by_agent["keyTotals"] == [
        row(None, "billing", 4, 1, (15, 10, 25, 0), [1000, 300], (2, 2)),
        row(None, "support", 9, 2, (221, 61, 282, 40), [200, 400, 100, 50], (4, 1)),
    ]
    sessions = [stats.session(name) for name in "abc"]
    assert_consistent(by_session, list(sessions), buckets=3)
    assert [(t["key"], t["messages"], t["totalTokens"]) for t in by_session["keyTotals"]] == [
        (sessions[0], 6, 280),
        (sessions[1], 4, 25),
        (sessions[2], 3, 2),
    ]
    assert by_session["rows"][6:] == [
        row(iso("2024-03-05T00:00"), sessions[0]),
        row(iso("2024-03-05T00:00"), sessions[1]),
        row(iso("2024-03-05T00:00"), sessions[2], 3, 1, (1, 1, 2, 0), [50], (2, 0)),
    ]


def test_grouped_by_tool_counts_calls(graphql: GraphQLCall, stats: Data) -> None:
    found = stats.stats(graphql, groupBy="TOOL", **THREE_DAYS)

    assert [r["key"] for r in found["rows"]] == ["lookup", "refund", "search", "zeta"] * 3
    assert found["keyTotals"] == [
        # a-1 (error), a-2, b-2 (error); each with the tokens and latency of the message calling it
        row(None, "lookup", 3, 2, (160, 35, 195, 30), [200, 400, 1000], (3, 2)),
        row(None, "refund", 1, 1, (10, 5, 15, 0), [1000], (1, 1)),
        row(None, "search", 1, 1, (1, 1, 2, 0), [50], (1, 0)),
        row(None, "zeta", 1, 1, (1, 1, 2, 0), [50], (1, 0)),  # never answered: no error
    ]
    assert found["rows"][4:8] == [
        row(iso("2024-03-04T00:00"), "lookup", 3, 2, (160, 35, 195, 30), [200, 400, 1000], (3, 2)),
        row(iso("2024-03-04T00:00"), "refund", 1, 1, (10, 5, 15, 0), [1000], (1, 1)),
        row(iso("2024-03-04T00:00"), "search"),
        row(iso("2024-03-04T00:00"), "zeta"),
    ]
    assert (found["totals"]["messages"], found["totals"]["toolCalls"], found["totals"]["toolErrors"]) == (
        6,
        6,
        3,
    )


def test_grouped_by_a_label(graphql: GraphQLCall, stats: Data) -> None:
    found = stats.stats(graphql, groupBy="LABEL", label="user", **THREE_DAYS)

    assert_consistent(found, ["ana", "bo", None], buckets=3)  # c has no user label
    assert [(t["key"], t["messages"], t["sessions"], t["toolErrors"]) for t in found["keyTotals"]] == [
        ("ana", 6, 1, 1),
        ("bo", 4, 1, 2),
        (None, 3, 1, 0),
    ]
    by_channel = stats.stats(graphql, groupBy="LABEL", label="channel", **THREE_DAYS)
    assert [(t["key"], t["messages"]) for t in by_channel["keyTotals"]] == [("web", 3), (None, 10)]
    only_ana = stats.stats(
        graphql, groupBy="LABEL", label="user", f={"labels": {"user": "ana"}}, **THREE_DAYS
    )
    assert [(t["key"], t["messages"]) for t in only_ana["keyTotals"]] == [("ana", 6)]


def test_filters_narrow_what_is_counted(graphql: GraphQLCall, stats: Data) -> None:
    support_answers = stats.stats(graphql, f={"role": "assistant", "agentId": "support"}, **THREE_DAYS)
    ana = stats.stats(graphql, f={"labels": {"user": "ana"}, "toolName": "lookup"}, **THREE_DAYS)

    assert support_answers["totals"] == row(None, None, 4, 2, (221, 61, 282, 40), [200, 400, 100, 50], (4, 0))
    assert ana["totals"] == row(None, None, 2, 1, (150, 30, 180, 30), [200, 400], (2, 0))


def test_day_buckets_start_at_local_midnight_in_the_time_zone_asked_for(
    graphql: GraphQLCall, stats: Data
) -> None:
    """c's 03:00 UTC message is still Monday evening in New York (UTC-5 in March before the 10th)."""
    utc = stats.stats(graphql, **THREE_DAYS)
    new_york = stats.stats(
        graphql,
        bucket="DAY",
        from_="2024-03-03T05:00:00Z",
        to="2024-03-06T05:00:00Z",
        timeZone="America/New_York",
    )

    assert [(r["bucketStart"], r["messages"]) for r in utc["rows"]] == [
        (iso("2024-03-03T00:00"), 0),
        (iso("2024-03-04T00:00"), 10),
        (iso("2024-03-05T00:00"), 3),
    ]
    assert [(r["bucketStart"], r["messages"], r["sessions"]) for r in new_york["rows"]] == [
        (iso("2024-03-03T05:00"), 0, 0),
        (iso("2024-03-04T05:00"), 11, 3),
        (iso("2024-03-05T05:00"), 2, 1),
    ]


def test_buckets_across_a_daylight_saving_change(graphql: GraphQLCall, new_id: NewId) -> None:
    """New York skips 02:00-03:00 local on 2024-03-10 (07:00 UTC): an hour bucket each real hour,
    and the next day starts at 04:00 UTC."""
    data = Data(new_id("dst"))
    messages = [at(0, user("before"), "2024-03-10T06:30:00Z"), at(1, user("after"), "2024-03-10T07:30:00Z")]
    conversation(graphql, data.session("x"), "a", messages)
    zone = {"timeZone": "America/New_York"}

    hours = data.stats(graphql, from_="2024-03-10T05:00:00Z", to="2024-03-10T09:00:00Z", **zone)
    days = data.stats(graphql, bucket="DAY", from_="2024-03-10T05:00:00Z", to="2024-03-12T04:00:00Z", **zone)

    assert [(r["bucketStart"], r["messages"]) for r in hours["rows"]] == [
        (iso("2024-03-10T05:00"), 0),
        (iso("2024-03-10T06:00"), 1),
        (iso("2024-03-10T07:00"), 1),
        (iso("2024-03-10T08:00"), 0),
    ]
    assert sum(r["messages"] for r in hours["rows"]) == hours["totals"]["messages"] == 2
    assert [(r["bucketStart"], r["messages"]) for r in days["rows"]] == [
        (iso("2024-03-10T05:00"), 2),
        (iso("2024-03-11T04:00"), 0),
    ]


# --- refusals ---


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "utc+1", "localtime", "posixrules", "../UTC"])
def test_an_unknown_time_zone_is_refused(graphql: GraphQLCall, stats: Data, zone: str) -> None:
    body = graphql(
        STATS, {"timeZone": zone, **{"from": "2024-03-04T10:00:00Z", "to": "2024-03-04T14:00:00Z"}}
    )

    error = assert_error(body, "BAD_USER_INPUT", "timeZone")
    assert repr(zone) in error["message"]


def test_a_range_that_ends_before_it_starts_is_refused(graphql: GraphQLCall) -> None:
    backwards = {"from": "2024-03-04T14:00:00Z", "to": "2024-03-04T10:00:00Z"}
    empty = {"from": "2024-03-04T10:00:00Z", "to": ms("2024-03-04T10:00")}

    assert_error(graphql(STATS, backwards), "BAD_USER_INPUT", "from")
    assert_error(graphql(STATS, empty), "BAD_USER_INPUT", "from")
    assert_error(graphql(STATS, {"from": "yesterday"}), "BAD_USER_INPUT")
    future = assert_error(graphql(STATS, {"from": "9000-01-01T00:00:00Z"}), "BAD_USER_INPUT", "from")
    assert future["message"] == "from: must be in the past when to is left out"


def test_too_many_buckets_are_refused_naming_the_maximum(graphql: GraphQLCall, stats: Data) -> None:
    start, end = "2024-03-01T00:00:00Z", ms("2024-03-01T00:00") + 5000 * 60_000

    assert len(stats.stats(graphql, bucket="MINUTE", from_=start, to=end)["rows"]) == 5000
    variables = {
        "bucket": "MINUTE",
        "from": start,
        "to": end + 60_000,
        "f": {"sessionIdPrefix": stats.prefix},
    }
    error = assert_error(graphql(STATS, variables), "BAD_USER_INPUT", "bucket")
    assert "5000" in error["message"]


def test_too_many_rows_of_buckets_times_keys_are_refused_before_they_run(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    limits = server.settings.limits
    most, most_keys = limits.max_cost, limits.max_stats_keys
    data = Data(new_id("stats"))
    keys = most // 5000 + 1  # one key more than 5000 buckets can show
    roles = [
        at(i, {"role": f"role-{i:02}", "content": [{"text": "x"}]}, "2024-03-01T00:00:00Z")
        for i in range(keys)
    ]
    conversation(graphql, data.session("x"), "a", roles)
    variables = {
        "bucket": "MINUTE",
        "groupBy": "ROLE",
        "from": "2024-03-01T00:00:00Z",
        "to": ms("2024-03-01T00:00") + 5000 * 60_000,
        "f": {"sessionIdPrefix": data.prefix},
    }

    error = assert_error(graphql(STATS, variables), "QUERY_TOO_COSTLY")
    # Estimated before running: 5,000 buckets times the most keys a grouping may have.
    estimate = 5000 * most_keys + most_keys + 1
    assert f"about {estimate} rows" in error["message"] and str(most) in error["message"]
    an_hour = data.stats(
        graphql, bucket="MINUTE", groupBy="ROLE", from_="2024-03-01T00:00:00Z", to="2024-03-01T01:00:00Z"
    )
    assert len(an_hour["rows"]) == 60 * keys


def test_grouping_by_label_needs_the_label(graphql: GraphQLCall) -> None:
    assert_error(graphql(STATS, {"groupBy": "LABEL"}), "BAD_USER_INPUT", "label")
    assert_error(graphql(STATS, {"groupBy": "LABEL", "label": ""}), "BAD_USER_INPUT", "label")


# --- toolStats ---


def tool_stats(graphql: GraphQLCall, data: Data, **variables: Any) -> list[tuple[str, int, int, float]]:
    f = {"sessionIdPrefix": data.prefix, **variables.pop("f", {})}
    found = ask(graphql, TOOL_STATS, f=f, **variables)["toolStats"]
    return [(t["name"], t["calls"], t["errors"], round(t["errorRate"], 6)) for t in found]


def test_tool_stats_most_errors_first_then_most_calls_then_name(graphql: GraphQLCall, stats: Data) -> None:
    assert tool_stats(graphql, stats) == [
        ("lookup", 3, 2, round(2 / 3, 6)),
        ("refund", 1, 1, 1.0),
        ("search", 1, 0, 0.0),
        ("zeta", 1, 0, 0.0),  # never answered: a call without an error
    ]
    assert tool_stats(graphql, stats, first=1) == [("lookup", 3, 2, round(2 / 3, 6))]


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        ({"agentId": "billing"}, [("lookup", 1, 1, 1.0), ("refund", 1, 1, 1.0)]),
        ({"labels": {"user": "ana"}}, [("lookup", 2, 1, 0.5)]),
        ({"created": {"start": "2024-03-05T00:00:00Z"}}, [("search", 1, 0, 0.0), ("zeta", 1, 0, 0.0)]),
        (
            {"toolName": "refund"},
            [("lookup", 1, 1, 1.0), ("refund", 1, 1, 1.0)],
        ),  # b-1 and b-2 share a message
        ({"role": "user"}, []),  # calls are the assistant's
    ],
)
def test_tool_stats_count_the_calls_of_the_messages_the_filter_keeps(
    graphql: GraphQLCall, stats: Data, f: dict[str, Any], expected: list[tuple[str, int, int, float]]
) -> None:
    assert tool_stats(graphql, stats, f=f) == expected


def test_tool_stats_page_size_is_bounded(graphql: GraphQLCall, stats: Data) -> None:
    f = {"sessionIdPrefix": stats.prefix}

    error = assert_error(graphql(TOOL_STATS, {"f": f, "first": 1001}), "BAD_USER_INPUT", "first")
    assert "1000" in error["message"]
    assert ask(graphql, TOOL_STATS, f=f, first=0)["toolStats"] == []


def test_sessions_are_counted_per_tenant_and_across_tenants(http: Any, new_id: NewId) -> None:
    """One session id in two tenants is two sessions for a caller seeing every tenant, one in each."""
    session_id = new_id("twin")
    seed = """mutation($s: String!) {
      createSession(session: {sessionId: $s}) { sessionId }
      createAgent(sessionId: $s, agent: {agentId: "a", state: {}, conversationManagerState: {}}) { agentId }
      appendMessages(sessionId: $s, agentId: "a", messages: [
        {messageId: 0, message: {role: "user", content: [{text: "hi"}]}}]) { messageId }
    }"""
    for tenant in ("twins-1", "twins-2"):
        answer = http.post(
            "/graphql", json={"query": seed, "variables": {"s": session_id}}, headers={"X-Tenant": tenant}
        )
        assert "errors" not in answer.json(), answer.json()
    query = """query($f: ConversationFilter) { conversationStats(bucket: DAY, groupBy: NONE, filter: $f) {
      totals { messages sessions } } }"""
    variables = {"f": {"sessionIdPrefix": session_id}}

    def totals(headers: dict[str, str]) -> dict[str, int]:
        body = http.post("/graphql", json={"query": query, "variables": variables}, headers=headers).json()
        assert "errors" not in body, body
        found: dict[str, int] = body["data"]["conversationStats"]["totals"]
        return found

    try:
        assert totals({}) == {"messages": 2, "sessions": 2}
        assert totals({"X-Tenant": "twins-1"}) == {"messages": 1, "sessions": 1}
    finally:  # listings across tenants elsewhere expect each session id once
        for tenant in ("twins-1", "twins-2"):
            gone = "mutation($s: String!) { deleteSession(sessionId: $s) }"
            http.post(
                "/graphql", json={"query": gone, "variables": {"s": session_id}}, headers={"X-Tenant": tenant}
            )
