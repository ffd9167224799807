"""32 agents appending at once, each to its own session, from a process of their own.

The writers run in ``bench.writers``, a process apart from the bench's and the server's, so the
rate is the server's capacity rather than the driver's share of the CPU. A round of each mode
(``bench.writers.MODES``): the raw reference (32 asyncpg connections inserting the same rows with
the prepared statement of ``bench.raw_insert``); the plain client (32
``AsyncGraphQLSessionRepository``, one ``create_message`` of 1 KB at a time each); write-behind
(the same with ``write_behind=True``, the clock stopping when every ``flush()`` has delivered it
all); and write-behind shared (one write-behind repository for the 32 agents, as agents of one
process may share it). Sessions and agents are made before the clock starts. Rounds alternate
(raw, then each client mode); the figure is each mode's median messages per second, its ratio the
raw median's of the same run.

Around each timed part the case reads the server's CPU time (user and system, psutil, its process
and its workers), so each client row also says the server's CPU milliseconds per request and per
message; background work of the server in that time (the rollups' fold) is in it too. The writers'
process says how busy it was (its CPU time over the wall time): near 100 % it, not the server,
set the pace. After the
rounds the stored rows are counted per agent: ids missing are lost, rows beyond the distinct ids
duplicated, and each session's ``message_count`` must equal its rows.
"""

import asyncio
import json
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import asyncpg
import psutil

from bench.report import Row, ratio
from bench.run_context import BenchRun
from bench.writers import AGENT_ID

TARGETS = {"client": 0.3, "behind": 0.9, "shared": 0.9}
"""The lowest ratio to raw each client mode should reach (issue 20)."""
NAMES = {
    "client": "plain client",
    "behind": "write-behind, a client per agent",
    "shared": "write-behind, one client shared",
}


@dataclass(frozen=True)
class Measured:
    rate: float
    """Messages per second."""
    failed: int
    requests: int
    server_cpu: float
    """Seconds of the server's CPU over the timed part."""
    busy: float
    """The writers' process's CPU time over the timed part's wall time (1.0: one core, its limit)."""


def server_cpu_seconds(pid: int) -> float:
    """User and system CPU time of the server's process and its children (workers) so far."""
    server = psutil.Process(pid)
    total = 0.0
    for process in (server, *server.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.Error:  # a worker that just ended
            continue
        total += times.user + times.system
    return total


class WritersProcess:
    """``bench.writers`` running beside the bench, one round at a time."""

    def __init__(self, bench: BenchRun, process: subprocess.Popen[str]) -> None:
        self._bench = bench
        self._process = process

    def _send(self, line: str) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()

    def _answer(self) -> dict[str, float]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"bench.writers ended with status {self._process.wait()}")
        answer: dict[str, float] = json.loads(line)
        return answer

    def round(self, mode: str, prefix: str) -> Measured:
        self._send(json.dumps({"mode": mode, "prefix": prefix}))
        self._answer()  # ready: sessions, agents and connections made
        before = server_cpu_seconds(self._bench.server.pid)
        self._send("go")
        done = self._answer()
        server_cpu = server_cpu_seconds(self._bench.server.pid) - before
        messages = self._bench.sizes.writers * self._bench.sizes.writer_messages
        return Measured(
            messages / done["seconds"],
            int(done["failed"]),
            int(done["requests"]),
            server_cpu,
            done["cpu"] / done["seconds"],
        )


@contextmanager
def writers_process(bench: BenchRun) -> Iterator[WritersProcess]:
    command = [
        sys.executable,
        "-m",
        "bench.writers",
        bench.server.url,
        bench.database.libpq_url,
        f"--writers={bench.sizes.writers}",
        f"--messages={bench.sizes.writer_messages}",
    ]
    if bench.server.token is not None:
        command.append(f"--token={bench.server.token}")
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield WritersProcess(bench, process)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _count(bench: BenchRun, prefix: str, rounds: int) -> tuple[int, int, int]:
    """Lost messages, duplicated messages and sessions whose message_count is not their rows."""
    conn = await asyncpg.connect(bench.database.libpq_url)
    try:
        rows = await conn.fetch(
            """
            SELECT s.session_id, s.message_count, count(m.message_id) AS stored,
                count(DISTINCT m.message_id) FILTER (WHERE m.message_id < $2) AS distinct_ids
            FROM sessions s LEFT JOIN session_messages m
                ON (m.session_id, m.tenant) = (s.session_id, s.tenant) AND m.agent_id = $3
            WHERE s.tenant = 'default' AND s.session_id LIKE $1 || '%'
            GROUP BY s.session_id, s.message_count
            """,
            prefix,
            bench.sizes.writer_messages,
            AGENT_ID,
        )
    finally:
        await conn.close()
    expected_sessions = bench.sizes.writers * rounds
    assert len(rows) == expected_sessions, (len(rows), expected_sessions)
    lost = sum(bench.sizes.writer_messages - row["distinct_ids"] for row in rows)
    duplicated = sum(row["stored"] - row["distinct_ids"] for row in rows)
    miscounted = sum(row["message_count"] != row["stored"] for row in rows)
    return lost, duplicated, miscounted


def _figure(measured: list[Measured], counts: tuple[int, int, int], messages: int) -> str:
    lost, duplicated, miscounted = counts
    rate = statistics.median(m.rate for m in measured)
    requests = sum(m.requests for m in measured)
    cpu_ms = sum(m.server_cpu for m in measured) * 1e3
    failed = sum(m.failed for m in measured)
    busy = statistics.median(m.busy for m in measured)
    figure = (
        f"{rate:.0f} msg/s; server CPU {cpu_ms / requests:.2f} ms/req, {cpu_ms / messages:.2f} ms/msg"
        f" ({messages / requests:.1f} msg/req); writers' process {busy:.0%} busy;"
        f" {lost} lost, {duplicated} dup"
    )
    figure += f", {failed} calls failed" if failed else ""
    return figure + (f", {miscounted} sessions miscounted" if miscounted else "")


def run(bench: BenchRun) -> list[Row]:
    sizes = bench.sizes
    bench.log(
        f"concurrent: {sizes.writer_rounds} rounds of {sizes.writers} writers x {sizes.writer_messages}"
        f" messages, raw and {', '.join(TARGETS)}, the writers in their own process"
    )
    measured: dict[str, list[Measured]] = {mode: [] for mode in ("raw", *TARGETS)}
    with writers_process(bench) as writers:
        for number in range(sizes.writer_rounds):
            for mode, rounds in measured.items():
                rounds.append(writers.round(mode, f"{mode}-writers-{number}"))
    counts = {mode: asyncio.run(_count(bench, f"{mode}-writers-", sizes.writer_rounds)) for mode in TARGETS}
    reference = statistics.median(m.rate for m in measured["raw"])
    messages = sizes.writers * sizes.writer_messages * sizes.writer_rounds
    rows = []
    for mode, target in TARGETS.items():
        rate = statistics.median(m.rate for m in measured[mode])
        lost, duplicated, miscounted = counts[mode]
        failed = sum(m.failed for m in measured[mode])
        rows.append(
            Row(
                case=f"{sizes.writers} writers in their own process, {NAMES[mode]} (msg/s)",
                figure=_figure(measured[mode], counts[mode], messages),
                reference=f"{reference:.0f} msg/s raw asyncpg, {sizes.writers} conns",
                ratio=ratio(rate, reference),
                target=f">= {target}x, 0 lost, 0 dup",
                met=rate / reference >= target and lost == duplicated == miscounted == failed == 0,
            )
        )
    return rows
