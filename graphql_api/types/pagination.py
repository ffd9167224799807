"""Cursor connections of sessions, agents and messages, and their opaque cursors.

A listing's cursor names a position in one ordering (the order's value and the row's key), not a
row: given to another tenant it only says where that tenant's own listing resumes. A cursor of one
ordering is refused by another.
"""

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import strawberry

from db.analytics.listings import Order, Page, PageRequest, Position
from db.records import MessageRecord
from graphql_api.auth.identity import check_tenant
from graphql_api.errors import InputError
from graphql_api.guards.arguments import MAX_MESSAGE_ID, check_id, check_page_size

R = TypeVar("R")
LIST_PAGE = 20
"""Rows per page of the root listings (sessions, agents, messages, searchMessages) without first/last."""
CONVERSATION_PAGE = 50
"""Messages per page of Agent.messagesConnection without first/last: a screenful of conversation."""
LARGEST_DEFAULT_PAGE = max(LIST_PAGE, CONVERSATION_PAGE)

_MESSAGE_PREFIX = "message:"
NOT_OURS = "is not a cursor this API returned"
OTHER_ORDER = "is a cursor of another order; page with the orderBy it came from"


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(field: str, cursor: str, prefix: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InputError(field, NOT_OURS) from None
    if not text.startswith(prefix):
        raise InputError(field, "is not a cursor of this connection")
    return text[len(prefix) :]


def encode_message_cursor(message_id: int) -> str:
    """A position in one agent's conversation: its message id."""
    return _encode(f"{_MESSAGE_PREFIX}{message_id}")


def decode_message_cursor(field: str, cursor: str) -> int:
    raw = _decode(field, cursor, _MESSAGE_PREFIX)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= MAX_MESSAGE_ID):
        raise InputError(field, NOT_OURS)
    return int(raw)


def cursor_time(value: object) -> datetime:
    """A time this API wrote into a cursor. Wider than what DateTime accepts: rows written before the
    range check can hold PostgreSQL's infinities, which the driver reads as Python's extremes, naive."""
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a time")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)  # the instant must exist in UTC for the database to compare it
    except OverflowError:
        raise ValueError("not a time") from None


KEY_PARTS = {
    "session": ("id", "tenant"),
    "agent": ("id", "tenant", "id"),
    "message": ("id", "tenant", "id", "int"),
}


def encode_position(kind: str, order: Order, position: Position) -> str:
    value, *key = position
    shown = value.isoformat() if isinstance(value, datetime) else value
    return _encode(f"{kind}:" + json.dumps([order.field, order.descending, shown, *key]))


def decode_position(field: str, cursor: str, kind: str, order: Order) -> Position:
    raw = _decode(field, cursor, f"{kind}:")
    try:
        order_field, descending, value, *key = json.loads(raw)
    except (ValueError, TypeError):
        raise InputError(field, NOT_OURS) from None
    if (order_field, descending) != (order.field, order.descending):
        raise InputError(field, OTHER_ORDER)
    try:
        parsed_value = cursor_time(value) if order.field.endswith("_AT") else _whole(value)
        parts = KEY_PARTS[kind]
        if len(key) != len(parts):
            raise ValueError("wrong key")
        parsed_key = [
            check_id(field, part)
            if what == "id"
            else check_tenant(part)
            if what == "tenant"
            else _whole(part)
            for what, part in zip(parts, key, strict=True)
        ]
    except (ValueError, TypeError):
        raise InputError(field, NOT_OURS) from None
    return (parsed_value, *parsed_key)


def _whole(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**62) < value < 2**62:
        raise ValueError("not a whole number")
    return value


def page_request(
    field_prefix: str,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    default: int,
    maximum: int,
    decode: Callable[[str, str], Any],
) -> PageRequest:
    """``first``/``after`` forward or ``last``/``before`` backward, checked; one direction at a time."""
    if last is not None or before is not None:
        if first is not None or after is not None:
            raise InputError("last", "page with first/after or with last/before, not both")
        size = check_page_size("last", default if last is None else last, maximum)
        return PageRequest(size, None if before is None else decode("before", before), backwards=True)
    size = check_page_size("first", default if first is None else first, maximum)
    return PageRequest(size, None if after is None else decode("after", after))


@strawberry.type(description="Where a page starts and ends, and whether more lie on either side.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool = strawberry.field(
        description="Going forward, whether this page started after a cursor (rows may lie before it)."
    )
    start_cursor: str | None
    end_cursor: str | None


def page_info(cursors: Sequence[str], page: Page[Any], request: PageRequest) -> PageInfo:
    # Relay's rules: the direction read reports exactly whether more follow; the other direction
    # reports whether the page started at a cursor, which is as much as a keyset knows cheaply.
    return PageInfo(
        has_next_page=page.more if not request.backwards else request.position is not None,
        has_previous_page=page.more if request.backwards else request.position is not None,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )


CountOf = Callable[[], Awaitable[int]]
Node = TypeVar("Node")


@strawberry.type
class Edge(Generic[Node]):
    cursor: str
    node: Node


@strawberry.type(description="A page of a list (sessions, agents or messages), in the order asked for.")
class Connection(Generic[Node]):
    edges: list[Edge[Node]]
    page_info: PageInfo
    count_of: strawberry.Private[CountOf]

    @strawberry.field(description="The page's nodes, without cursors.")
    def nodes(self) -> list[Node]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="How many nodes match the filter in all (counted only when asked for).")
    async def total_count(self) -> int:
        return await self.count_of()

    @classmethod
    def of(
        cls, edges: list[Edge[Node]], page: Page[Any], request: PageRequest, count_of: CountOf
    ) -> "Connection[Node]":
        return cls(
            edges=edges, page_info=page_info([e.cursor for e in edges], page, request), count_of=count_of
        )


def listed(
    kind: str, page: Page[R], request: PageRequest, order: Order, node: Callable[[R], Node], count_of: CountOf
) -> Connection[Node]:
    """A listing's page (sessions, agents, messages across sessions) with its keyset cursors."""
    edges = [
        Edge(cursor=encode_position(kind, order, position), node=node(record))
        for record, position in page.rows
    ]
    return Connection.of(edges, page, request, count_of)


def conversation_page(
    records: list[MessageRecord],
    request: PageRequest,
    node: Callable[[MessageRecord], Node],
    count_of: CountOf,
) -> Connection[Node]:
    """One agent's messages in message id order; ``records`` holds one more when more follow."""
    shown = records[: request.size]
    if request.backwards:
        shown.reverse()  # fetched nearest first, read in conversation order
    page = Page(rows=[(record, (record.message_id,)) for record in shown], more=len(records) > request.size)
    edges = [
        Edge(cursor=encode_message_cursor(record.message_id), node=node(record)) for record, _ in page.rows
    ]
    return Connection.of(edges, page, request, count_of)
