"""``python -m bench``: every speed case against a fresh database, as one table.

    python -m bench                 # the full run (1,000,000 stored messages)
    python -m bench --quick         # smaller sizes, about two minutes
    python -m bench --only dashboard --only restore
    python -m bench --only search_and_stats --scale 10m   # 10,000,000 stored messages

--scale (100k, 1m, 10m) sets the messages bulk-loaded for search, stats and memory alone. On 2
cores 1m loads in about 30 s into 2.1 GB of disk; 10m in about 10 minutes into 12 GB (a 10 GB
database), and ``--only search_and_stats --scale 10m`` took 14 minutes in all.

A fresh database (embedded PostgreSQL in a temporary directory, or a new database on the
server ``DATABASE_URL`` names), migrated; ``session-graphql serve`` in its own process on it.
Each case measures its reference in the same run; progress goes to stderr, the table to stdout.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.cases import CASES, GROUPS
from bench.fresh_database import DatabaseUnavailableError, fresh_database
from bench.report import Row, table
from bench.run_context import BenchRun
from bench.server_process import running_server
from bench.sizes import FULL, QUICK, SCALES, scaled


def _failed(case: str, error: Exception) -> Row:
    traceback.print_exception(error, file=sys.stderr)
    return Row(case, f"error: {type(error).__name__}: {str(error)[:80]}", "-", "-", "-", False)


def _commit() -> str:
    try:
        found = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "no git"
    return found.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: about two minutes")
    parser.add_argument(
        "--only",
        action="append",
        choices=[*CASES, *GROUPS],
        metavar="CASE",
        help=f"run only this case (repeatable): {', '.join([*CASES, *GROUPS])}",
    )
    parser.add_argument(
        "--scale",
        choices=list(SCALES),
        help="messages stored for search, stats and memory (default: 100k with --quick, else 1m)",
    )
    args = parser.parse_args()
    sizes = scaled(QUICK if args.quick else FULL, args.scale)
    asked = {case for name in args.only or CASES for case in GROUPS.get(name, (name,))}
    selected = [name for name in CASES if name in asked]
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sgq-bench-") as tmp:
        try:
            with fresh_database(Path(tmp)) as database, running_server(database) as server:
                bench = BenchRun(sizes=sizes, database=database, server=server, workdir=Path(tmp))
                bench.log(f"{database.where}; server pid {server.pid} at {server.url}")
                for name in selected:
                    try:
                        rows += CASES[name](bench)
                    except Exception as error:
                        rows.append(_failed(name, error))
        except DatabaseUnavailableError as error:
            raise SystemExit(str(error)) from None
        where = database.where.split(" in ")[0]
    elapsed = time.perf_counter() - started
    print(
        f"\npython -m bench ({sizes.name}) at {_commit()}: {where}, server in its own process, "
        f"{os.cpu_count()} CPUs, {elapsed:.0f} s"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
