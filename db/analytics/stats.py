"""Conversation statistics for dashboards: from the rollups where they serve, else from the message facts.

Buckets are cut in the time zone asked for (an hour or a day in Europe/Lisbon, not in UTC), from
the indexed ``(tenant, created_at)`` of the messages. One statement computes every bucket of every
key, every key's total and the grand total (GROUPING SETS); the empty buckets come from a second,
tiny one, so a chart has a point for every bucket.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Text,
    and_,
    bindparam,
    cast,
    distinct,
    func,
    literal,
    null,
    select,
    text,
    tuple_,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from db.analytics import rollup_stats, rollups
from db.analytics.filters import ConversationFilter, messages_matching
from db.availability import sqlstate_of
from db.models import messages, sessions, tool_calls
from db.tenancy import Scope

INVALID_PARAMETER_VALUE = "22023"
UNITS = {"MINUTE": "minute", "HOUR": "hour", "DAY": "day", "WEEK": "week"}
STEPS = {
    "MINUTE": timedelta(minutes=1),
    "HOUR": timedelta(hours=1),
    "DAY": timedelta(days=1),
    "WEEK": timedelta(weeks=1),
}


@dataclass(frozen=True, slots=True)
class StatsRow:
    bucket_start: datetime | None
    key: str | None
    messages: int
    sessions: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read_tokens: int
    avg_latency_ms: float | None
    p95_latency_ms: float | None
    tool_calls: int
    tool_errors: int


@dataclass(frozen=True, slots=True)
class Stats:
    rows: list[StatsRow]
    key_totals: list[StatsRow]
    totals: StatsRow
    from_rollups: bool = False


@dataclass(frozen=True, slots=True)
class StatsRequest:
    bucket: str
    start: datetime
    end: datetime
    group_by: str
    label: str | None
    time_zone: str


_CALLS_WITH_MESSAGES = tool_calls.join(
    messages,
    and_(
        messages.c.session_id == tool_calls.c.session_id,
        messages.c.tenant == tool_calls.c.tenant,
        messages.c.agent_id == tool_calls.c.agent_id,
        messages.c.message_id == tool_calls.c.called_message_id,
    ),
)
"""Each tool call with the message that made it."""


def _empty(bucket_start: datetime | None, key: str | None) -> StatsRow:
    return StatsRow(bucket_start, key, 0, 0, 0, 0, 0, 0, None, None, 0, 0)


class UnknownTimeZone(Exception):
    """PostgreSQL knows no zone of that name (its zone database and Python's can differ)."""


async def bucket_starts(conn: AsyncConnection, request: StatsRequest) -> list[datetime]:
    """Every bucket of the range, as instants: local bucket starts, mapped back through the zone.

    Raises ``UnknownTimeZone`` when PostgreSQL does not know ``request.time_zone``.
    """
    try:
        rows = await conn.execute(
            text(
                # DISTINCT: the local hour a clock skips (spring forward) maps to the instant of the next.
                "SELECT DISTINCT timezone(:tz, local_start) AS bucket_start FROM generate_series("
                "date_trunc(:unit, timezone(:tz, CAST(:start AS timestamptz))), "
                "date_trunc(:unit, timezone(:tz, CAST(:end AS timestamptz) - interval '1 microsecond')), "
                "CAST(:step AS interval)) AS local_start ORDER BY 1"
            ),
            {
                "tz": request.time_zone,
                "unit": UNITS[request.bucket],
                "start": request.start,
                "end": request.end,
                "step": STEPS[request.bucket],
            },
        )
    except DBAPIError as error:
        if sqlstate_of(error) == INVALID_PARAMETER_VALUE:  # the zone is the only parameter it can be
            raise UnknownTimeZone(request.time_zone) from None
        raise
    return [row.bucket_start for row in rows]


def _message_facts(scope: Scope, f: ConversationFilter, request: StatsRequest) -> Any:
    """One row per message in range (per tool call, grouped by tool), with its bucket and key."""
    local = func.timezone(bindparam("tz", request.time_zone), messages.c.created_at)
    bucket = func.date_trunc(bindparam("unit", UNITS[request.bucket]), local).label("local_start")
    in_range = and_(messages.c.created_at >= request.start, messages.c.created_at < request.end)
    columns: list[ColumnElement[Any]] = [
        messages.c.session_id,
        messages.c.tenant,
        messages.c.input_tokens,
        messages.c.output_tokens,
        messages.c.total_tokens,
        messages.c.cache_read_tokens,
        messages.c.latency_ms,
        messages.c.tool_calls,
        messages.c.tool_errors,
    ]
    if request.group_by == "TOOL":
        # A call per row: its tool, and whether its result was an error.
        calls = (
            select(
                bucket,
                tool_calls.c.name.label("key"),
                *columns[:7],
                literal(1).label("tool_calls"),
                cast(tool_calls.c.status == "error", Integer).label("tool_errors"),
            )
            .select_from(_CALLS_WITH_MESSAGES)
            .where(scope.visible(messages), in_range, *messages_matching(f))
        )
        return calls.subquery("facts")
    keys: dict[str, ColumnElement[Any]] = {
        "NONE": null(),
        "ROLE": messages.c.role,
        "AGENT": messages.c.agent_id,
        "SESSION": messages.c.session_id,
    }
    stmt = select(bucket, *columns)
    if request.group_by == "LABEL":
        # An alias: the filter's own EXISTS on ``sessions`` must not correlate with this join.
        labelled = sessions.alias("labelled")
        stmt = stmt.add_columns(
            labelled.c.labels.op("->>")(bindparam("label", request.label, type_=Text)).label("key")
        )
        stmt = stmt.select_from(
            messages.join(
                labelled,
                and_(labelled.c.session_id == messages.c.session_id, labelled.c.tenant == messages.c.tenant),
            )
        )
    else:
        stmt = stmt.add_columns(cast(keys[request.group_by], Text).label("key"))
    return stmt.where(scope.visible(messages), in_range, *messages_matching(f)).subquery("facts")


def _row(row: Any, bucket_start: datetime | None) -> StatsRow:
    return StatsRow(
        bucket_start=bucket_start,
        key=row.key,
        messages=int(row.messages),
        sessions=int(row.sessions),
        input_tokens=int(row.input_tokens),
        output_tokens=int(row.output_tokens),
        total_tokens=int(row.total_tokens),
        cache_read_tokens=int(row.cache_read_tokens),
        avg_latency_ms=None if row.avg_latency_ms is None else float(row.avg_latency_ms),
        p95_latency_ms=None if row.p95_latency_ms is None else float(row.p95_latency_ms),
        tool_calls=int(row.tool_calls),
        tool_errors=int(row.tool_errors),
    )


async def conversation_stats(
    conn: AsyncConnection,
    scope: Scope,
    f: ConversationFilter,
    request: StatsRequest,
    *,
    most_rows: int,
    most_keys: int,
    rows_only: bool = False,
) -> Stats:
    """Rows for every bucket of every key (empty ones included), each key's totals and the totals.

    Served from the rollups when they hold what the request asks (``rollup_stats.stats_plan``),
    else from the rows. Run it in one snapshot (``Database.run_in_snapshot``): the rollups, their
    queue and the rows must agree. A grouping with more keys than ``most_keys`` is refused with
    ``TooManyKeys``; one with more buckets times keys (plus their totals) than ``most_rows`` with
    ``TooManyRows``. ``rows_only`` reads the rows whatever the request (to check the rollups).
    """
    starts = await bucket_starts(conn, request)  # first: it checks the zone
    plan = (
        None
        if rows_only
        else rollup_stats.stats_plan(
            scope,
            f,
            await rollups.label_keys(conn),
            bucket=request.bucket,
            start=request.start,
            end=request.end,
            group_by=request.group_by,
            label=request.label,
            time_zone=request.time_zone,
            unit=UNITS[request.bucket],
        )
    )
    if plan is None:
        found = await _from_rows(conn, scope, f, request)
    else:
        found = [(cell.level, _cell_row(cell)) for cell in await rollup_stats.read_cells(conn, plan)]
    return _laid_out(
        found, starts, request, most_rows=most_rows, most_keys=most_keys, from_rollups=bool(plan)
    )


async def _label_keys(conn: AsyncConnection, f: ConversationFilter, group_by: str) -> list[str]:
    """The label keys the rollups keep, read only when the request names labels."""
    return await rollups.label_keys(conn) if f.labels or group_by == "LABEL" else []


def _cell_row(cell: rollup_stats.Cell) -> StatsRow:
    sums = cell.sums
    return StatsRow(
        bucket_start=cell.bucket_start,
        key=cell.key,
        messages=sums["messages"],
        sessions=cell.sessions,
        input_tokens=sums["input_tokens"],
        output_tokens=sums["output_tokens"],
        total_tokens=sums["total_tokens"],
        cache_read_tokens=sums["cache_read_tokens"],
        avg_latency_ms=cell.avg_latency_ms,
        p95_latency_ms=cell.p95_latency_ms,
        tool_calls=sums["tool_calls"],
        tool_errors=sums["tool_errors"],
    )


async def _from_rows(
    conn: AsyncConnection, scope: Scope, f: ConversationFilter, request: StatsRequest
) -> list[tuple[int, StatsRow]]:
    """(grouping level, row) of every bucket and key, key and the totals, aggregated from the rows."""
    facts = _message_facts(scope, f, request)
    local_instant = func.timezone(bindparam("tz", request.time_zone), facts.c.local_start)
    # Within one tenant a session is its id: counting distinct ids takes half the time of
    # counting distinct (id, tenant) records.
    session: ColumnElement[Any] = (
        tuple_(facts.c.session_id, facts.c.tenant) if scope.all_tenants else facts.c.session_id
    )
    grouped = select(
        func.grouping(facts.c.local_start, facts.c.key).label("level"),
        local_instant.label("bucket_start"),
        facts.c.key,
        func.count().label("messages"),
        func.count(distinct(session)).label("sessions"),
        *(
            func.coalesce(func.sum(facts.c[name]), 0).label(name)
            for name in (
                "input_tokens",
                "output_tokens",
                "total_tokens",
                "cache_read_tokens",
                "tool_calls",
                "tool_errors",
            )
        ),
        func.avg(facts.c.latency_ms).label("avg_latency_ms"),
        func.percentile_cont(0.95).within_group(facts.c.latency_ms).label("p95_latency_ms"),
    ).group_by(func.grouping_sets(tuple_(facts.c.local_start, facts.c.key), tuple_(facts.c.key), tuple_()))
    return [
        (row.level, _row(row, row.bucket_start if row.level == 0 else None))
        for row in await conn.execute(grouped)
    ]


def _laid_out(
    found: list[tuple[int, StatsRow]],
    starts: list[datetime],
    request: StatsRequest,
    *,
    most_rows: int,
    most_keys: int,
    from_rollups: bool,
) -> Stats:
    cells: dict[tuple[datetime | None, str | None], StatsRow] = {}
    key_totals: dict[str | None, StatsRow] = {}
    totals = _empty(None, None)
    for level, row in found:
        if level == 0:
            cells[(row.bucket_start, row.key)] = row
        elif level == 2:  # grouped by key alone
            key_totals[row.key] = row
        else:
            totals = row
    keys = sorted(key_totals, key=lambda k: (k is None, k or ""))
    if request.group_by == "NONE":
        keys = [None]
    if len(keys) > most_keys:
        raise TooManyKeys(len(keys))
    size = len(starts) * max(1, len(keys)) + len(keys) + 1
    if size > most_rows:
        raise TooManyRows(size)
    rows = [cells.get((start, key)) or _empty(start, key) for start in starts for key in keys]
    return Stats(
        rows=rows,
        key_totals=[key_totals[k] for k in keys if k in key_totals],
        totals=totals,
        from_rollups=from_rollups,
    )


class TooManyKeys(Exception):
    def __init__(self, keys: int) -> None:
        super().__init__(f"{keys} keys")
        self.keys = keys


class TooManyRows(Exception):
    def __init__(self, rows: int) -> None:
        super().__init__(f"{rows} rows")
        self.rows = rows


@dataclass(frozen=True, slots=True)
class ToolStat:
    name: str
    calls: int
    errors: int


async def tool_stats(
    conn: AsyncConnection, scope: Scope, f: ConversationFilter, most: int, *, rows_only: bool = False
) -> list[ToolStat]:
    """Calls and errors per tool, most errors first, for calls made by messages matching ``f``.

    Served from the rollups when they hold what the filter names (unless ``rows_only``); run it in
    one snapshot.
    """
    plan = None if rows_only else rollup_stats.tools_plan(scope, f, await _label_keys(conn, f, "TOOL"))
    if plan is not None:
        return [ToolStat(t.name, t.calls, t.errors) for t in await rollup_stats.read_tools(conn, plan, most)]
    errors = func.count().filter(tool_calls.c.status == "error")
    stmt = (
        select(tool_calls.c.name, func.count().label("calls"), errors.label("errors"))
        .select_from(_CALLS_WITH_MESSAGES)
        .where(
            scope.visible(tool_calls),
            tool_calls.c.name != "",
            # A call's time is its message's creation, repeated here so the (tenant, called_at)
            # index narrows the calls before the join instead of reading all of a tenant's.
            f.created.condition(tool_calls.c.called_at),
            *messages_matching(f),
        )
        .group_by(tool_calls.c.name)
        .order_by(errors.desc(), func.count().desc(), tool_calls.c.name)
        .limit(most)
    )
    return [ToolStat(row.name, int(row.calls), int(row.errors)) for row in await conn.execute(stmt)]
