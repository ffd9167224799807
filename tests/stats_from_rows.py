"""``conversationStats`` and ``toolStats`` as the stored rows give them, computed in Python: the
answers the server must serve, whatever it computes them from (``tests/test_stats_exactness.py``).

The rows are the stored messages (their JSON as written, role and creation time) with their
sessions' labels, read over a connection of the test's own. A message's tokens, latency, tool calls
and tool results are read from its JSON here, not from the columns the server derives from it: usage
and latency from the message, tool blocks from what the agent sees (the redaction, if any). A call's
status is that of the result answering it in any message of its agent. Buckets are cut with zoneinfo
as PostgreSQL cuts them (see ``instant_of``), and the 95th percentile is ``percentile_cont``'s.
"""

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.strands_messages import percentile_cont

T = TypeVar("T")
STEPS = {
    "MINUTE": timedelta(minutes=1),
    "HOUR": timedelta(hours=1),
    "DAY": timedelta(days=1),
    "WEEK": timedelta(weeks=1),
}
LATENCY_TOLERANCE = 0.02
"""Average and 95th percentile latency may be off by this much of the exact value (the issue's 2%)."""
EXACT_FIELDS = (
    "bucketStart",
    "key",
    "messages",
    "sessions",
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "cacheReadTokens",
    "toolCalls",
    "toolErrors",
)
LATENCY_FIELDS = ("avgLatencyMs", "p95LatencyMs")
FILTER_FIELDS = frozenset({"sessionIdPrefix", "labels", "agentId", "role", "toolName", "created"})
"""The ConversationFilter fields ``keeps`` knows; a filter naming another is a mistake of the test."""


@dataclass(frozen=True, slots=True)
class ToolUse:
    tool_use_id: str
    name: str
    status: str | None
    """Of the result answering it (in any message of the agent), or None while it is open."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A stored message, with what the statistics count of it."""

    tenant: str
    session_id: str
    agent_id: str
    message_id: int
    role: str
    created_at: datetime
    labels: Mapping[str, Any]
    """Of its session."""
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cache_read_tokens: int | None
    latency_ms: int | None
    calls: tuple[ToolUse, ...]
    tool_errors: int
    """Results it carries whose status is error."""


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """The arguments of one ``conversationStats`` field."""

    bucket: str
    start: datetime
    end: datetime
    group_by: str = "NONE"
    time_zone: str = "UTC"
    label: str | None = None
    filter: Mapping[str, Any] = field(default_factory=dict)

    def variables(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "groupBy": self.group_by,
            "label": self.label,
            "timeZone": self.time_zone,
            "filter": dict(self.filter),
        }

    def __str__(self) -> str:
        grouping = f"LABEL {self.label}" if self.group_by == "LABEL" else self.group_by
        return (
            f"{self.bucket} by {grouping} in {self.time_zone}, {self.start.isoformat()} to "
            f"{self.end.isoformat()}, filter {dict(self.filter)}"
        )

    def narrowed(self, more: Mapping[str, Any]) -> "StatsQuery":
        return replace(self, filter={**self.filter, **more})


# --- the rows ---


def _blocks(message: Any) -> list[Mapping[str, Any]]:
    content = message.get("content") if isinstance(message, Mapping) else None
    return [block for block in content if isinstance(block, Mapping)] if isinstance(content, list) else []


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _usage(message: Any) -> tuple[int | None, int | None, int | None, int | None]:
    usage = (message.get("metadata") or {}).get("usage")
    if not isinstance(usage, Mapping):
        return None, None, None, None
    spent_in, spent_out = _count(usage.get("inputTokens")) or 0, _count(usage.get("outputTokens")) or 0
    total = _count(usage.get("totalTokens")) or spent_in + spent_out
    return spent_in, spent_out, total, _count(usage.get("cacheReadInputTokens")) or 0


def _latency(message: Any) -> int | None:
    metrics = (message.get("metadata") or {}).get("metrics")
    value = metrics.get("latencyMs") if isinstance(metrics, Mapping) else None
    return round(value) if isinstance(value, float) and value >= 0 else _count(value)


