"""Statistics over the bulk-loaded messages, as the Grafana dashboard's panels of tenant ``default`` ask.

The rows, each ``<name> over N msgs (p95)``:

- ``conversationStats HOUR, 1 day`` (grouped by AGENT: the README's hourly query) and
  ``conversationStats HOUR, 1 day, groupBy NONE|ROLE|TOOL``: HOUR buckets over the loaded day;
- ``conversationStats DAY, 7 days, groupBy NONE|AGENT|ROLE|TOOL``: DAY buckets over the week that
  ends with the loaded day (all the messages are in both: the worst case);
- ``toolStats, 7 days``: the tools panel (``first: 20``, calls made in the week);
- ``sessions by TOTAL_TOKENS|MESSAGE_COUNT, first 50``: the first page of the sessions active in the
  week, most first, with the fields of the sessions panel.

Each asks for the fields the panels ask for. Every row takes turns between the dashboard without
its label variable (``filter: {labels: {}}``, what it sends by default) and with it
(``{labels: {team: ...}}``, the four teams in turn, a quarter of the sessions each): the log has
each variant's p95, the row the p95 over both. A row gets ``query_calls`` requests
(``bench.request_timing``); the warm-up answers are checked against what was loaded.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from bench.bulk_load import TEAM_LABEL, TEAMS, Layout
from bench.report import Row, duration
from bench.request_timing import p95, p95_row, timed
from bench.run_context import BenchRun

BUDGET_SECONDS = 0.050
WEEK = timedelta(days=7)
PAGE = 50
STATS = """
query Stats($bucket: Bucket!, $from: Time!, $to: Time!, $groupBy: GroupBy!, $filter: ConversationFilter) {
  conversationStats(bucket: $bucket, from: $from, to: $to, groupBy: $groupBy, filter: $filter) {
    rows { bucketStart key messages inputTokens outputTokens totalTokens avgLatencyMs p95LatencyMs }
    totals { messages sessions totalTokens p95LatencyMs toolCalls toolErrors }
  }
}"""
TOOLS = """
query Tools($filter: ConversationFilter) {
  toolStats(first: 20, filter: $filter) { name calls errors errorRate }
}"""
SESSIONS = """
query TopSessions($field: ListOrderField!, $filter: ConversationFilter) {
  sessions(first: 50, orderBy: {field: $field, direction: DESC}, filter: $filter) {
    nodes {
      sessionId title labels lastActivityAt messageCount snapshotBacked
      totals { totalTokens toolErrors }
      agents { agentId lastMessage { text } }
    }
  }
}"""
ORDERS = ("TOTAL_TOKENS", "MESSAGE_COUNT")

Checked = Callable[[dict[str, Any], str | None, Layout], None]
"""Raises RuntimeError unless an answer's ``data`` is right for the team it asked for (None: all)."""


@dataclass(frozen=True)
class Query:
    name: str
    document: str
    variables: dict[str, Any]
    conditions: dict[str, Any]
    """The filter, but for the labels."""
    check: Checked


def _counted(what: str, found: int, team: str | None, everything: int, of_team: int) -> None:
    """Without a team at least ``everything`` (other cases add their own), with one exactly ``of_team``."""
    if team is None and found < everything:
        raise RuntimeError(f"{what}: {found:,}, expected {everything:,} or more")
    if team is not None and found != of_team:
        raise RuntimeError(f"{what}: {found:,}, expected {of_team:,} (team {team})")


def _stats_check(group_by: str) -> Checked:
    def check(data: dict[str, Any], team: str | None, layout: Layout) -> None:
        totals = data["conversationStats"]["totals"]
        of_team = layout.team_sessions(team) if team else 0
        _counted("sessions in the totals", totals["sessions"], team, layout.sessions, of_team)
        if group_by != "TOOL":  # grouped by tool, ``messages`` counts calls
            of_team = layout.team_messages(team) if team else 0
            _counted("messages in the totals", totals["messages"], team, layout.messages, of_team)

    return check


def _tools_check(data: dict[str, Any], team: str | None, layout: Layout) -> None:
    if not data["toolStats"]:
        raise RuntimeError(f"toolStats found no tool calls (team {team})")


