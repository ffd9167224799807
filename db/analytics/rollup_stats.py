"""Statistics served from the rollups, exact: folded buckets from the rollup tables, the rest from rows.

A request is served here when the rollups hold what it asks (``stats_plan``, ``tools_plan``):
buckets of an hour or more in a zone whose offset is a whole number of quarter hours, grouped by
nothing, agent, role, tool or a kept label, filtered by the dimensions the rollups keep. Its range
splits in three: the whole 15-minute buckets inside it, read from the rollups unless queued for
the fold; the queued ones; and the partial quarter hours at its ends, both read from the rows.
Sums and distinct sessions are one statement, so rollups, queue and rows agree; the caller runs
it in one snapshot with the label keys it read (``Database.run_in_snapshot``).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.analytics.filters import ConversationFilter, TimeRange
from db.analytics.rollups import BUCKET_MINUTES, NO_LATENCY, hour_start, latency_bin_sql, latency_of_bin
from db.json_values import dump_json
from db.tenancy import Scope

QUARTER = timedelta(minutes=BUCKET_MINUTES)
SERVED_BUCKETS = ("HOUR", "DAY", "WEEK")
SERVED_GROUPS = ("NONE", "AGENT", "ROLE", "TOOL", "LABEL")
EARLIEST = datetime(1972, 1, 1, tzinfo=UTC)
"""Before 1972 some zones' offsets were not whole quarter hours (local mean time)."""
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Plan:
    """How a served request reads: what it groups by, filters, and where its range splits."""

    scope: Scope
    f: ConversationFilter
    group_by: str
    label: str | None
    start: datetime | None
    """Of the messages counted (the request's range and the filter's ``created``); None: open."""
    end: datetime | None
    time_zone: str = "UTC"
    unit: str = "hour"

    @property
    def tools(self) -> bool:
        return self.group_by == "TOOL"

    @property
    def inner(self) -> tuple[datetime | None, datetime | None]:
        """The whole quarter hours of the range (equal ends when it holds none)."""
        first = None if self.start is None else _ceil(self.start)
        last = None if self.end is None else _floor(self.end)
        if first is not None and last is not None and first >= last:
            return first, first
        return first, last


def _floor(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % BUCKET_MINUTES, second=0, microsecond=0)


def _ceil(at: datetime) -> datetime:
    floor = _floor(at)
    return floor if floor == at else floor + QUARTER


def _offsets(plan: Plan, step: timedelta) -> set[timedelta] | None:
    """The zone's offsets along the range: at its ends and every ``step`` between; None if open."""
    if plan.start is None or plan.end is None:
        return None
    zone, at, found = ZoneInfo(plan.time_zone), plan.start, set()
    while True:
        found.add(at.astimezone(zone).utcoffset() or timedelta())
        if at >= plan.end:
            return found
        at = min(at + step, plan.end)


def _whole(plan: Plan, unit: timedelta) -> bool:
    """Whether the zone's offset is a whole number of ``unit`` all along the range (looked at every
    day: no offset lasts less than one), so local buckets are made of UTC ones."""
    offsets = _offsets(plan, timedelta(days=1))
    return offsets is not None and all(offset % unit == timedelta() for offset in offsets)


def _one_offset(plan: Plan) -> bool:
    """Whether the zone keeps one offset from start to end (looked at every hour: zones change
    offset on the hour)."""
    offsets = _offsets(plan, HOUR)
    return offsets is not None and len(offsets) == 1


def served_filter(f: ConversationFilter, keys: Sequence[str]) -> bool:
    """The filter names only dimensions the rollups keep."""
    return (
        f.session_id is None
        and f.session_id_prefix is None
        and f.updated.empty
        and f.last_activity.empty
        and f.content_type is None
        and f.tool_name is None
        and f.tool_status is None
        and f.redacted is None
        and all(key in keys for key, _ in f.labels)
    )


def _within(start: datetime | None, end: datetime | None) -> bool:
    return all(at is None or EARLIEST <= at < LATEST for at in (start, end))


def _narrowed(outer: TimeRange, start: datetime | None, end: datetime | None) -> TimeRange:
    if outer.start is not None:
        start = outer.start if start is None else max(start, outer.start)
    if outer.end is not None:
        end = outer.end if end is None else min(end, outer.end)
    return TimeRange(start, end)


