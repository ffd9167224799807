"""Scalars: a strict DateTime and JSON."""

from datetime import datetime

import strawberry
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.scalars import JSON

__all__ = ["JSON", "DateTimeScalar", "parse_datetime"]


def parse_datetime(value: object) -> datetime:
    """ISO 8601 with a UTC offset; a time without one names no instant, so it is refused."""
    if not isinstance(value, str):
        raise StrawberryInputCoercionError(f"DateTime must be an ISO 8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise StrawberryInputCoercionError(f"DateTime must be ISO 8601, got {value!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise StrawberryInputCoercionError(f"DateTime must include a UTC offset, got {value!r}")
    return parsed


def serialize_datetime(value: datetime) -> str:
    return value.isoformat()


DateTimeScalar = strawberry.scalar(
    name="DateTime",
    description="An instant as ISO 8601 with a UTC offset, to the microsecond. Returned in UTC as "
    "Python's isoformat() writes it (2026-01-02T03:04:05.123456+00:00; no fraction when it is zero).",
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)
