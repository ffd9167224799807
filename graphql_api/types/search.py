"""Search results: each match with its rank and a snippet of its text."""

import base64
import binascii
import json
from typing import TYPE_CHECKING, Annotated

import strawberry

from db.search import Match, SearchPosition
from graphql_api.errors import InputError
from graphql_api.identity import check_tenant
from graphql_api.types.pagination import PageInfo
from graphql_api.validation import check_id

if TYPE_CHECKING:
    from graphql_api.types.message import Message

_PREFIX = "search:"


def encode_search_cursor(position: SearchPosition) -> str:
    return base64.urlsafe_b64encode((_PREFIX + json.dumps(list(position))).encode()).decode().rstrip("=")


def decode_search_cursor(field: str, cursor: str) -> SearchPosition:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith(_PREFIX):
            raise ValueError("not a search cursor")
        rank, session_id, tenant, agent_id, message_id = json.loads(text[len(_PREFIX) :])
        if not isinstance(rank, (int, float)) or isinstance(rank, bool) or not isinstance(message_id, int):
            raise ValueError("not a search cursor")
        return (
            float(rank),
            check_id(field, session_id),
            check_tenant(tenant),
            check_id(field, agent_id),
            message_id,
        )
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise InputError(field, "is not a cursor this API returned") from None


@strawberry.type
class SearchEdge:
    cursor: str
    node: Annotated["Message", strawberry.lazy("graphql_api.types.message")]
    rank: float = strawberry.field(description="How well the message matches (PostgreSQL's ts_rank_cd).")
    snippet: str = strawberry.field(
        description="The best fragments of the text, each match between ** marks."
    )


@strawberry.type(description="Messages matching a search, best first.")
class SearchConnection:
    edges: list[SearchEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, matches: list[Match], more: bool, after_given: bool) -> "SearchConnection":
        from graphql_api.types.message import Message

        edges = [
            SearchEdge(
                cursor=encode_search_cursor(match.position),
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
