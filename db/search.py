"""Full-text search of messages: PostgreSQL's websearch syntax over each message's text, ranked.

The search vector is a stored generated column of the text the agent sees (a redacted message is
found by its redaction only), indexed with GIN. A page is the best ranked matches after a position
(rank, then the message's key), so paging is stable while nothing is written; the snippet is only
made for the rows of the page.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, literal_column, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import REAL

from db.filters import ConversationFilter, messages_matching
from db.listings import MESSAGE_KEY
from db.models import SEARCH_CONFIGURATION, messages
from db.queries import MESSAGE_COLUMNS, message_record
from db.records import MessageRecord
from db.tenancy import Scope

SearchPosition = tuple[float, str, str, str, int]
"""(rank, session_id, tenant, agent_id, message_id) of the match a page ends on."""
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


async def search_messages(
    conn: AsyncConnection,
    scope: Scope,
    query: str,
    f: ConversationFilter,
    first: int,
    after: SearchPosition | None,
) -> tuple[list[Match], bool]:
    """The ``first`` best matches after ``after``, and whether more follow."""
    tsquery = func.websearch_to_tsquery(
        literal_column(f"'{SEARCH_CONFIGURATION}'"), bindparam("query", query)
    )
    rank = func.ts_rank_cd(messages.c.search, tsquery).label("rank")
    inner = select(*MESSAGE_COLUMNS, messages.c.plain_text, rank).where(
        scope.visible(messages), messages.c.search.op("@@")(tsquery), *messages_matching(f)
    )
    if after is not None:
        position = tuple_(
            bindparam("after_rank", after[0], type_=REAL),
            *(
                bindparam(f"after_{i}", value, type_=column.type)
                for i, (value, column) in enumerate(zip(after[1:], MESSAGE_KEY, strict=True))
            ),
        )
        inner = inner.where(tuple_(func.ts_rank_cd(messages.c.search, tsquery), *MESSAGE_KEY) < position)
    ordered = (
        inner.order_by(rank.desc(), *(column.desc() for column in MESSAGE_KEY))
        .limit(first + 1)
        .subquery("best")
    )
    # The snippet, costly, only for the rows of the page.
    snippet = func.ts_headline(
        literal_column(f"'{SEARCH_CONFIGURATION}'"), ordered.c.plain_text, tsquery, _HEADLINE_OPTIONS
    ).label("snippet")
    stmt = select(ordered, snippet).order_by(
        ordered.c.rank.desc(), *(ordered.c[column.name].desc() for column in MESSAGE_KEY)
    )
    rows: Sequence[Any] = (await conn.execute(stmt)).all()
    matches = [
        Match(
            record=message_record(row),
            rank=float(row.rank),
            snippet=row.snippet,
            position=(float(row.rank), row.session_id, row.tenant, row.agent_id, row.message_id),
        )
        for row in rows[:first]
    ]
    return matches, len(rows) > first
