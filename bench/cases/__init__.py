"""The benchmark's cases, in the order ``python -m bench`` runs them.

Each case is a function of the run (``bench.run_context.BenchRun``) returning rows of the table.
"""

from collections.abc import Callable

from bench.cases import append, concurrent_writers, dashboard, restore, search_and_stats, server_memory
from bench.report import Row
from bench.run_context import BenchRun

CASES: dict[str, Callable[[BenchRun], list[Row]]] = {
    "append": append.run,
    "restore": restore.run,
    "dashboard": dashboard.run,
    "concurrent": concurrent_writers.run,
    "search": search_and_stats.run,
    "memory": server_memory.run,
}
