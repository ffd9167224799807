"""Full-text search of messages: PostgreSQL's websearch syntax over each message's text.

The search vector is a stored generated column of the text the agent sees (a redacted message is
found by its redaction only), indexed with GIN. A page is the matches after a position in one of
two orders, so paging is stable while nothing is written:

- best first (``search_messages``): rank, then the message's key, among the newest matches. No
  index returns rows in rank order, so ranking every match would cost as much as there are
  matches; the newest ``candidates`` matches the scope and filter keep are ranked instead, which
  is every match when fewer match (a rare word, or a time range narrowing them).
- newest first (``search_newest_messages``): ``created_at``, then the message's key. Common words
  are found by reading the tenant's newest messages back in time, rare ones with the GIN index.

Snippets are only computed for the rows of the page; ranks too, newest first.

Best first, the statements that run hold the query as an InitPlan, ``(SELECT
websearch_to_tsquery(...))``, parsed once per statement: written inline, a prepared statement's
generic plan (PostgreSQL's choice after five runs) parses it again for every row it reads, which
made a walk back in time five times slower. Only an estimate needs it inline, to see the words.
"""

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    DateTime,
    Select,
    and_,
    bindparam,
    func,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import BindParameter, ClauseElement, Executable
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
SEARCH_INDEX = next(str(index.name) for index in messages.indexes if index.columns.keys() == ["search"])
"""The GIN index of the search vectors."""
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
    """The query inline, as the planner must see it to estimate how many messages match."""
    return func.websearch_to_tsquery(literal_column(f"'{SEARCH_CONFIGURATION}'"), bindparam("query", query))


def _tsquery_once(query: str) -> Any:
    """The query as an InitPlan, parsed once per statement whatever its plan."""
    return select(_tsquery(query)).scalar_subquery()


def _before(order: Sequence[Any], value_type: TypeEngine[Any], after: SearchPosition) -> ColumnElement[bool]:
    """Rows after ``after`` in the descending order of ``order``: a value, then the message key."""
    position = tuple_(
        bindparam("after_value", after[0], type_=value_type),
        *(
            bindparam(f"after_{i}", part, type_=column.type)
            for i, (part, column) in enumerate(zip(after[1:], MESSAGE_KEY, strict=True))
        ),
    )
    return tuple_(*order) < position


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
    candidates: int,
    most_bytes: int | None = None,
    documents: bool = True,
) -> tuple[list[Match], bool]:
    """The ``first`` best matches after ``after`` among the newest ``candidates`` (0: among every
    match), and whether more follow.

    The candidates are the same on every page while nothing is written, so pages neither repeat
    nor skip a match.
    """
    kept = [scope.visible(messages), *messages_matching(f)]
    tsquery = _tsquery_once(query)
    if candidates:
        pool = await _newest_matches(conn, kept, query, candidates)
    else:
        pool = select(*MESSAGE_KEY, _rank(messages.c.search, tsquery)).where(
            *kept, messages.c.search.op("@@")(tsquery)
        )
    # Materialized, so that a page after a cursor ranks each candidate once, not in its condition
    # and again in its columns.
    ranked = pool.cte("ranked").prefix_with("MATERIALIZED")
    order = [ranked.c.rank, *(ranked.c[column.name] for column in MESSAGE_KEY)]
    best = select(ranked)
    if after is not None:
        best = best.where(_before(order, REAL(), after))
    page = best.order_by(*(column.desc() for column in order)).limit(first + 1).subquery("page")
    stmt = (
        select(
            *message_columns(documents),
            page.c.rank,
            _snippet(messages.c.plain_text, tsquery).label("snippet"),
        )
        .select_from(
            page.join(
                messages, and_(*(messages.c[column.name] == page.c[column.name] for column in MESSAGE_KEY))
            )
        )
        .order_by(page.c.rank.desc(), *(page.c[column.name].desc() for column in MESSAGE_KEY))
    )
    return _matches(await rows_within(conn, stmt, MESSAGE_DOCUMENTS, most_bytes), first, "rank")


async def _newest_matches(
    conn: AsyncConnection, kept: list[ColumnElement[bool]], query: str, most: int
) -> Select[Any]:
    """The keys and ranks of the newest ``most`` messages that ``kept`` keeps and that match
    ``query``.

    They are read one of two ways: the tenant's messages back in time from the time index until
    ``most`` match (cheap for common words, reading ``most`` divided by their share), or every match
    from the search index, then the newest of them (cheap for rare words). PostgreSQL's planner
    chooses, shown the words (an EXPLAIN). The statement then run allows only the way it chose: a
    prepared statement's generic plan, made without the words, would read every word one way.
    """
    newest = [column.desc() for column in NEWEST_ORDER]
    # A constant, so that a generic plan knows it too.
    limit: BindParameter[int] = bindparam("candidates", most, literal_execute=True)
    plain = select(*NEWEST_ORDER).where(*kept, messages.c.search.op("@@")(_tsquery(query)))
    if await _reads_search_index(conn, plain.order_by(*newest).limit(limit)):
        # Materialized: fetched whole, so the planner cannot turn it into a walk back in time. Each
        # match is ranked as it is read, so that its search vector is not kept for the sort.
        every = (
            select(*NEWEST_ORDER, _rank(messages.c.search, _tsquery_once(query)))
            .where(*kept, messages.c.search.op("@@")(_tsquery_once(query)))
            .cte("matching")
            .prefix_with("MATERIALIZED")
        )
        return (
            select(*(every.c[column.name] for column in MESSAGE_KEY), every.c.rank)
            .order_by(*(every.c[column.name].desc() for column in NEWEST_ORDER))
            .limit(limit)
        )
    # ts_match_vq is @@ written as a function, which no index serves: the time index is read.
    matches = func.ts_match_vq(messages.c.search, _tsquery_once(query), type_=Boolean)
    walk = (
        select(*MESSAGE_KEY, messages.c.search)
        .where(*kept, matches)
        .order_by(*newest)
        .limit(limit)
        .subquery("newest")
    )
    return select(
        *(walk.c[column.name] for column in MESSAGE_KEY), _rank(walk.c.search, _tsquery_once(query))
    )


def _rank(search: Any, tsquery: Any) -> Any:
    return func.ts_rank_cd(search, tsquery).label("rank")


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
        kept.append(_before(NEWEST_ORDER, DateTime(timezone=True), after))
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


async def _plan(conn: AsyncConnection, statement: Select[Any]) -> dict[str, Any]:
    """The plan PostgreSQL would run ``statement`` with, made for its parameters' values."""
    found = (await conn.execute(_Explain(statement))).scalar_one()
    plan: dict[str, Any] = (json.loads(found) if isinstance(found, str) else found)[0]["Plan"]
    return plan


async def _expected_rows(conn: AsyncConnection, statement: Select[Any]) -> float:
    return float((await _plan(conn, statement))["Plan Rows"])


async def _reads_search_index(conn: AsyncConnection, statement: Select[Any]) -> bool:
    def indexes(node: dict[str, Any]) -> Iterator[str]:
        if "Index Name" in node:
            yield node["Index Name"]
        for child in node.get("Plans", ()):
            yield from indexes(child)

    return SEARCH_INDEX in indexes(await _plan(conn, statement))


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
