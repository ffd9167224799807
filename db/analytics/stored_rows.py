"""How many sessions and messages each tenant stores, as PostgreSQL's statistics estimate them.

For the operations' metrics, read every few seconds: a ``count(*)`` per tenant would read every
row each time, so this reads the planner's statistics instead (``pg_class.reltuples`` times the
tenant's share among the column's most common values, ``pg_stats``), a few catalog rows whatever
the tables hold. The figures are as of the last ``ANALYZE`` (autovacuum runs it as tables grow by
a tenth), and only tenants among the most common values are named: up to
``default_statistics_target`` (100) of them.
"""

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import messages, sessions

# Every tenant, by design: the figures are the operator's, not a tenant's.
_ESTIMATES = text(
    """
    SELECT s.tablename, s.most_common_vals::text::text[] AS tenants, s.most_common_freqs AS shares,
           c.reltuples
    FROM pg_stats AS s
    JOIN pg_class AS c ON c.oid = to_regclass(quote_ident(s.schemaname) || '.' || quote_ident(s.tablename))
    WHERE s.schemaname = current_schema() AND s.tablename IN (:sessions, :messages)
      AND s.attname = 'tenant' AND NOT s.inherited
    """
)


@dataclass(frozen=True)
class StoredRows:
    sessions: dict[str, int]
    messages: dict[str, int]
    """Per tenant, estimated; empty before the table's first ``ANALYZE``."""


async def estimate_stored_rows(conn: AsyncConnection) -> StoredRows:
    found: dict[str, dict[str, int]] = {sessions.name: {}, messages.name: {}}
    rows = await conn.execute(_ESTIMATES, {"sessions": sessions.name, "messages": messages.name})
    for row in rows:
        if row.tenants is None or row.reltuples < 0:  # never analysed
            continue
        shares = zip(row.tenants, row.shares, strict=True)
        found[row.tablename] = {tenant: round(share * row.reltuples) for tenant, share in shares}
    return StoredRows(sessions=found[sessions.name], messages=found[messages.name])
