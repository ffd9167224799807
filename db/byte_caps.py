"""Reads that stop at a number of bytes: an answer's budget (``graphql_api.execution``) is known
before its rows are read, so rows past it are not sent by PostgreSQL at all.

The size of a stored JSON document is ``octet_length`` of its text, which PostgreSQL reads from the
value's header without decompressing it. A running sum over the rows in the statement's own order
keeps the rows up to the first one that crosses the limit; that one tells the caller it was crossed.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import BigInteger, Select, Text, bindparam, cast, func, literal, select

from db.errors import TooManyBytesError

RUNNING_BYTES = "running_bytes"


def within_bytes(stmt: Select[Any], sized: Sequence[str], most_bytes: int | None) -> Select[Any]:
    """``stmt``'s rows, in its order, while their ``sized`` columns add up to at most ``most_bytes``
    (then one more); None: all of them, as ``stmt`` is."""
    if most_bytes is None:
        return stmt
    rows = stmt.subquery("sized")
    size: Any = literal(0, BigInteger)
    for name in sized:
        size = size + func.coalesce(func.octet_length(cast(rows.c[name], Text)), 0)
    # No ORDER BY in the window: it runs over the rows as the subquery sorted them.
    counted = select(
        rows, func.sum(size).over(rows=(None, 0)).label(RUNNING_BYTES), size.label("row_bytes")
    ).subquery("counted")
    before = counted.c[RUNNING_BYTES] - counted.c.row_bytes
    return select(*(counted.c[c.key] for c in rows.c), counted.c[RUNNING_BYTES]).where(
        before <= bindparam("most_bytes", most_bytes, type_=BigInteger)
    )


def checked(rows: Iterable[Any], most_bytes: int | None) -> list[Any]:
    """The rows of a ``within_bytes`` statement; raises ``TooManyBytesError`` if they crossed."""
    found = list(rows)
    # The running sum grows row by row, in the order the rows come.
    if most_bytes is not None and found and getattr(found[-1], RUNNING_BYTES) > most_bytes:
        raise TooManyBytesError(most_bytes)
    return found