def stats_plan(
    scope: Scope,
    f: ConversationFilter,
    keys: Sequence[str],
    *,
    bucket: str,
    start: datetime,
    end: datetime,
    group_by: str,
    label: str | None,
    time_zone: str,
    unit: str,
) -> Plan | None:
    """How the rollups serve a ``conversationStats`` request, or None when they cannot."""
    if bucket not in SERVED_BUCKETS or group_by not in SERVED_GROUPS or not served_filter(f, keys):
        return None
    if group_by == "LABEL" and label not in keys:
        return None
    if not _within(start, end):
        return None
    counted = _narrowed(f.created, start, end)
    plan = Plan(scope, f, group_by, label, counted.start, counted.end, time_zone, unit)
    return plan if _whole(plan, QUARTER) else None


def tools_plan(scope: Scope, f: ConversationFilter, keys: Sequence[str]) -> Plan | None:
    """How the rollups serve a ``toolStats`` request, or None when they cannot."""
    if not served_filter(f, keys) or not _within(f.created.start, f.created.end):
        return None
    return Plan(scope, f, "TOOL", None, f.created.start, f.created.end)


HOUR = timedelta(hours=1)
WORK_MEM = "64MB"
UTC_GRID = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


class _Query:
    """The SQL of one plan, and its parameters.

    The range splits into whole UTC hours ``[hour_first, hour_last)`` (when the zone's offsets are
    whole hours), the whole quarter hours around them ``[first, last)``, and the partial quarter
    hours at its ends ``[counted_start, first)`` and ``[last, counted_end)``. Sums are read by the
    quarter hour; distinct sessions by the hour where they can (a quarter of the rows).
    """

    def __init__(self, plan: Plan, *, by_hour: bool = False) -> None:
        self.plan = plan
        first, last = plan.inner
        f = plan.f
        hour_first = hour_last = last
        if by_hour and first is not None and last is not None and first < last:
            ceil_hour = hour_start(first) + (HOUR if hour_start(first) != first else timedelta())
            if ceil_hour < hour_start(last):
                hour_first, hour_last = ceil_hour, hour_start(last)
        self.parameters: dict[str, Any] = {
            "tenant": plan.scope.tenant,
            "first": first,
            "last": last,
            "hour_first": hour_first,
            "hour_last": hour_last,
            "counted_start": plan.start,
            "counted_end": plan.end,
            "tz": plan.time_zone,
            "unit": plan.unit,
            "label": plan.label,
            "f_session_type": f.session_type,
            "f_snapshot_backed": f.snapshot_backed,
            "f_labels": dump_json(dict(f.labels)),
            "f_agent": f.agent_id,
            "f_role": f.role,
        }
        self.folded = first is None or last is None or first < last
        self.edges: list[tuple[str, str]] = []
        if not self.folded:  # no whole quarter hour inside: all of it from the rows
            self.edges.append(("counted_start", "counted_end"))
        else:
            if plan.start is not None and first is not None:
                self.edges.append(("counted_start", "first"))
            if plan.end is not None and last is not None:
                self.edges.append(("last", "counted_end"))

    def tenant(self, alias: str) -> str:
        return "true" if self.plan.scope.all_tenants else f"{alias}.tenant = :tenant"

    def _range(self, column: str, low: str, high: str) -> list[str]:
        found = []
        if self.parameters[low] is not None:
            found.append(f"{column} >= :{low}")
        if self.parameters[high] is not None:
            found.append(f"{column} < :{high}")
        return found

    def session_dimensions(self, alias: str) -> list[str]:
        f, found = self.plan.f, []
        if f.session_type is not None:
            found.append(f"{alias}.session_type = :f_session_type")
        if f.snapshot_backed is not None:
            found.append(f"{alias}.snapshot_backed = :f_snapshot_backed")
        if f.labels:
            found.append(f"{alias}.labels @> CAST(:f_labels AS jsonb)")
        return found

    def message_dimensions(self, alias: str) -> list[str]:
        """Conditions on a rollup row's (or an unnested presence pair's) agent and role."""
        f, found = self.plan.f, []
        if f.agent_id is not None:
            found.append(f"{alias}.agent_id = :f_agent")
        if f.role is not None:
            found.append(f"{alias}.role = :f_role")
        return found

    def row_conditions(self) -> list[str]:
        """The same conditions on a message ``m`` of a session ``s``."""
        return [*self.session_dimensions("s"), *self.message_dimensions("m")]

    @property
    def pending(self) -> str:
        conditions = [self.tenant("x"), *self._range("x.bucket_start", "first", "last")]
        return (
            "pending AS MATERIALIZED (SELECT DISTINCT tenant, bucket_start FROM rollup_invalidations x "
            f"WHERE {' AND '.join(conditions)})"
        )

    @staticmethod
    def _not_queued(alias: str) -> str:
        return (
            f"NOT EXISTS (SELECT FROM pending p WHERE p.tenant = {alias}.tenant "
            f"AND p.bucket_start = {alias}.bucket_start)"
        )

    def folded_rows(self, table: str, columns: str) -> str:
        """Rollup rows ``r`` of the whole quarter hours not queued."""
        conditions = [
            self.tenant("r"),
            *self._range("r.bucket_start", "first", "last"),
            *self.session_dimensions("r"),
            *self.message_dimensions("r"),
            self._not_queued("r"),
        ]
        return f"SELECT r.bucket_start AS at, {columns} FROM {table} r WHERE {' AND '.join(conditions)}"

    def present_rows(self, columns: str, unnest: str, conditions: list[str]) -> tuple[str, list[str]]:
        """Presence rows ``r`` (with ``unnest``: their agents, roles, tools, pairs or calls ``x``) of
        the whole hours with nothing queued, and of the whole quarter hours not queued outside them;
        ``conditions`` on the agent and role."""
        conditions = self.session_dimensions("r") + conditions
        hourly = [
            self.tenant("r"),
            "r.bucket_start >= :hour_first AND r.bucket_start < :hour_last",
            *conditions,
            "NOT EXISTS (SELECT FROM pending p WHERE p.tenant = r.tenant "
            "AND p.bucket_start >= r.bucket_start AND p.bucket_start < r.bucket_start + interval '1 hour')",
        ]
        select = f"SELECT r.bucket_start AS at, {columns}"
        hours = f"{select} FROM session_hour_presence r {unnest} WHERE {' AND '.join(hourly)}"
        branches = []
        quarters = [self.tenant("r"), *conditions, self._not_queued("r")]
        for low, high in (("first", "hour_first"), ("hour_last", "last")):
            where = [f"r.bucket_start >= :{low} AND r.bucket_start < :{high}", *quarters]
            branches.append(f"{select} FROM session_presence r {unnest} WHERE {' AND '.join(where)}")
        # the quarter hours of hours with something queued: the hour's presence is not used
        inside = [
            "r.tenant = h.tenant",
            "r.bucket_start >= h.hour AND r.bucket_start < h.hour + interval '1 hour'",
            *conditions,
            self._not_queued("r"),
        ]
        branches.append(
            f"SELECT y.* FROM (SELECT DISTINCT tenant, date_bin('1 hour', bucket_start, {UTC_GRID}) AS hour "
            "FROM pending WHERE bucket_start >= :hour_first AND bucket_start < :hour_last) h "
            f"CROSS JOIN LATERAL ({select} FROM session_presence r {unnest} "
            f"WHERE {' AND '.join(inside)} OFFSET 0) y"
        )
        return hours, branches

    def raw_rows(self, columns: str) -> list[str]:
        """Rows of the edges and of the queued buckets: messages ``m`` (with their calls ``c``); and,
        for a range open at an end, calls of messages at +-infinity there (rows from before times
        were checked), which no bucket holds."""
        tools = self.plan.tools
        join_calls = (
            "JOIN session_messages m ON m.session_id = c.session_id AND m.tenant = c.tenant "
            "AND m.agent_id = c.agent_id AND m.message_id = c.called_message_id "
        )
        sessions = "JOIN sessions s ON s.session_id = m.session_id AND s.tenant = m.tenant "
        base = ("session_tool_calls c " + join_calls if tools else "session_messages m ") + sessions
        driving = "c.called_at" if tools else "m.created_at"
        conditions = self.row_conditions()
        select = f"SELECT m.created_at AS at, {columns} FROM {base}"
        branches = []
        for low, high in self.edges:
            where = [self.tenant("c" if tools else "m"), *self._range(driving, low, high), *conditions]
            if tools:  # the message's own time too, in case a call's time ever disagreed with it
                where += self._range("m.created_at", low, high)
            branches.append(f"{select} WHERE {' AND '.join(where)}")
        if self.folded:
            # One index range per queued bucket (LATERAL; OFFSET 0 keeps the planner from flattening
            # it into a hash join over the whole table), whatever the planner thinks the queue holds.
            owner = "c" if tools else "m"
            where = [
                f"{owner}.tenant = p.tenant AND {driving} >= p.bucket_start "
                f"AND {driving} < p.bucket_start + interval '{BUCKET_MINUTES} minutes'",
                *self._range("m.created_at", "counted_start", "counted_end"),
                *conditions,
            ]
            if tools:
                where.append(
                    "m.created_at >= p.bucket_start "
                    f"AND m.created_at < p.bucket_start + interval '{BUCKET_MINUTES} minutes'"
                )
            branches.append(
                f"SELECT y.* FROM pending p "
                f"CROSS JOIN LATERAL ({select} WHERE {' AND '.join(where)} OFFSET 0) y"
            )
        if self.plan.start is None or self.plan.end is None:
            where = [
                self.tenant("c" if tools else "m"),
                f"{driving} IN ('-infinity', 'infinity')",
                *self._range("m.created_at", "counted_start", "counted_end"),
                *conditions,
            ]
            branches.append(f"{select} WHERE {' AND '.join(where)}")
        return branches


