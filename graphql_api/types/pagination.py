"""Cursor connections and their opaque cursors."""

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from db.queries import SessionPosition
from db.records import MessageRecord, SessionRecord
from graphql_api.errors import InputError
from graphql_api.identity import check_tenant
from graphql_api.validation import MAX_MESSAGE_ID, check_id

if TYPE_CHECKING:
    from graphql_api.types.message import Message
    from graphql_api.types.session import Session

_MESSAGE_PREFIX = "message:"
_SESSION_PREFIX = "session:"


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(field: str, cursor: str, prefix: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InputError(field, "is not a cursor this API returned") from None
    if not text.startswith(prefix):
        raise InputError(field, "is not a cursor of this connection")
    return text[len(prefix) :]


def encode_message_cursor(message_id: int) -> str:
    return _encode(f"{_MESSAGE_PREFIX}{message_id}")


def decode_message_cursor(field: str, cursor: str) -> int:
    raw = _decode(field, cursor, _MESSAGE_PREFIX)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= MAX_MESSAGE_ID):
        raise InputError(field, "is not a cursor this API returned")
    return int(raw)


def _cursor_time(value: object) -> datetime:
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


def encode_session_cursor(record: SessionRecord) -> str:
    position = [record.created_at.isoformat(), record.session_id, record.tenant]
    return _encode(_SESSION_PREFIX + json.dumps(position))


def decode_session_cursor(field: str, cursor: str) -> SessionPosition:
    """Where the page ends. A cursor names a position in an ordering, not a row: given to another
    tenant it only says where that tenant's own listing resumes."""
    raw = _decode(field, cursor, _SESSION_PREFIX)
    try:
        created_at, session_id, tenant = json.loads(raw)
        position = _cursor_time(created_at), check_id(field, session_id), check_tenant(tenant)
    except (ValueError, TypeError):
        raise InputError(field, "is not a cursor this API returned") from None
    return position


@strawberry.type(description="Where a page ends and whether another follows.")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class MessageEdge:
    cursor: str
    node: Annotated["Message", strawberry.lazy("graphql_api.types.message")]


@strawberry.type(description="A page of an agent's messages in messageId order.")
class MessageConnection:
    edges: list[MessageEdge]
    page_info: PageInfo

    @strawberry.field(description="The page's messages, without cursors.")
    def nodes(self) -> list[Annotated["Message", strawberry.lazy("graphql_api.types.message")]]:
        return [edge.node for edge in self.edges]

    @classmethod
    def from_records(cls, records: list[MessageRecord], first: int) -> "MessageConnection":
        """``records`` holds up to ``first + 1`` rows; the extra one only says a next page exists."""
        from graphql_api.types.message import Message

        edges = [
            MessageEdge(cursor=encode_message_cursor(r.message_id), node=Message.from_record(r))
            for r in records[:first]
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(records) > first, end_cursor=edges[-1].cursor if edges else None
            ),
        )


@strawberry.type
class SessionEdge:
    cursor: str
    node: Annotated["Session", strawberry.lazy("graphql_api.types.session")]


@strawberry.type(description="A page of sessions, newest first.")
class SessionConnection:
    edges: list[SessionEdge]
    page_info: PageInfo

    @strawberry.field(description="The page's sessions, without cursors.")
    def nodes(self) -> list[Annotated["Session", strawberry.lazy("graphql_api.types.session")]]:
        return [edge.node for edge in self.edges]

    @classmethod
    def from_records(cls, records: list[SessionRecord], first: int) -> "SessionConnection":
        from graphql_api.types.session import Session

        edges = [
            SessionEdge(cursor=encode_session_cursor(r), node=Session.from_record(r)) for r in records[:first]
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(records) > first, end_cursor=edges[-1].cursor if edges else None
            ),
        )
