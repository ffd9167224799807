"""Full-text search of messages: PostgreSQL's websearch syntax over each message's text.

The search vector is a stored generated column of the text the agent sees (a redacted message is
found by its redaction only), indexed with GIN. A page is the matches after a position in one of
two orders, so paging is stable while nothing is written:

- best first (``search_messages``): rank, then the message's key. Every match is ranked and
  sorted, since no index returns rows in rank order.
- newest first (``search_newest_messages``): ``created_at``, then the message's key. Common words
  are found by reading the tenant's newest messages back in time, rare ones with the GIN index.

Rank and snippet are only computed for the rows of the page.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, DateTime, Select, and_, bindparam, func, literal_column, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable
from sqlalchemy.types import REAL, TypeEngine

from db.analytics.filters import ConversationFilter, messages_matching
from db.analytics.listings import MESSAGE_KEY
from db.byte_caps import rows_within
from db.conversations.reads import MESSAGE_DOCUMENTS, message_columns, message_record
from db.models import SEARCH_CONFIGURATION, messages
from db.records import MessageRecord
from db.tenancy import Scope

RankPosition = tuple[float, str, str, str, int]
"""(rank, session_id, tenant, agent_id, message_id) of the match a best-first page ends on."""
TimePosition = tuple[datetime, str, str, str, int]
"""(created_at, session_id, tenant, agent_id, message_id) of the match a newest-first page ends on."""
SearchPosition = RankPosition | TimePosition
NEWEST_ORDER = (messages.c.created_at, *MESSAGE_KEY)
"""Newest first is these, descending: the order of index ix_session_messages_tenant_created_at_key."""
WALK = 5000
"""How many of a tenant's newest messages a newest-first search reads in time order before it asks
whether the words are rare: a page of 20 is found there when one message in 250 matches."""
RARE_SHARE = 0.01
"""Up to this share of messages matching, words are rare: all their matches are fetched (at a
million messages, up to some 10,000). The planner's estimate for words missing from the search
column's statistics is at most half of it (0.5 %, DEFAULT_TS_MATCH_SEL), so those count as rare."""
MARK = "**"
"""Around each matched word in a snippet (Markdown's bold), not HTML: dashboards show text as text."""
_HEADLINE_OPTIONS = (
    # Quoted: PostgreSQL trims the spaces around an unquoted value.
    f'StartSel={MARK}, StopSel={MARK}, MaxFragments=2, MaxWords=18, MinWords=6, FragmentDelimiter=" … "'
)


@dataclass(frozen=True, slots=True)
class Match:
    record: MessageRecord
    rank: float
    snippet: str
    position: SearchPosition


def _tsquery(query: str) -> Any:
    return func.websearch_to_tsquery(literal_column(f"'{SEARCH_CONFIGURATION}'"), bindparam("query", query))


def _before(value: Any, value_type: TypeEngine[Any], after: SearchPosition) -> ColumnElement[bool]:
    """Rows after ``after`` in the descending order of (``value``, the message key)."""
    position = tuple_(
        bindparam("after_value", after[0], type_=value_type),
        *(
            bindparam(f"after_{i}", part, type_=column.type)
            for i, (part, column) in enumerate(zip(after[1:], MESSAGE_KEY, strict=True))
        ),
    )
    return tuple_(value, *MESSAGE_KEY) < position


def _snippet(text: Any, tsquery: Any) -> Any:
    return func.ts_headline(literal_column(f"'{SEARCH_CONFIGURATION}'"), text, tsquery, _HEADLINE_OPTIONS)


def _matches(rows: Sequence[Any], first: int, value: str) -> tuple[list[Match], bool]:
    matches = [
        Match(
            record=message_record(row),
            rank=float(row.rank),
            snippet=row.snippet,
            position=(getattr(row, value), row.session_id, row.tenant, row.agent_id, row.message_id),
        )
        for row in rows[:first]
    ]
    return matches, len(rows) > first


async def search_messages(
    conn: AsyncConnection,
    scope: Scope,
    query: str,
    f: ConversationFilter,
    first: int,
    after: RankPosition | None,
    *,
    most_bytes: int | None = None,
    documents: bool = True,
) -> tuple[list[Match], bool]:
    """The ``first`` best matches after ``after``, and whether more follow."""
    tsquery = _tsquery(query)
    rank = func.ts_rank_cd(messages.c.search, tsquery)
    inner = select(*message_columns(documents), messages.c.plain_text, rank.label("rank")).where(
        scope.visible(messages), messages.c.search.op("@@")(tsquery), *messages_matching(f)
    )
    if after is not None:
        inner = inner.where(_before(rank, REAL(), after))
    best = (
        inner.order_by(rank.desc(), *(column.desc() for column in MESSAGE_KEY))
        .limit(first + 1)
        .subquery("best")
    )
    stmt = select(best, _snippet(best.c.plain_text, tsquery).label("snippet")).order_by(
        best.c.rank.desc(), *(best.c[column.name].desc() for column in MESSAGE_KEY)
    )
    return _matches(await rows_within(conn, stmt, MESSAGE_DOCUMENTS, most_bytes), first, "rank")


