"""Rollups: conversation statistics aggregated ahead of time, kept exact by folding a log of changes.

The pattern is TimescaleDB's continuous aggregates, built from plain tables:

- Rows are per tenant and 15-minute UTC bucket (``rollup_bucket``), over the dimensions dashboards
  filter and group by: agent, role, tool, session type, snapshot-backed, and the values of the
  label keys in ``rollup_settings``. Latency is a log-scale histogram (``latency_bin``): each
  rollup row holds the messages of one bin, so percentiles merge across buckets. Distinct
  sessions come from the presence tables.
- Triggers (migration 0006) append the buckets each write touches to ``rollup_invalidations``
  in the writing transaction: an insert per statement, no shared row, so writers never wait on
  one another.
- ``fold`` recomputes the queued buckets from the rows, a few at a time, each batch in one
  transaction; one replica at a time (an advisory lock). A bucket is recomputed whole, so the
  fold is exact whatever the writes were (backdated, deleted, redacted, rewritten).
- Reads (``db.analytics.rollup_stats``) take the folded buckets from the rollups and the queued
  ones from the rows, in one snapshot: answers are exact without waiting for the fold.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

BUCKET_MINUTES = 15
FOLD_LOCK = 7_283_916_401
"""The advisory lock the fold and rebuilds hold: one replica folds at a time."""
BUCKETS_PER_FOLD = 16
"""Buckets one fold transaction recomputes: small transactions, short locks."""
FOLD_STATEMENT_TIMEOUT = "10min"

EXACT_LATENCY_BELOW = 64
LATENCY_RATIO = 1.04
"""Latencies under 64 ms have a bin each; above, a bin spans 4%, and its value (the geometric
middle) is within 2% of every latency in it."""
NO_LATENCY = -(2**31)
"""The bin of a message without a latency."""


def latency_bin_sql(column: str) -> str:
    return (
        f"CASE WHEN {column} IS NULL THEN {NO_LATENCY} WHEN {column} < {EXACT_LATENCY_BELOW} THEN {column} "
        f"ELSE {EXACT_LATENCY_BELOW} "
        f"+ floor(ln({column} / {EXACT_LATENCY_BELOW}.0) / ln({LATENCY_RATIO}))::int END"
    )


def latency_of_bin(number: int) -> float:
    """The value a bin stands for."""
    if number < EXACT_LATENCY_BELOW:
        return float(number)
    return float(EXACT_LATENCY_BELOW * LATENCY_RATIO ** (number - EXACT_LATENCY_BELOW + 0.5))


def labels_sql(keys: Sequence[str], session: str = "s") -> str:
    """The labels a rollup row keeps: the session's values of the configured keys.

    The keys are bound as ``:label_key_<n>`` parameters (``label_key_parameters``).
    """
    if not keys:
        return "'{}'::jsonb"
    pairs = ", ".join(
        f"CAST(:label_key_{n} AS text), {session}.labels -> CAST(:label_key_{n} AS text)"
        for n in range(len(keys))
    )
    return f"jsonb_strip_nulls(jsonb_build_object({pairs}))"


def label_key_parameters(keys: Sequence[str]) -> dict[str, str]:
    return {f"label_key_{n}": key for n, key in enumerate(keys)}


def _buckets(tenants: str = "tenants", starts: str = "buckets") -> str:
    return f"unnest(CAST(:{tenants} AS text[]), CAST(:{starts} AS timestamptz[])) AS b(tenant, bucket_start)"


def _messages_of(width: str, tenants: str = "tenants", starts: str = "buckets") -> str:
    return f"""
FROM {_buckets(tenants, starts)}
JOIN session_messages m ON m.tenant = b.tenant AND m.created_at >= b.bucket_start
    AND m.created_at < b.bucket_start + interval '{width}'"""


def _calls_of(width: str, tenants: str = "tenants", starts: str = "buckets") -> str:
    # A call's time is its message's (called_at), so the (tenant, called_at) index finds a bucket's calls.
    return f"""
FROM {_buckets(tenants, starts)}
JOIN session_tool_calls c ON c.tenant = b.tenant AND c.called_at >= b.bucket_start
    AND c.called_at < b.bucket_start + interval '{width}'
