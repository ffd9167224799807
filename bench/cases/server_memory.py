"""Server memory: the server process's resident set while it restores a 10,000-message agent.

With the bulk-loaded messages stored, the sync client restores the 10,000-message agent several
times while a thread samples the RSS of the server process with psutil every 5 ms; PostgreSQL
and PostGraphile are not the server's children and are not counted. Should the server run
workers (``SESSION_GRAPHQL_WORKERS``), the sample is the sum over the server process and its
workers, which are then where requests are served. The figure is the highest sample.
"""

import contextlib
import threading

import psutil

from bench.report import Row
from bench.run_context import BenchRun

BUDGET_BYTES = 300 * 1024 * 1024
SAMPLE_SECONDS = 0.005
MB = 1024 * 1024


def server_rss(process: psutil.Process) -> int:
    """The resident set of the server process and of its workers, if it runs any."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total


class PeakSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self._process = psutil.Process(pid)
        self._done = threading.Event()
        self.peak = 0

    def run(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, server_rss(self._process))

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def run(bench: BenchRun) -> list[Row]:
    layout = bench.stored_messages()
    agent = bench.restore_agent()
    restores = bench.sizes.memory_restores
    bench.log(f"memory: {restores} restores of {agent.messages:,} messages, sampling the server's RSS")
    before = server_rss(psutil.Process(bench.server.pid))
    sampler = PeakSampler(bench.server.pid)
    sampler.start()
    try:
        with bench.repository() as repository:
            for _ in range(restores):
                restored = repository.list_messages(agent.session_id, agent.agent_id)
                assert len(restored) == agent.messages, len(restored)
    finally:
        peak = sampler.stop()
    return [
        Row(
            case=f"server RSS, {layout.messages:,} stored, {agent.messages:,}-msg restore",
            figure=f"{peak / MB:.0f} MB peak",
            reference=f"{before / MB:.0f} MB before",
            ratio="-",
            target=f"< {BUDGET_BYTES // MB} MB",
            met=peak < BUDGET_BYTES,
        )
    ]
