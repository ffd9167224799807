"""The benchmark's cases, in the order ``python -m bench`` runs them.

Each case is a function of the run (``bench.run_context.BenchRun``) returning rows of the table.
``--only`` also takes the names in ``GROUPS``, each standing for several cases.
"""

from collections.abc import Callable

from bench.cases import (
    append,
    concurrent_writers,
    dashboard,
    live,
    restore,
    retention,
    search,
    server_memory,
    stats,
)
from bench.report import Row
from bench.run_context import BenchRun

CASES: dict[str, Callable[[BenchRun], list[Row]]] = {
    "append": append.run,
    "restore": restore.run,
    "dashboard": dashboard.run,
    "concurrent": concurrent_writers.run,
    "search": search.run,
    "stats": stats.run,
    "memory": server_memory.run,
    "retention": retention.run,
    "live": live.run,
}
GROUPS: dict[str, tuple[str, ...]] = {"search_and_stats": ("search", "stats")}
"""Names of several cases (``search_and_stats``: what ``search`` ran before ``stats`` was a case)."""