_SUMS = ("messages", "input_tokens", "output_tokens", "total_tokens", "cache_read_tokens")
_MORE = ("latency_count", "latency_sum", "tool_calls", "tool_errors")


def _key(plan: Plan, alias: str) -> str:
    """The grouping key of a rollup row ``r``, a presence pair or call ``x``, or a message ``m``
    (with its session ``s`` and call ``c``)."""
    if plan.group_by == "NONE":
        return "NULL::text"
    if plan.group_by == "LABEL":
        return f"{'s' if alias == 'm' else 'r'}.labels ->> CAST(:label AS text)"
    if plan.group_by == "TOOL":
        return {"r": "r.tool_name", "x": "x.tool", "m": "c.name"}[alias]
    column = "agent_id" if plan.group_by == "AGENT" else "role"
    return f"{alias}.{column}"


def _sums_sql(plan: Plan, query: _Query) -> tuple[str, str]:
    """The CTE of the rows summed, and the SELECT summing them per bucket, key and latency bin."""
    bin_of = latency_bin_sql("m.latency_ms")
    message_sums = (
        "coalesce(m.input_tokens, 0), coalesce(m.output_tokens, 0), coalesce(m.total_tokens, 0), "
        "coalesce(m.cache_read_tokens, 0), (m.latency_ms IS NOT NULL)::int, coalesce(m.latency_ms, 0)"
    )
    names = "key, latency_bin, messages, input_tokens, output_tokens, total_tokens, cache_read_tokens, "
    names += "latency_count, latency_sum, tool_calls, tool_errors"
    if plan.tools:
        folded = query.folded_rows(
            "tool_rollups",
            f"{_key(plan, 'r')}, r.latency_bin, r.calls, r.input_tokens, r.output_tokens, r.total_tokens, "
            "r.cache_read_tokens, r.latency_count, r.latency_sum, r.calls, r.errors",
        )
        raw = query.raw_rows(
            f"{_key(plan, 'm')}, {bin_of}, 1, {message_sums}, 1, (c.status IS NOT DISTINCT FROM 'error')::int"
        )
    else:
        folded = query.folded_rows(
            "message_rollups",
            f"{_key(plan, 'r')}, r.latency_bin, r.messages, r.input_tokens, r.output_tokens, r.total_tokens, "
            "r.cache_read_tokens, r.latency_count, r.latency_sum, r.tool_calls, r.tool_errors",
        )
        raw = query.raw_rows(f"{_key(plan, 'm')}, {bin_of}, 1, {message_sums}, m.tool_calls, m.tool_errors")
    parts = " UNION ALL ".join([folded, *raw] if query.folded else raw)
    sums = ", ".join(f"sum({name}) AS {name}" for name in (*_SUMS, *_MORE))
    ctes = f"parts (at, {names}) AS ({parts})"
    select = (
        f"SELECT GROUPING(lb, key) AS level, timezone(:tz, lb) AS bucket_start, key, latency_bin, {sums}, "
        "NULL::bigint AS sessions "
        "FROM (SELECT date_trunc(:unit, timezone(:tz, at)) AS lb, * FROM parts) x "
        "GROUP BY GROUPING SETS ((lb, key, latency_bin), (key, latency_bin), (latency_bin))"
    )
    return ctes, select


