"""``session-graphql export`` and ``import --from-file`` over many messages: time and peak memory.

::

    python -m bench.export_import --messages 1000000     # about 10 minutes on 2 cores

Bulk-loads the messages (``bench.bulk_load``) into a fresh database behind a server of its own,
exports the tenant to a ``.jsonl.gz`` file with the command, imports the file into another tenant,
and checks the second tenant holds as many messages. Each command runs in its own process, as
users run it; its resident memory (RSS) is sampled every 50 ms, and the peak is reported.
"""

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil

from bench.bulk_load import layout_for, load
from bench.fresh_database import fresh_database
from bench.server_process import running_server

COMMAND = [sys.executable, "-m", "graphql_api.cli"]
SAMPLE_SECONDS = 0.05
MB = 1024 * 1024


@dataclass(frozen=True)
class Measured:
    returncode: int
    seconds: float
    peak_rss: int
    """Bytes: the largest resident set size seen."""
    stdout: str
    stderr: str


class PeakMemory(threading.Thread):
    """Samples a process's RSS until it ends; ``peak`` is the largest seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0

    def run(self) -> None:
        while True:
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:  # ended
                return
            time.sleep(SAMPLE_SECONDS)


def measured(
    arguments: list[str], *, env: dict[str, str] | None = None, kill_when: "threading.Event | None" = None
) -> Measured:
    """Runs ``session-graphql`` with ``arguments``, timing it and sampling its memory; with
    ``kill_when``, kills it (SIGKILL) once the event is set."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [*COMMAND, *arguments], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    watch = PeakMemory(process.pid)
    watch.start()
    if kill_when is not None:
        threading.Thread(target=lambda: kill_when.wait() and process.kill(), daemon=True).start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    watch.join()
    return Measured(process.returncode, seconds, watch.peak, stdout, stderr)


def message_count(url: str, tenant: str, headers: dict[str, str]) -> int:
    answer = httpx.post(
        url,
        json={"query": "{ messages(first: 1) { totalCount } }"},
        headers={**headers, "X-Tenant": tenant},
        timeout=300,
    )
    return int(answer.json()["data"]["messages"]["totalCount"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sgq-export-") as work:
        workdir = Path(work)
        with fresh_database(workdir) as database, running_server(database) as server:
            layout = layout_for(args.messages, datetime.now(UTC).replace(microsecond=0) - timedelta(days=2))
            started = time.perf_counter()
            asyncio.run(load(database.libpq_url, layout))
            print(f"loaded {layout.messages:,} messages in {time.perf_counter() - started:.0f} s", flush=True)
            token = [] if server.token is None else ["--token", server.token]
            path = workdir / "export.jsonl.gz"
            exported = measured(["export", "--url", server.url, *token, "--output", str(path)])
            assert exported.returncode == 0, exported.stderr
            print(
                f"export: {exported.seconds:.0f} s, peak RSS {exported.peak_rss / MB:.0f} MB, "
                f"file {path.stat().st_size / MB:.0f} MB",
                flush=True,
            )
            imported = measured(
                ["import", "--from-file", str(path), "--url", server.url, *token, "--tenant", "restored"]
            )
            assert imported.returncode == 0, imported.stdout + imported.stderr
            print(f"import: {imported.seconds:.0f} s, peak RSS {imported.peak_rss / MB:.0f} MB", flush=True)
            count = message_count(server.url, "restored", server.headers)
            assert count == layout.messages, (count, layout.messages)
            print(f"the restored tenant holds {count:,} messages", flush=True)


if __name__ == "__main__":
    main()
