"""Reads that stop at a number of bytes: an answer's budget (``graphql_api.execution``) is known
before its rows are read, so documents past it are not sent by PostgreSQL at all.

The size of a stored JSON document is ``octet_length`` of its text, which PostgreSQL reads from the
value's header without decompressing it. A running sum over the rows in the statement's own order
leaves out the documents of every row from the first that crosses the limit; the sum tells the
caller it was crossed. Statements are built once with the limit as a parameter.
"""

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import BigInteger, Select, Text, bindparam, case, cast, func, literal, select
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncConnection

from db.errors import TooManyBytesError

RUNNING_BYTES = "running_bytes"


@dataclass
class Meter:
    """Bytes of stored documents read by the statements run while it is ``metered()``."""

    bytes: int = 0


_meter: ContextVar[Meter | None] = ContextVar("byte_caps_meter", default=None)


@contextmanager
def metered() -> Iterator[Meter]:
    """Counts what ``checked`` reads in this context (and the tasks it starts)."""
    meter = Meter()
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


def count_read(size: int) -> None:
    """Adds ``size`` bytes to the meter in effect, if any."""
    meter = _meter.get()
    if meter is not None:
        meter.bytes += size


def within_bytes(stmt: Select[Any], sized: Sequence[str]) -> Select[Any]:
    """``stmt``'s rows, in its order, with their ``sized`` columns left out (NULL) from the first row
    whose documents go past the ``most_bytes`` parameter, and the running sum of those documents'
    bytes last (``RUNNING_BYTES``): what would not fit is never sent. Execute it with
    ``{"most_bytes": ...}`` and read it with ``checked``."""
    rows = stmt.subquery("sized")
    size: Any = literal(0, BigInteger)
    for name in sized:
        size = size + func.coalesce(func.octet_length(cast(rows.c[name], Text)), 0)
    # No ORDER BY in the window: it runs over the rows as the subquery sorted them. Were that order
    # ever lost, ``checked`` still finds a crossing: it looks at every row.
    running = cast(func.sum(size).over(rows=(None, 0)), BigInteger)
    fits = running - size <= bindparam("most_bytes", type_=BigInteger)
    return select(
        *(case((fits, column)).label(column.key) if column.key in sized else column for column in rows.c),
        running.label(RUNNING_BYTES),
    )


def checked(rows: Iterable[Any], most_bytes: int | None) -> list[Any]:
    """The rows of a ``within_bytes`` statement (``RUNNING_BYTES`` last); raises
    ``TooManyBytesError`` if they went past ``most_bytes``."""
    # A result's all() fetches in one call; iterating it fetches row by row, 3 µs each.
    found = list(rows.all()) if isinstance(rows, Result) else list(rows)
    if most_bytes is None or not found:
        return found
    read = max(map(itemgetter(-1), found))
    count_read(min(read, most_bytes + 1))
    if read > most_bytes:
        raise TooManyBytesError(most_bytes)
    return found


async def rows_within(
    conn: AsyncConnection, stmt: Select[Any], sized: Sequence[str], most_bytes: int | None
) -> list[Any]:
    """``stmt``'s rows, all of them (``most_bytes`` None) or, ``within_bytes``, ``checked``: a
    statement built per call (a listing's filter and order), where prebuilt ones take the parameter."""
    if most_bytes is None:
        return list((await conn.execute(stmt)).all())
    return checked(await conn.execute(within_bytes(stmt, sized), {"most_bytes": most_bytes}), most_bytes)