def _present_keys(plan: Plan) -> tuple[str, str, list[str]]:
    """How presence rows ``r`` give the grouping key and meet the agent and role filters: what to
    unnest (as ``x``; the fewest values that answer), the key, and the conditions."""
    f = plan.f
    agent, role = f.agent_id is not None, f.role is not None
    if plan.tools:
        if not agent and not role:
            return "CROSS JOIN LATERAL unnest(r.tools) AS x(tool)", "x.tool", []
        calls = (
            "CROSS JOIN LATERAL unnest(r.call_agents, r.call_roles, r.call_tools) AS x(agent_id, role, tool)"
        )
        return calls, "x.tool", _agent_role("x", f)
    pairs = "CROSS JOIN LATERAL unnest(r.pair_agents, r.pair_roles) AS x(agent_id, role)"
    if plan.group_by == "AGENT":
        if role:
            return pairs, "x.agent_id", _agent_role("x", f)
        return "CROSS JOIN LATERAL unnest(r.agents) AS x(agent_id)", "x.agent_id", _agent_role("x", f)
    if plan.group_by == "ROLE":
        if agent:
            return pairs, "x.role", _agent_role("x", f)
        return "CROSS JOIN LATERAL unnest(r.roles) AS x(role)", "x.role", _agent_role("x", f)
    key = _key(plan, "r")
    if agent and role:
        return pairs, key, _agent_role("x", f)
    found = [":f_agent = ANY(r.agents)"] if agent else []
    return "", key, found + ([":f_role = ANY(r.roles)"] if role else [])


