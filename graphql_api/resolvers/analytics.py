"""Root fields for people and dashboards reading conversations: listings, search and statistics.

Every one reads the caller's tenant (all tenants for a tenantless admin's listings), takes the same
``ConversationFilter``, and pages with keyset cursors.
"""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from db.analytics import listings, search, stats
from db.analytics.listings import Page, PageRequest
from graphql_api.context import Info
from graphql_api.errors import ErrorCode, InputError, LimitError
from graphql_api.guards.arguments import check_page_size
from graphql_api.types.agent import Agent
from graphql_api.types.filters import NEWEST_FIRST, ConversationFilter, ListOrder, MessageOrder, filter_of
from graphql_api.types.message import Message, documents_wanted
from graphql_api.types.pagination import LIST_PAGE, Connection, decode_position, listed, page_request
from graphql_api.types.scalars import Time
from graphql_api.types.search import SearchConnection, SearchOrder, decode_newest_cursor, decode_rank_cursor
from graphql_api.types.session import Session
from graphql_api.types.stats import DEFAULT_STATS_RANGE, Bucket, ConversationStats, GroupBy, ToolStat

R = TypeVar("R")
N = TypeVar("N")
MOST_TOOLS = 1000
QUERY_LENGTH = 1000


def _request(
    info: Info,
    kind: str,
    order: listings.Order,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageRequest:
    return page_request(
        kind,
        first=first,
        after=after,
        last=last,
        before=before,
        default=LIST_PAGE,
        maximum=info.context.limits.max_page_size,
        decode=lambda field, cursor: decode_position(field, cursor, kind, order),
    )


async def _listing(
    info: Info,
    kind: str,
    order: listings.Order,
    wanted: PageRequest,
    fetch: Callable[[AsyncConnection, int], Awaitable[Page[R]]],
    count: Callable[[AsyncConnection], Awaitable[int]],
    node: Callable[[R], N],
    prime: Callable[[list[R]], None],
) -> Connection[N]:
    """A listing's page (read within the answer's bytes), its rows primed for the loaders, and its
    count (read only when asked for)."""
    page = await info.context.read(fetch)
    prime([record for record, _ in page.rows])
    db = info.context.db
    return listed(kind, page, wanted, order, node, lambda: db.run(count, idempotent=True))


def _unknown_zone(name: str) -> InputError:
    return InputError("timeZone", f"is not a time zone name like Europe/Lisbon or UTC: {name!r}")


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _unknown_zone(name) from None
    return name


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(description="Sessions, newest first unless ordered otherwise, filtered.")
    async def sessions(
        self,
        info: Info,
        filter: ConversationFilter | None = None,
        order_by: ListOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Session]:
        matching, order = filter_of(filter), order_by.to_db() if order_by else NEWEST_FIRST
        wanted, scope = _request(info, "session", order, first, after, last, before), info.context.scope
        return await _listing(
            info,
            "session",
            order,
            wanted,
            lambda conn, _: listings.list_sessions(conn, scope, matching, order, wanted),
            lambda conn: listings.count_sessions(conn, scope, matching),
            Session.from_record,
            info.context.loaders.prime_sessions,
        )

    @strawberry.field(description="Agents across sessions, newest first unless ordered otherwise, filtered.")
    async def agents(
        self,
        info: Info,
        filter: ConversationFilter | None = None,
        order_by: ListOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Agent]:
        matching, order = filter_of(filter), order_by.to_db() if order_by else NEWEST_FIRST
        wanted, scope = _request(info, "agent", order, first, after, last, before), info.context.scope
        return await _listing(
            info,
            "agent",
            order,
            wanted,
            lambda conn, most: listings.list_agents(conn, scope, matching, order, wanted, most_bytes=most),
            lambda conn: listings.count_agents(conn, scope, matching),
            Agent.from_record,
            info.context.loaders.prime_agents,
        )

    @strawberry.field(
        description="Messages across sessions and agents, newest first unless ordered otherwise, filtered."
    )
    async def messages(
        self,
        info: Info,
        filter: ConversationFilter | None = None,
        order_by: MessageOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Message]:
        matching, order = filter_of(filter), order_by.to_db() if order_by else NEWEST_FIRST
        wanted, scope = _request(info, "message", order, first, after, last, before), info.context.scope
        documents = documents_wanted(info)
        return await _listing(
            info,
            "message",
            order,
            wanted,
            lambda conn, most: listings.list_messages(
                conn, scope, matching, order, wanted, most_bytes=most, documents=documents
            ),
            lambda conn: listings.count_messages(conn, scope, matching),
            Message.from_record,
            info.context.loaders.prime_messages,
        )

    @strawberry.field(
        description="Messages whose text matches `query`, best first unless ordered NEWEST. The query takes "
        'web search syntax: words, "a phrase", or, -excluded. Redacted messages are found by their '
        "redaction only."
    )
    async def search_messages(
        self,
        info: Info,
        query: str,
        filter: ConversationFilter | None = None,
        first: int = LIST_PAGE,
        after: str | None = None,
        order_by: SearchOrder = SearchOrder.RELEVANCE,
    ) -> SearchConnection:
        check_page_size("first", first, info.context.limits.max_page_size)
        if len(query) > QUERY_LENGTH:
            raise InputError("query", f"must be at most {QUERY_LENGTH} characters, got {len(query)}")
        words = query.replace("\x00", " ")
        matching, scope, documents = filter_of(filter), info.context.scope, documents_wanted(info)
        if order_by is SearchOrder.NEWEST:
            since = None if after is None else decode_newest_cursor("after", after)
            found, more = await info.context.read(
                lambda conn, most: search.search_newest_messages(
                    conn, scope, words, matching, first, since, most_bytes=most, documents=documents
                )
            )
        else:
            best = None if after is None else decode_rank_cursor("after", after)
            candidates = info.context.limits.search_candidates
            found, more = await info.context.read(
                lambda conn, most: search.search_messages(
                    conn,
                    scope,
                    words,
                    matching,
                    first,
                    best,
                    candidates=candidates,
                    most_bytes=most,
                    documents=documents,
                )
            )
        info.context.loaders.prime_messages([match.record for match in found])
        return SearchConnection.of(found, more, after is not None, order_by)

    @strawberry.field(
        description="Messages, sessions, tokens, latency and tool calls per bucket of time, per key. "
        "`from` and `to` default to the last day; buckets are cut in `timeZone`."
    )
    async def conversation_stats(
        self,
        info: Info,
        bucket: Bucket = Bucket.HOUR,
        from_: Annotated[Time | None, strawberry.argument(name="from")] = None,
        to: Time | None = None,
        group_by: GroupBy = GroupBy.NONE,
        label: Annotated[
            str | None, strawberry.argument(description="The label to group by (LABEL).")
        ] = None,
        time_zone: str = "UTC",
        filter: ConversationFilter | None = None,
    ) -> ConversationStats:
        end = to or datetime.now(UTC)
        start = from_ or end - DEFAULT_STATS_RANGE
        if start >= end:
            raise InputError("from", "must be before to" if to else "must be in the past when to is left out")
        most_buckets = info.context.limits.max_stats_buckets
        if (end - start) / stats.STEPS[bucket.value] > most_buckets:
            raise InputError(
                "bucket",
                f"the range holds more than {most_buckets} {bucket.value.lower()} buckets; use longer ones",
            )
        if group_by is GroupBy.LABEL and not label:
            raise InputError("label", 'name the label to group by, e.g. label: "user"')
        request = stats.StatsRequest(bucket.value, start, end, group_by.value, label, _zone(time_zone))
        matching, scope, limits = filter_of(filter), info.context.scope, info.context.limits
        # The rows this request has left: other fields of the document may have spent some.
        budget = info.context.rows
        most_rows, most_keys = max(0, budget.left), limits.max_stats_keys
        try:
            found = await info.context.db.run_in_snapshot(
                lambda conn: stats.conversation_stats(
                    conn, scope, matching, request, most_rows=most_rows, most_keys=most_keys
                )
            )
        except stats.UnknownTimeZone:
            raise _unknown_zone(time_zone) from None
        except stats.TooManyKeys as error:
            raise LimitError(
                ErrorCode.QUERY_TOO_COSTLY,
                f"the grouping has {error.keys} keys, over the {most_keys} one chart may have "
                "(SESSION_GRAPHQL_MAX_STATS_KEYS): narrow the filter or group by something coarser",
            ) from None
        except stats.TooManyRows as error:
            raise LimitError(
                ErrorCode.QUERY_TOO_COSTLY,
                f"{error.rows} rows (buckets times keys) are over the {budget.total} a request may have: "
                "narrow the range or the grouping",
            ) from None
        budget.spend([found.rows, found.key_totals, found.totals])
        return ConversationStats.from_stats(found)

    @strawberry.field(
        description="Each tool's calls and errors, most errors first, for calls the filter keeps."
    )
    async def tool_stats(
        self, info: Info, filter: ConversationFilter | None = None, first: int = 100
    ) -> list[ToolStat]:
        check_page_size("first", first, MOST_TOOLS)
        matching, scope = filter_of(filter), info.context.scope
        found = await info.context.db.run_in_snapshot(
            lambda conn: stats.tool_stats(conn, scope, matching, first)
        )
        return [ToolStat(name=tool.name, calls=tool.calls, errors=tool.errors) for tool in found]