def _sessions_check(field: str) -> Checked:
    def check(data: dict[str, Any], team: str | None, layout: Layout) -> None:
        nodes = data["sessions"]["nodes"]
        of_team = min(PAGE, layout.team_sessions(team)) if team else 0
        _counted("sessions on the first page", len(nodes), team, min(PAGE, layout.sessions), of_team)
        if team and any(node["labels"].get(TEAM_LABEL) != team for node in nodes):
            raise RuntimeError(f"sessions of other teams than {team} on its page")
        values = [
            node["totals"]["totalTokens"] if field == "TOTAL_TOKENS" else node["messageCount"]
            for node in nodes
        ]
        if values != sorted(values, reverse=True):
            raise RuntimeError(f"sessions not in {field} order, most first")

    return check


def _queries(layout: Layout) -> list[Query]:
    day = {"from": layout.day_start.isoformat(), "to": layout.day_end.isoformat()}
    week_start = (layout.day_end - WEEK).isoformat()
    week = {"from": week_start, "to": layout.day_end.isoformat()}
    in_week = {"start": week_start, "end": layout.day_end.isoformat()}
    queries = []
    for bucket, span, time_range, groupings in (
        ("HOUR", "1 day", day, ("AGENT", "NONE", "ROLE", "TOOL")),
        ("DAY", "7 days", week, ("NONE", "AGENT", "ROLE", "TOOL")),
    ):
        for group_by in groupings:
            name = f"conversationStats {bucket}, {span}"
            if (bucket, group_by) != ("HOUR", "AGENT"):  # the row the benchmark always had keeps its name
                name += f", groupBy {group_by}"
            variables = {"bucket": bucket, **time_range, "groupBy": group_by}
            queries.append(Query(name, STATS, variables, {}, _stats_check(group_by)))
    queries.append(Query("toolStats, 7 days", TOOLS, {}, {"created": in_week}, _tools_check))
    for field in ORDERS:
        name = f"sessions by {field}, first {PAGE}"
        queries.append(
            Query(name, SESSIONS, {"field": field}, {"lastActivity": in_week}, _sessions_check(field))
        )
    return queries


def _labels(team: str | None) -> dict[str, str]:
    """The dashboard's label variable: ``{}`` keeps all."""
    return {} if team is None else {TEAM_LABEL: team}


def _timings(bench: BenchRun, client: httpx.Client, query: Query) -> list[float] | str:
    """Wall times of one row's requests, half without the label variable and half with each team."""
    layout = bench.stored_messages()
    teams = [variant for team in TEAMS for variant in (None, team)]
    requests = [
        {
            "query": query.document,
            "variables": {**query.variables, "filter": {**query.conditions, "labels": _labels(team)}},
        }
        for team in teams
    ]
    try:
        by_request = timed(
            client,
            bench.server.url,
            requests,
            bench.sizes.query_calls,
            bench.sizes.query_seconds,
            lambda number, data: query.check(data, teams[number], layout),
        )
    except (RuntimeError, httpx.HTTPError) as error:  # STATEMENT_TIMEOUT: the other rows still count
        bench.log(f"{query.name}: {error}")
        return f"error: {str(error)[:80]}"
    without = [elapsed for times in by_request[::2] for elapsed in times]
    with_team = [elapsed for times in by_request[1::2] for elapsed in times]
    bench.log(
        f"{query.name}: p95 {duration(p95(without))} without labels, {duration(p95(with_team))} with a team"
    )
    return without + with_team


def run(bench: BenchRun) -> list[Row]:
    layout = bench.stored_messages()
    queries = _queries(layout)
    bench.log(f"stats: {len(queries)} queries, up to {bench.sizes.query_calls} requests each")
    headers = {**bench.server.headers, "X-Tenant": "default"}
    rows = []
    with httpx.Client(headers=headers, timeout=60) as client:
        for query in queries:
            timings = _timings(bench, client, query)
            rows.append(p95_row(f"{query.name} over {layout.messages:,} msgs (p95)", timings, BUDGET_SECONDS))
    return rows