JOIN session_messages m ON m.session_id = c.session_id AND m.tenant = c.tenant
    AND m.agent_id = c.agent_id AND m.message_id = c.called_message_id
    AND m.created_at >= b.bucket_start AND m.created_at < b.bucket_start + interval '{width}'"""


QUARTER = f"{BUCKET_MINUTES} minutes"
_SESSION = "JOIN sessions s ON s.session_id = m.session_id AND s.tenant = m.tenant"
_TOKEN_SUMS = """
    coalesce(sum(m.input_tokens), 0), coalesce(sum(m.output_tokens), 0), coalesce(sum(m.total_tokens), 0),
    coalesce(sum(m.cache_read_tokens), 0), count(m.latency_ms), coalesce(sum(m.latency_ms), 0)"""


def _presence(table: str, width: str, labels: str, tenants: str, starts: str) -> str:
    """Each session's (agent, role) pairs and (agent, role, tool) calls of a bucket, as arrays."""
    return f"""
        WITH pairs AS (
            SELECT DISTINCT m.session_id, b.tenant, b.bucket_start, m.agent_id, m.role
            {_messages_of(width, tenants, starts)}
        ), calls AS (
            SELECT DISTINCT m.session_id, b.tenant, b.bucket_start, m.agent_id, m.role, c.name
            {_calls_of(width, tenants, starts)}
        ), paired AS (
            SELECT session_id, tenant, bucket_start, array_agg(agent_id ORDER BY agent_id, role) AS agents,
                array_agg(role ORDER BY agent_id, role) AS roles,
                array_agg(DISTINCT agent_id) AS distinct_agents, array_agg(DISTINCT role) AS distinct_roles
            FROM pairs GROUP BY 1, 2, 3
        ), called AS (
            SELECT session_id, tenant, bucket_start,
                array_agg(agent_id ORDER BY agent_id, role, name) AS agents,
                array_agg(role ORDER BY agent_id, role, name) AS roles,
                array_agg(name ORDER BY agent_id, role, name) AS tools,
                array_agg(DISTINCT name) AS distinct_tools
            FROM calls GROUP BY 1, 2, 3
        )
        INSERT INTO {table} (session_id, tenant, bucket_start, session_type, snapshot_backed, labels,
            agents, roles, tools, pair_agents, pair_roles, call_agents, call_roles, call_tools)
        SELECT p.session_id, p.tenant, p.bucket_start, s.session_type, s.snapshot_backed, {labels},
            p.distinct_agents, p.distinct_roles, coalesce(c.distinct_tools, '{{}}'), p.agents, p.roles,
            coalesce(c.agents, '{{}}'), coalesce(c.roles, '{{}}'), coalesce(c.tools, '{{}}')
        FROM paired p
        JOIN sessions s ON s.session_id = p.session_id AND s.tenant = p.tenant
        LEFT JOIN called c ON c.session_id = p.session_id AND c.tenant = p.tenant
            AND c.bucket_start = p.bucket_start"""


def _recompute(keys: Sequence[str]) -> list[str]:
    labels, latency = labels_sql(keys), latency_bin_sql("m.latency_ms")
    return [
        f"""
        INSERT INTO message_rollups (tenant, bucket_start, agent_id, role, session_type, snapshot_backed,
            labels, latency_bin, messages, input_tokens, output_tokens, total_tokens, cache_read_tokens,
            latency_count, latency_sum, tool_calls, tool_errors)
        SELECT b.tenant, b.bucket_start, m.agent_id, m.role, s.session_type, s.snapshot_backed, {labels},
            {latency}, count(*), {_TOKEN_SUMS},
            coalesce(sum(m.tool_calls), 0), coalesce(sum(m.tool_errors), 0)
        {_messages_of(QUARTER)}
        {_SESSION}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8""",
        f"""
        INSERT INTO tool_rollups (tenant, bucket_start, agent_id, role, tool_name, session_type,
            snapshot_backed, labels, latency_bin, calls, errors, input_tokens, output_tokens, total_tokens,
            cache_read_tokens, latency_count, latency_sum)
        SELECT b.tenant, b.bucket_start, m.agent_id, m.role, c.name, s.session_type, s.snapshot_backed,
            {labels}, {latency}, count(*), count(*) FILTER (WHERE c.status = 'error'), {_TOKEN_SUMS}
        {_calls_of(QUARTER)}
        {_SESSION}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9""",
        _presence("session_presence", QUARTER, labels, "tenants", "buckets"),
        _HOUR_PRESENCE,
    ]