def _results(seen: Any) -> list[tuple[str, str]]:
    found = []
    for block in _blocks(seen):
        result = block.get("toolResult")
        if isinstance(result, Mapping):
            status = result.get("status")
            found.append(
                (str(result.get("toolUseId", "")), status if status in ("success", "error") else "success")
            )
    return found


def _uses(seen: Any) -> list[tuple[str, str]]:
    return [
        (str(block["toolUse"].get("toolUseId", "")), block["toolUse"]["name"])
        for block in _blocks(seen)
        if isinstance(block.get("toolUse"), Mapping) and isinstance(block["toolUse"].get("name"), str)
    ]


READ_MESSAGES = text(
    "SELECT m.tenant, m.session_id, m.agent_id, m.message_id, m.role, m.created_at, "
    "m.message::text AS message, m.redact_message::text AS redaction, s.labels "
    "FROM session_messages m JOIN sessions s ON s.session_id = m.session_id AND s.tenant = m.tenant "
    "WHERE starts_with(m.session_id, :prefix)"
)


async def read_messages(conn: AsyncConnection, session_prefix: str) -> list[StoredMessage]:
    """Every tenant's stored messages of sessions whose id starts with ``session_prefix``."""
    rows = (await conn.execute(READ_MESSAGES, {"prefix": session_prefix})).all()
    await conn.rollback()
    parsed = []
    status: dict[tuple[str, str, str, str], str] = {}
    for row in rows:
        message = json.loads(row.message)
        seen = message if row.redaction is None else json.loads(row.redaction)
        agent = (row.tenant, row.session_id, row.agent_id)
        for tool_use_id, result in _results(seen):
            status[(*agent, tool_use_id)] = result
        parsed.append((row, message, seen))
    found = []
    for row, message, seen in parsed:
        calls = tuple(
            ToolUse(tool_use_id, name, status.get((row.tenant, row.session_id, row.agent_id, tool_use_id)))
            for tool_use_id, name in _uses(seen)
        )
        found.append(
            StoredMessage(
                row.tenant,
                row.session_id,
                row.agent_id,
                row.message_id,
                row.role,
                row.created_at,
                row.labels,
                *_usage(message),
                latency_ms=_latency(message),
                calls=calls,
                tool_errors=sum(result == "error" for _, result in _results(seen)),
            )
        )
    return found


async def wait_for_fold(conn: AsyncConnection, timeout_seconds: float = 30.0) -> bool:
    """Waits until the rollups' background fold has taken in every logged change
    (``rollup_invalidations`` is empty); False at once when there is no such log.

    Each look ends its transaction: one left open would hold back what the fold may see.
    """
    log = (await conn.execute(text("SELECT to_regclass('rollup_invalidations') IS NOT NULL"))).scalar_one()
    await conn.rollback()
    if not log:
        return False
    deadline = time.monotonic() + timeout_seconds
    while True:
        pending = (await conn.execute(text("SELECT count(*) FROM rollup_invalidations"))).scalar_one()
        await conn.rollback()
        if pending == 0:
            return True
        assert time.monotonic() < deadline, (
            f"{pending} invalidations still unfolded after {timeout_seconds} s"
        )
        await asyncio.sleep(0.05)


class RawRows:
    """The database as the test reads it, from synchronous tests: its own event loop and engine."""

    def __init__(self, runner: asyncio.Runner, engine: AsyncEngine) -> None:
        self.runner = runner
        self.engine = engine

    def _run(self, work: Callable[[AsyncConnection], Coroutine[Any, Any, T]]) -> T:
        async def connected() -> T:
            async with self.engine.connect() as conn:
                return await work(conn)

        return self.runner.run(connected())

    def messages(self, session_prefix: str) -> list[StoredMessage]:
        return self._run(lambda conn: read_messages(conn, session_prefix))

    def sessions(self, session_prefix: str) -> list[tuple[str, str]]:
        """Every tenant's sessions whose id starts with ``session_prefix``: (tenant, session id)."""
        statement = text("SELECT tenant, session_id FROM sessions WHERE starts_with(session_id, :prefix)")

        async def read(conn: AsyncConnection) -> list[tuple[str, str]]:
            return [
                (row.tenant, row.session_id)
                for row in await conn.execute(statement, {"prefix": session_prefix})
            ]

        return self._run(read)

    def wait_for_fold(self) -> bool:
        return self._run(wait_for_fold)