def _agent_role(alias: str, f: ConversationFilter) -> list[str]:
    found = [f"{alias}.agent_id = :f_agent"] if f.agent_id is not None else []
    return found + ([f"{alias}.role = :f_role"] if f.role is not None else [])


def _sessions_sql(plan: Plan, query: _Query) -> tuple[str, str]:
    """The CTEs of the sessions seen per bucket and key, and the SELECT counting them."""
    session = "session_id" if not plan.scope.all_tenants else "session_id, tenant"
    unnest, key, conditions = _present_keys(plan)
    hours, quarters = query.present_rows(f"{key}, r.session_id, r.tenant", unnest, conditions)
    raw = query.raw_rows(f"{_key(plan, 'm')}, m.session_id, m.tenant")
    local = "date_trunc(:unit, timezone(:tz, at)) AS lb, key, session_id, tenant"
    if not query.folded:
        parts, whole = " UNION ALL ".join(raw), None
    elif plan.unit == "hour" and not ("pair_" in unnest or "call_" in unnest) and _one_offset(plan):
        # An hour bucket is one UTC hour (one whole-hour offset all along: no clock turned back to
        # repeat an hour), and an hour's presence row gives each key once: its cells are distinct
        # already, and no other branch reads that hour.
        parts, whole = " UNION ALL ".join([*quarters, *raw]), hours
    else:
        parts, whole = " UNION ALL ".join([hours, *quarters, *raw]), None
    cells = f"SELECT DISTINCT {local} FROM seen"
    if whole is not None:
        cells = f"SELECT {local} FROM ({whole}) h (at, key, session_id, tenant) UNION ALL {cells}"
    ctes = f"seen (at, key, session_id, tenant) AS ({parts}), cells AS ({cells})"
    nothing = "NULL::int AS latency_bin, " + ", ".join(
        f"NULL::numeric AS {name}" for name in (*_SUMS, *_MORE)
    )
    # Distinct by hashing (DISTINCT, then count), not by count(DISTINCT), which sorts.
    select = (
        f"SELECT 0 AS level, timezone(:tz, lb) AS bucket_start, key, {nothing}, count(*) AS sessions "
        "FROM cells GROUP BY lb, key "
        f"UNION ALL SELECT 2, NULL, key, {nothing}, count(*) "
        f"FROM (SELECT DISTINCT key, {session} FROM cells) k GROUP BY key "
        f"UNION ALL SELECT 3, NULL, NULL, {nothing}, count(*) FROM (SELECT DISTINCT {session} FROM cells) t"
    )
    return ctes, select