# An hour's presence is the union of its quarter hours' (recomputed first, in the same transaction).
_HOUR_PRESENCE = f"""
        WITH quarters AS (
            SELECT q.*, b.bucket_start AS hour FROM {_buckets("hour_tenants", "hours")}
            JOIN session_presence q ON q.tenant = b.tenant AND q.bucket_start >= b.bucket_start
                AND q.bucket_start < b.bucket_start + interval '1 hour'
        ), sessions_of AS (
            SELECT DISTINCT ON (session_id, tenant, hour) session_id, tenant, hour, session_type,
                snapshot_backed, labels
            FROM quarters ORDER BY session_id, tenant, hour, bucket_start DESC
        ), pairs AS (
            SELECT session_id, tenant, hour, array_agg(agent_id ORDER BY agent_id, role) AS agents,
                array_agg(role ORDER BY agent_id, role) AS roles,
                array_agg(DISTINCT agent_id) AS distinct_agents, array_agg(DISTINCT role) AS distinct_roles
            FROM (SELECT DISTINCT session_id, tenant, hour, x.agent_id, x.role
                  FROM quarters, unnest(pair_agents, pair_roles) AS x(agent_id, role)) p
            GROUP BY 1, 2, 3
        ), calls AS (
            SELECT session_id, tenant, hour, array_agg(agent_id ORDER BY agent_id, role, name) AS agents,
                array_agg(role ORDER BY agent_id, role, name) AS roles,
                array_agg(name ORDER BY agent_id, role, name) AS tools,
                array_agg(DISTINCT name) AS distinct_tools
            FROM (SELECT DISTINCT session_id, tenant, hour, x.agent_id, x.role, x.name
                  FROM quarters, unnest(call_agents, call_roles, call_tools) AS x(agent_id, role, name)) c
            GROUP BY 1, 2, 3
        )
        INSERT INTO session_hour_presence (session_id, tenant, bucket_start, session_type, snapshot_backed,
            labels, agents, roles, tools, pair_agents, pair_roles, call_agents, call_roles, call_tools)
        SELECT s.session_id, s.tenant, s.hour, s.session_type, s.snapshot_backed, s.labels,
            p.distinct_agents, p.distinct_roles, coalesce(c.distinct_tools, '{{}}'), p.agents, p.roles,
            coalesce(c.agents, '{{}}'), coalesce(c.roles, '{{}}'), coalesce(c.tools, '{{}}')
        FROM sessions_of s
        JOIN pairs p ON p.session_id = s.session_id AND p.tenant = s.tenant AND p.hour = s.hour
        LEFT JOIN calls c ON c.session_id = s.session_id AND c.tenant = s.tenant AND c.hour = s.hour"""


_FORGET = [
    *(
        f"DELETE FROM {table} r USING {_buckets()} "
        "WHERE r.tenant = b.tenant AND r.bucket_start = b.bucket_start"
        for table in ("message_rollups", "tool_rollups", "session_presence")
    ),
    f"DELETE FROM session_hour_presence r USING {_buckets('hour_tenants', 'hours')} "
    "WHERE r.tenant = b.tenant AND r.bucket_start = b.bucket_start",
]