# --- what the answers must be ---


def instant_of(local: datetime, zone: ZoneInfo) -> datetime:
    """The instant of a wall-clock time, as PostgreSQL's ``timezone(zone, timestamp)`` takes it: in a
    gap (spring forward) with the offset before it, in an overlap (fall back) with the offset after."""
    before, after = local.replace(tzinfo=zone, fold=0), local.replace(tzinfo=zone, fold=1)
    if before.utcoffset() == after.utcoffset():
        return before.astimezone(UTC)
    in_gap = before.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local
    return (before if in_gap else after).astimezone(UTC)


def local_start(instant: datetime, bucket: str, zone: ZoneInfo) -> datetime:
    """``date_trunc(bucket, timezone(zone, instant))``: the wall-clock start of its bucket."""
    local = instant.astimezone(zone).replace(tzinfo=None)
    if bucket == "MINUTE":
        return local.replace(second=0, microsecond=0)
    if bucket == "HOUR":
        return local.replace(minute=0, second=0, microsecond=0)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if bucket == "WEEK" else day


def bucket_starts(query: StatsQuery) -> list[datetime]:
    """Every bucket of the range: wall-clock starts a step apart, as instants, each once."""
    zone = ZoneInfo(query.time_zone)
    local = local_start(query.start, query.bucket, zone)
    last = local_start(query.end - timedelta(microseconds=1), query.bucket, zone)
    starts = set()
    while local <= last:
        starts.add(instant_of(local, zone))
        local += STEPS[query.bucket]
    return sorted(starts)


def _parse(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def keeps(f: Mapping[str, Any], message: StoredMessage) -> bool:
    """Whether the ConversationFilter ``f`` keeps the message."""
    unknown = set(f) - FILTER_FIELDS
    assert not unknown, f"the expected answers know no filter on {sorted(unknown)}"
    created = f.get("created") or {}
    return (
        message.session_id.startswith(f.get("sessionIdPrefix") or "")
        and all(message.labels.get(name) == value for name, value in (f.get("labels") or {}).items())
        and f.get("agentId") in (None, message.agent_id)
        and f.get("role") in (None, message.role)
        and f.get("toolName") in (None, *(call.name for call in message.calls))
        and (created.get("start") is None or message.created_at >= _parse(created["start"]))
        and (created.get("end") is None or message.created_at < _parse(created["end"]))
    )


@dataclass(frozen=True, slots=True)
class _Counted:
    """One row the statistics add up: a message, or (grouped by tool) one call of a message."""

    message: StoredMessage
    key: str | None
    tool_calls: int
    tool_errors: int


def _counted(message: StoredMessage, query: StatsQuery) -> list[_Counted]:
    if query.group_by == "TOOL":
        return [_Counted(message, call.name, 1, int(call.status == "error")) for call in message.calls]
    keys = {
        "NONE": None,
        "ROLE": message.role,
        "AGENT": message.agent_id,
        "SESSION": message.session_id,
        "LABEL": None if query.label is None else message.labels.get(query.label),
    }
    return [_Counted(message, keys[query.group_by], len(message.calls), message.tool_errors)]


def _added_up(
    counted: list[_Counted], bucket_start: datetime | None, key: str | None, every_tenant: bool
) -> dict[str, Any]:
    messages = [each.message for each in counted]
    latencies = [m.latency_ms for m in messages if m.latency_ms is not None]

    def total(read: Callable[[StoredMessage], int | None]) -> int:
        return sum(read(m) or 0 for m in messages)

    return {
        "bucketStart": bucket_start,
        "key": key,
        "messages": len(counted),
        "sessions": len({(m.session_id, m.tenant if every_tenant else "") for m in messages}),
        "inputTokens": total(lambda m: m.input_tokens),
        "outputTokens": total(lambda m: m.output_tokens),
        "totalTokens": total(lambda m: m.total_tokens),
        "cacheReadTokens": total(lambda m: m.cache_read_tokens),
        "avgLatencyMs": sum(latencies) / len(latencies) if latencies else None,
        "p95LatencyMs": percentile_cont(latencies, 0.95) if latencies else None,
        "toolCalls": sum(each.tool_calls for each in counted),
        "toolErrors": sum(each.tool_errors for each in counted),
    }


def visible(messages: Iterable[StoredMessage], tenant: str | None) -> list[StoredMessage]:
    """The messages a caller of ``tenant`` sees (None: a caller seeing every tenant)."""
    return [m for m in messages if tenant is None or m.tenant == tenant]


def expected_stats(messages: list[StoredMessage], query: StatsQuery, tenant: str | None) -> dict[str, Any]:
    """``conversationStats`` as a caller of ``tenant`` (None: every tenant) must be answered."""
    zone = ZoneInfo(query.time_zone)
    counted = [
        each
        for m in visible(messages, tenant)
        if query.start <= m.created_at < query.end and keeps(query.filter, m)
        for each in _counted(m, query)
    ]
    cells: dict[tuple[datetime, str | None], list[_Counted]] = defaultdict(list)
    by_key: dict[str | None, list[_Counted]] = defaultdict(list)
    for each in counted:
        cells[(instant_of(local_start(each.message.created_at, query.bucket, zone), zone), each.key)].append(
            each
        )
        by_key[each.key].append(each)
    keys = [None] if query.group_by == "NONE" else sorted(by_key, key=lambda k: (k is None, k or ""))
    every_tenant = tenant is None
    return {
        "rows": [
            _added_up(cells.get((start, key), []), start, key, every_tenant)
            for start in bucket_starts(query)
            for key in keys
        ],
        "keyTotals": [_added_up(by_key[key], None, key, every_tenant) for key in keys if key in by_key],
        "totals": _added_up(counted, None, None, every_tenant),
    }


def expected_tool_stats(
    messages: list[StoredMessage], f: Mapping[str, Any], first: int, tenant: str | None
) -> list[dict[str, Any]]:
    """``toolStats(filter: f, first: first)`` as a caller of ``tenant`` must be answered."""
    calls: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for m in visible(messages, tenant):
        if keeps(f, m):
            for call in m.calls:
                calls[call.name][0] += 1
                calls[call.name][1] += call.status == "error"
    ranked = sorted(calls.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))
    return [
        {"name": name, "calls": made, "errors": errors, "errorRate": errors / made}
        for name, (made, errors) in ranked[:first]
    ]


