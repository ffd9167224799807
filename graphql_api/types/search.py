"""Search results: each match with its rank and a snippet of its text, best or newest first.

A search cursor names a position in one order (the rank or the creation time, then the message's
key); a cursor of one order is refused by the other.
"""

import base64
import binascii
import json
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry

from db.analytics.search import Match, RankPosition, SearchPosition, TimePosition
from graphql_api.auth.identity import check_tenant
from graphql_api.errors import InputError
from graphql_api.guards.arguments import MAX_MESSAGE_ID, check_id
from graphql_api.types.pagination import NOT_OURS, OTHER_ORDER, PageInfo, cursor_time

if TYPE_CHECKING:
    from graphql_api.types.message import Message


@strawberry.enum(
    description="The order of searchMessages' matches; ties go by session, agent and message id, descending."
)
class SearchOrder(Enum):
    RELEVANCE = strawberry.enum_value(
        "RELEVANCE",
        description="Best first, by rank. The newest matches are ranked (10,000 by default, a server "
        "setting): every match when fewer match, as within a narrow time range.",
    )
    NEWEST = strawberry.enum_value(
        "NEWEST", description="Newest first, by createdAt: read in time order, fast for common words too."
    )


MessageKey = tuple[str, str, str, int]
"""(session_id, tenant, agent_id, message_id)"""
_PREFIXES = {SearchOrder.RELEVANCE: "search:", SearchOrder.NEWEST: "search-newest:"}


def encode_search_cursor(order: SearchOrder, position: SearchPosition) -> str:
    value, *key = position
    shown = value.isoformat() if isinstance(value, datetime) else value
    text = _PREFIXES[order] + json.dumps([shown, *key])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(field: str, cursor: str, order: SearchOrder) -> tuple[object, MessageKey]:
    """The order's value and the message's key in a cursor of ``order``."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InputError(field, NOT_OURS) from None
    prefix = _PREFIXES[order]
    if not text.startswith(prefix):
        if any(text.startswith(other) for other in _PREFIXES.values()):
            raise InputError(field, OTHER_ORDER)
        raise InputError(field, NOT_OURS)
    try:
        value, session_id, tenant, agent_id, message_id = json.loads(text[len(prefix) :])
        if (
            not isinstance(message_id, int)
            or isinstance(message_id, bool)
            or not 0 <= message_id <= MAX_MESSAGE_ID
        ):
            raise ValueError("not a message id")
        return value, (
            check_id(field, session_id),
            check_tenant(tenant),
            check_id(field, agent_id),
            message_id,
        )
    except (ValueError, TypeError):
        raise InputError(field, NOT_OURS) from None


def decode_rank_cursor(field: str, cursor: str) -> RankPosition:
    rank, key = _decode(field, cursor, SearchOrder.RELEVANCE)
    if not isinstance(rank, (int, float)) or isinstance(rank, bool):
        raise InputError(field, NOT_OURS)
    return (float(rank), *key)


def decode_newest_cursor(field: str, cursor: str) -> TimePosition:
    created_at, key = _decode(field, cursor, SearchOrder.NEWEST)
    try:
        return (cursor_time(created_at), *key)
    except ValueError:
        raise InputError(field, NOT_OURS) from None


@strawberry.type
class SearchEdge:
    cursor: str
    node: Annotated["Message", strawberry.lazy("graphql_api.types.message")]
    rank: float = strawberry.field(description="How well the message matches (PostgreSQL's ts_rank_cd).")
    snippet: str = strawberry.field(
        description="The best fragments of the text, each match between ** marks."
    )


@strawberry.type(description="Messages matching a search, best or newest first.")
class SearchConnection:
    edges: list[SearchEdge]
    page_info: PageInfo

    @classmethod
    def of(
        cls, matches: list[Match], more: bool, after_given: bool, order: SearchOrder
    ) -> "SearchConnection":
        from graphql_api.types.message import Message

        edges = [
            SearchEdge(
                cursor=encode_search_cursor(order, match.position),
                node=Message.from_record(match.record),
                rank=match.rank,
                snippet=match.snippet,
            )
            for match in matches
        ]
        info = PageInfo(
            has_next_page=more,
            has_previous_page=after_given,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        )
        return cls(edges=edges, page_info=info)