async def search_newest_messages(
    conn: AsyncConnection,
    scope: Scope,
    query: str,
    f: ConversationFilter,
    first: int,
    after: TimePosition | None,
    *,
    most_bytes: int | None = None,
    documents: bool = True,
) -> tuple[list[Match], bool]:
    """The ``first`` newest matches after ``after``, and whether more follow.

    Within a tenant, the newest ``WALK`` messages the filter keeps are read back in time from the
    tenant's time index, stopping once they hold a page of matches: a common word fills a page
    within a few dozen. When they hold fewer, PostgreSQL's statistics say whether the word is
    common all the same (then the reading goes on back in time) or rare (then all its matches come
    from the search index, newest first). The planner left to itself walks back in time for rare
    words too, through the whole tenant: its estimate for a word missing from the statistics is
    0.5 % of the messages, which makes the walk look short.
    """
    tsquery = _tsquery(query)
    kept = [scope.visible(messages), *messages_matching(f)]
    if after is not None:
        kept.append(_before(messages.c.created_at, DateTime(timezone=True), after))
    matching = select(*NEWEST_ORDER).where(*kept, messages.c.search.op("@@")(tsquery))
    if not scope.all_tenants:  # only within a tenant does an index hold the messages in time order
        newest = (
            select(*NEWEST_ORDER, messages.c.search)
            .where(*kept)
            .order_by(*(column.desc() for column in NEWEST_ORDER))
            # A constant, so that a generic plan knows it too.
            .limit(bindparam("walk", WALK, literal_execute=True))
            .subquery("newest")
        )
        walked = select(*(newest.c[column.name] for column in NEWEST_ORDER)).where(
            newest.c.search.op("@@")(tsquery)
        )
        rows = await _newest_page(conn, walked, tsquery, first, most_bytes, documents)
        if len(rows) > first:
            return _matches(rows, first, "created_at")
        if await _share_matching(conn, tsquery) > RARE_SHARE:
            return _matches(
                await _newest_page(conn, matching, tsquery, first, most_bytes, documents), first, "created_at"
            )
    # Materialized: fetched whole, so the planner cannot turn it into a walk back in time.
    every_match = select(matching.cte("matching").prefix_with("MATERIALIZED"))
    return _matches(
        await _newest_page(conn, every_match, tsquery, first, most_bytes, documents), first, "created_at"
    )


async def _share_matching(conn: AsyncConnection, tsquery: Any) -> float:
    """The share of all messages that the planner expects to match ``tsquery``, from the search
    column's statistics."""
    matching = await _expected_rows(
        conn, select(messages.c.message_id).where(messages.c.search.op("@@")(tsquery))
    )
    return matching / max(await _expected_rows(conn, select(messages.c.message_id)), 1.0)


class _Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON)`` of a statement, its parameters bound as when it runs."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


async def _expected_rows(conn: AsyncConnection, statement: Select[Any]) -> float:
    plan = (await conn.execute(_Explain(statement))).scalar_one()
    return float((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"])


async def _newest_page(
    conn: AsyncConnection,
    candidates: Select[Any],
    tsquery: Any,
    first: int,
    most_bytes: int | None,
    documents: bool,
) -> Sequence[Any]:
    """The ``first + 1`` newest of ``candidates`` (the columns of NEWEST_ORDER), with their rank and
    snippet."""
    page = (
        candidates.order_by(*(column.desc() for column in candidates.selected_columns))
        .limit(first + 1)
        .subquery("page")
    )
    stmt = (
        select(
            *message_columns(documents),
            func.ts_rank_cd(messages.c.search, tsquery).label("rank"),
            _snippet(messages.c.plain_text, tsquery).label("snippet"),
        )
        .select_from(
            page.join(
                messages, and_(*(messages.c[column.name] == page.c[column.name] for column in MESSAGE_KEY))
            )
        )
        .order_by(*(page.c[column.name].desc() for column in NEWEST_ORDER))
    )
    return await rows_within(conn, stmt, MESSAGE_DOCUMENTS, most_bytes)