@dataclass(slots=True)
class Cell:
    """One bucket and key (or a key's totals, or the totals), summed from rollups and rows."""

    level: int
    bucket_start: datetime | None
    key: str | None
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*_SUMS, *_MORE), 0))
    latencies: dict[int, int] = field(default_factory=dict)
    sessions: int = 0

    @property
    def avg_latency_ms(self) -> float | None:
        count = self.sums["latency_count"]
        return self.sums["latency_sum"] / count if count else None

    @property
    def p95_latency_ms(self) -> float | None:
        return percentile(self.latencies, 0.95)


def percentile(histogram: dict[int, int], fraction: float) -> float | None:
    """``percentile_cont(fraction)`` of the latencies in ``histogram`` (bin: count), each bin
    standing for its value: exact under 64 ms, within 2% above."""
    count = sum(histogram.values())
    if not count:
        return None
    position = fraction * (count - 1)
    below, above = math.floor(position), math.ceil(position)
    values: dict[int, float] = {}
    seen = 0
    for number in sorted(histogram):
        upto = seen + histogram[number]
        for wanted in (below, above):
            if seen <= wanted < upto:
                values[wanted] = latency_of_bin(number)
        seen = upto
    return values[below] + (position - below) * (values[above] - values[below])


async def read_cells(conn: AsyncConnection, plan: Plan) -> list[Cell]:
    """Every (bucket, key), key total and total the plan's range holds, summed."""
    query = _Query(plan, by_hour=_whole(plan, HOUR))
    cells: dict[tuple[int, datetime | None, str | None], Cell] = {}

    def cell(level: int, bucket_start: datetime | None, key: str | None) -> Cell:
        found = cells.get((level, bucket_start, key))
        if found is None:
            found = cells[(level, bucket_start, key)] = Cell(level, bucket_start, key)
        return found

    # Distinct sessions are counted by hashing (bucket, key, session): with PostgreSQL's default 4 MB
    # it sorts them instead, several times slower. For this transaction only.
    await conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    sums_ctes, sums = _sums_sql(plan, query)
    sessions_ctes, sessions = _sessions_sql(plan, query)
    statement = f"WITH {query.pending}, {sums_ctes}, {sessions_ctes} ({sums}) UNION ALL ({sessions})"
    for row in await conn.execute(text(statement), query.parameters):
        level = row.level  # GROUPING(lb, key): 0 a bucket's key, 2 a key's totals, 3 the totals
        target = cell(level, row.bucket_start if level == 0 else None, row.key if level != 3 else None)
        if row.sessions is not None:
            target.sessions = int(row.sessions)
            continue
        for name in (*_SUMS, *_MORE):
            target.sums[name] += int(getattr(row, name))
        if row.latency_bin != NO_LATENCY and row.latency_count:
            count = int(row.latency_count)
            target.latencies[row.latency_bin] = target.latencies.get(row.latency_bin, 0) + count
    return list(cells.values())


@dataclass(frozen=True, slots=True)
class ToolCount:
    name: str
    calls: int
    errors: int


async def read_tools(conn: AsyncConnection, plan: Plan, most: int) -> list[ToolCount]:
    """Calls and errors per named tool, most errors first."""
    query = _Query(plan)
    folded = query.folded_rows("tool_rollups", "r.tool_name, r.calls, r.errors")
    raw = query.raw_rows("c.name, 1, (c.status IS NOT DISTINCT FROM 'error')::int")
    parts = " UNION ALL ".join([folded, *raw] if query.folded else raw)
    found = await conn.execute(
        text(
            f"WITH {query.pending}, parts (at, name, calls, errors) AS ({parts}) "
            "SELECT name, sum(calls) AS calls, sum(errors) AS errors FROM parts WHERE name <> '' "
            "GROUP BY name ORDER BY sum(errors) DESC, sum(calls) DESC, name LIMIT :most"
        ),
        {**query.parameters, "most": most},
    )
    return [ToolCount(row.name, int(row.calls), int(row.errors)) for row in found]
