"""Scalars: a strict DateTime and JSON."""

import base64
import binascii
import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, NewType

import strawberry
from graphql import IntValueNode, ValueNode, value_from_ast_untyped
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.scalars import JSON

__all__ = [
    "EARLIEST",
    "JSON",
    "LATEST",
    "Base64",
    "Base64Scalar",
    "DateTimeScalar",
    "Time",
    "TimeScalar",
    "parse_datetime",
    "parse_stored_time",
    "parse_time",
]

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
"""Instants outside [EARLIEST, LATEST) are refused: the driver stores the ends of Python's range
as PostgreSQL's infinities, which come back as no instant at all."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST_MS = (EARLIEST - EPOCH) // timedelta(milliseconds=1)
LATEST_MS = (LATEST - EPOCH) // timedelta(milliseconds=1)
_MILLISECONDS = re.compile(r"\s*(-?)([0-9]+)\s*")
"""A Time given as a string of digits (ASCII only: ``int`` would also read other scripts' digits)."""
_MOST_DIGITS = len(str(LATEST_MS))
_QUOTED_LENGTH = 64
_PLAIN_REASON = re.compile(r"(year|month|day|hour|minute|second|microsecond)\b[\w .,]*")
"""Python's reasons that read well as they are: "month must be in 1..12", "day is out of range for month"."""


def _quoted(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > _QUOTED_LENGTH:
        text = text[:_QUOTED_LENGTH] + "..."
    return json.dumps(text, ensure_ascii=True)


def _instant(value: str) -> datetime:
    """The instant a string names; ``ValueError`` with a message fit for the caller."""
    if "\x00" in value:
        raise ValueError("it contains a NUL character")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"it is not ISO 8601 ({_reason(error)})") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("it has no UTC offset, so it names no instant (add Z or +00:00)")
    if not EARLIEST <= parsed < LATEST:
        raise ValueError("it is outside the years 1900 to 9998")
    return parsed


def _reason(error: ValueError) -> str:
    """What is wrong, in words for the caller: Python's other reasons quote the whole value back as a
    Python repr ("Invalid isoformat string: '...'") or print a ``datetime.timedelta``."""
    text = str(error)
    if _PLAIN_REASON.fullmatch(text):
        return text
    if text.startswith("offset must be"):
        return "its UTC offset must be less than 24 hours"
    return "expected a form like 2026-01-02T03:04:05+00:00"


def parse_datetime(value: object) -> datetime:
    """ISO 8601 with a UTC offset, between 1900 and 9998."""
    if not isinstance(value, str):
        raise StrawberryInputCoercionError(f"DateTime must be an ISO 8601 string, got {_quoted(value)}")
    try:
        return _instant(value)
    except ValueError as error:
        raise StrawberryInputCoercionError(f"DateTime {_quoted(value)} is refused: {error}") from None


def parse_stored_time(value: object) -> datetime:
    """A time this API wrote into a cursor; ``ValueError`` if it is not one."""
    if not isinstance(value, str):
        raise ValueError("not a time")
    return _instant(value)


def serialize_datetime(value: datetime) -> str:
    return value.isoformat()


DateTimeScalar = strawberry.scalar(
    name="DateTime",
    description="An instant as ISO 8601 with a UTC offset, to the microsecond, between 1900 and 9998. "
    "Returned in UTC as Python's isoformat() writes it (2026-01-02T03:04:05.123456+00:00; no fraction "
    "when it is zero).",
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)


def parse_time(value: object) -> datetime:
    """ISO 8601 with a UTC offset, or milliseconds since 1970 (what Grafana's ``$__from`` sends)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _from_epoch_ms(value, value)
    written = _MILLISECONDS.fullmatch(value) if isinstance(value, str) else None
    if written is not None:
        sign, digits = written.group(1), written.group(2).lstrip("0") or "0"
        # More digits than any storable time has; past 4,300 digits, int() would refuse them.
        if len(digits) > _MOST_DIGITS:
            raise _out_of_range(value)
        return _from_epoch_ms(int(sign + digits), value)
    return parse_datetime(value)


def _parse_time_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> datetime:
    """A Time written in the document: an integer is read from its digits, which graphql-core would
    turn into NaN past 4,300 of them."""
    if isinstance(node, IntValueNode):
        return parse_time(node.value)
    return parse_time(value_from_ast_untyped(node, variables))


def _from_epoch_ms(milliseconds: float, value: object) -> datetime:
    # Compared before any conversion: 10**400 or 1e308 would overflow a float or a timestamp, whose
    # errors would say nothing of the range.
    if isinstance(milliseconds, float) and math.isnan(milliseconds):
        raise StrawberryInputCoercionError(
            f"Time {_quoted(value)} is not a number of milliseconds since 1970"
        )
    if not EARLIEST_MS <= milliseconds < LATEST_MS:
        raise _out_of_range(value)
    return EPOCH + timedelta(milliseconds=milliseconds)


def _out_of_range(value: object) -> StrawberryInputCoercionError:
    return StrawberryInputCoercionError(
        f"Time {_quoted(value)} (milliseconds since 1970) is outside the years 1900 to 9998 "
        f"({EARLIEST_MS} to {LATEST_MS - 1})"
    )


Time = NewType("Time", datetime)
"""An instant in a filter or a statistics range (``TimeScalar`` reads and writes it)."""

TimeScalar = strawberry.scalar(
    name="Time",
    description="An instant for filters and statistics: ISO 8601 with a UTC offset, or milliseconds "
    "since 1970 as a number or a string of digits (Grafana's ${__from} and ${__to}). Returned as ISO 8601.",
    serialize=serialize_datetime,
    parse_value=parse_time,
    parse_literal=_parse_time_literal,
)


def _parse_base64(value: object) -> bytes:
    # Strict: Python's default decoder drops characters outside the alphabet ("@@@@" is no bytes).
    if not isinstance(value, str):
        raise StrawberryInputCoercionError(f"Base64 must be a string, got {_quoted(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise StrawberryInputCoercionError(
            "Base64 must be standard base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4)"
        ) from None


def base64_decoded_size(encoded: int) -> int:
    """The most bytes whose base64 fits in ``encoded`` characters."""
    return encoded // 4 * 3


Base64 = NewType("Base64", bytes)
"""Bytes of a storage object (``Base64Scalar`` reads and writes them)."""

Base64Scalar = strawberry.scalar(
    name="Base64",
    description="Bytes as standard base64 (RFC 4648, with padding).",
    specified_by_url="https://datatracker.ietf.org/doc/html/rfc4648.html#section-4",
    serialize=lambda value: base64.b64encode(value).decode("ascii"),
    parse_value=_parse_base64,
)


Count = NewType("Count", int)
"""A sum that outgrows GraphQL's 32-bit Int: a month of tokens (``CountScalar`` writes it)."""

JSON_SAFE_INTEGER = 2**53 - 1


def _parse_count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > JSON_SAFE_INTEGER:
        raise StrawberryInputCoercionError(
            f"Count must be an integer within +-(2^53 - 1), got {_quoted(value)}"
        )
    return value


CountScalar = strawberry.scalar(
    name="Count",
    description="A whole number that may exceed GraphQL's 32-bit Int (token sums over long ranges), "
    "written as a JSON number, exact up to 2^53 - 1.",
    serialize=int,
    parse_value=_parse_count,
)