def hour_start(at: datetime) -> datetime:
    """The UTC hour ``at`` is in."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def label_keys(conn: AsyncConnection) -> list[str]:
    """The label keys the rollups keep."""
    return list((await conn.execute(text("SELECT label_keys FROM rollup_settings"))).scalar_one())


async def _recompute_buckets(
    conn: AsyncConnection, keys: Sequence[str], tenants: list[str], buckets: list[datetime]
) -> None:
    # An hour's presence is recomputed whole when any of its quarters is (buckets are UTC datetimes).
    hours = sorted({(tenant, hour_start(bucket)) for tenant, bucket in zip(tenants, buckets, strict=True)})
    where = {
        "tenants": tenants,
        "buckets": buckets,
        "hour_tenants": [tenant for tenant, _ in hours],
        "hours": [hour for _, hour in hours],
    }
    parameters: dict[str, Any] = {**where, **label_key_parameters(keys)}
    for statement in _FORGET:
        await conn.execute(text(statement), where)
    for statement in _recompute(keys):
        await conn.execute(text(statement), parameters)


async def _locked(conn: AsyncConnection) -> bool:
    found = await conn.execute(text("SELECT pg_try_advisory_xact_lock(:lock)"), {"lock": FOLD_LOCK})
    return bool(found.scalar_one())


async def _unhurried(conn: AsyncConnection) -> None:
    """Lifts the API's statement timeout for this transaction: background work, which blocks no
    writer, may take longer than a request should (a bucket of 100,000 messages takes seconds)."""
    await conn.execute(text(f"SET LOCAL statement_timeout = '{FOLD_STATEMENT_TIMEOUT}'"))


async def fold(
    conn: AsyncConnection, most_buckets: int = BUCKETS_PER_FOLD, *, any_order: bool = False
) -> int | None:
    """Recomputes up to ``most_buckets`` queued buckets, oldest first (``any_order``: at random, so a
    bucket whose fold fails cannot hold up the others), in the caller's transaction.

    Returns how many it recomputed, or None when another replica holds the fold's lock. The log
    entries it removes are the ones its first statement sees; an entry a writer commits after
    that stays queued, so its bucket is recomputed again: never lost.
    """
    if not await _locked(conn):
        return None
    await _unhurried(conn)
    taken = (
        await conn.execute(
            text(
                "DELETE FROM rollup_invalidations i USING ("
                "  SELECT tenant, bucket_start FROM rollup_invalidations GROUP BY tenant, bucket_start"
                f"  ORDER BY {'random()' if any_order else 'min(logged_at)'} LIMIT :most"
                ") AS b WHERE i.tenant = b.tenant AND i.bucket_start = b.bucket_start "
                "RETURNING i.tenant, i.bucket_start"
            ),
            {"most": most_buckets},
        )
    ).all()
    pairs = sorted({(row.tenant, row.bucket_start) for row in taken})
    if pairs:
        keys = await label_keys(conn)
        await _recompute_buckets(conn, keys, [t for t, _ in pairs], [b for _, b in pairs])
    return len(pairs)


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the fold has still to do: for the operations' metrics and ``rollups status``."""

    entries: int
    buckets: int
    oldest: datetime | None
    """When the oldest queued write was logged: the fold's lag is now minus this."""


async def backlog(conn: AsyncConnection) -> Backlog:
    row = (
        await conn.execute(
            text(
                "SELECT count(*) AS entries, count(DISTINCT (tenant, bucket_start)) AS buckets, "
                "min(logged_at) AS oldest FROM rollup_invalidations"
            )
        )
    ).one()
    return Backlog(int(row.entries), int(row.buckets), row.oldest)


async def adopt(conn: AsyncConnection, keys: Sequence[str]) -> int | None:
    """Rebuilds the rollups with ``keys`` unless they are the keys kept already (checked under the
    lock, so replicas starting together rebuild once). Returns the buckets, or None."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": FOLD_LOCK})
    if await label_keys(conn) == list(keys):
        return None
    return await rebuild(conn, keys)


async def rebuild(conn: AsyncConnection, keys: Sequence[str] | None = None, tenant: str | None = None) -> int:
    """Recomputes every bucket (of ``tenant``, or of all) from the rows, in the caller's transaction.

    ``keys`` sets the label keys the rollups keep (all tenants only: the keys are the same for all).
    Readers see the old rollups until the transaction commits. Waits for a running fold; returns
    the number of buckets.
    """
    if keys is not None and tenant is not None:
        raise ValueError("label keys are changed for all tenants at once")
    await conn.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": FOLD_LOCK})
    await conn.execute(text("SET LOCAL statement_timeout = 0"))  # every bucket, in one transaction
    if keys is not None:
        await conn.execute(text("UPDATE rollup_settings SET label_keys = :keys"), {"keys": list(keys)})
    kept = await label_keys(conn)
    where = "" if tenant is None else "WHERE tenant = :tenant"
    for table in ("message_rollups", "tool_rollups", "session_presence", "session_hour_presence"):
        await conn.execute(text(f"DELETE FROM {table} {where}"), {"tenant": tenant})
    await conn.execute(text(f"DELETE FROM rollup_invalidations {where}"), {"tenant": tenant})
    found = (
        await conn.execute(
            text(
                "SELECT DISTINCT tenant, rollup_bucket(created_at) AS b FROM session_messages "
                f"WHERE isfinite(created_at) {where.replace('WHERE', 'AND')}"
            ),
            {"tenant": tenant},
        )
    ).all()
    tenants, buckets = [row.tenant for row in found], [row.b for row in found]
    if found:
        await _recompute_buckets(conn, kept, tenants, buckets)
    return len(found)
