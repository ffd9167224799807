"""How much each case does: ``--quick`` (about two minutes) and the full run; ``--scale`` for the
stored messages alone."""

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Sizes:
    name: str
    append_calls: int
    """Calls per candidate per round (raw insert, sync client, async client)."""
    append_rounds: int
    restore_messages: int
    restore_rounds: int
    dashboard_seconds: float
    """Length of one round of load on one server."""
    dashboard_rounds: int
    writers: int
    writer_messages: int
    """Messages each concurrent writer appends per round."""
    writer_rounds: int
    stored_messages: int
    """Messages bulk-loaded for search, stats and memory."""
    query_calls: int
    """Requests per query for search and stats percentiles..."""
    query_seconds: float
    """...unless they take longer than this (and at least MIN_QUERY_CALLS were made)."""
    memory_restores: int
    expired_sessions: int
    """Sessions bulk-loaded as long idle, for retention to delete while a client appends."""


QUICK = Sizes(
    name="quick",
    append_calls=150,
    append_rounds=4,
    restore_messages=10_000,
    restore_rounds=3,
    dashboard_seconds=3.0,
    dashboard_rounds=3,
    writers=32,
    writer_messages=25,
    writer_rounds=2,
    stored_messages=100_000,
    query_calls=60,
    query_seconds=15.0,
    memory_restores=3,
    expired_sessions=10_000,
)
FULL = Sizes(
    name="full",
    append_calls=300,
    append_rounds=10,
    restore_messages=10_000,
    restore_rounds=7,
    dashboard_seconds=5.0,
    dashboard_rounds=7,
    writers=32,
    writer_messages=100,
    writer_rounds=5,
    stored_messages=1_000_000,
    query_calls=300,
    query_seconds=60.0,
    memory_restores=10,
    expired_sessions=100_000,
)

SCALES = {"100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
"""``--scale``: messages bulk-loaded for search, stats and memory, whatever the other sizes."""


def scaled(sizes: Sizes, scale: str | None) -> Sizes:
    if scale is None:
        return sizes
    return replace(sizes, name=f"{sizes.name}, {scale} stored", stored_messages=SCALES[scale])