# --- comparing ---


def _close(served: float | None, exact: float | None) -> bool:
    if served is None or exact is None:
        return served is exact
    return abs(served - exact) <= LATENCY_TOLERANCE * abs(exact) + 1e-9


def _row_differences(served: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    shown = {
        **served,
        "bucketStart": None if served["bucketStart"] is None else _parse(served["bucketStart"]),
    }
    found = [
        f"{name} {shown[name]!r} != {expected[name]!r}"
        for name in EXACT_FIELDS
        if shown[name] != expected[name]
    ]
    found += [
        f"{name} {shown[name]!r} not within 2% of {expected[name]!r}"
        for name in LATENCY_FIELDS
        if not _close(shown[name], expected[name])
    ]
    return found


def stats_differences(served: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """What differs between a served ``conversationStats`` and the expected one, row by row."""
    found = []
    for part in ("rows", "keyTotals"):
        if len(served[part]) != len(expected[part]):
            described = [(r["bucketStart"], r["key"]) for r in expected[part]][:6]
            found.append(f"{part}: {len(served[part])} served, {len(expected[part])} expected {described}...")
            continue
        for n, (got, wanted) in enumerate(zip(served[part], expected[part], strict=True)):
            found += [
                f"{part}[{n}] ({wanted['bucketStart']}, {wanted['key']}): {d}"
                for d in _row_differences(got, wanted)
            ]
    found += [f"totals: {d}" for d in _row_differences(served["totals"], expected["totals"])]
    return found


def tool_stats_differences(served: list[Mapping[str, Any]], expected: list[dict[str, Any]]) -> list[str]:
    exact = [(t["name"], t["calls"], t["errors"]) for t in served]
    wanted = [(t["name"], t["calls"], t["errors"]) for t in expected]
    if exact != wanted:
        return [f"toolStats {exact} != {wanted}"]
    return [
        f"toolStats {got['name']} errorRate {got['errorRate']} != {want['errorRate']}"
        for got, want in zip(served, expected, strict=True)
        if abs(got["errorRate"] - want["errorRate"]) > 1e-9
    ]
