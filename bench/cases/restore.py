"""Restore: all messages of one 10,000-message agent, as ``RepositorySessionManager`` reads them.

The client's ``GraphQLSessionRepository.list_messages`` and Strands' ``FileSessionManager``
reading the same agent from local files (one JSON file per message, hot in the page cache) take
turns; both answers must hold the same messages. The figure is each one's median wall time; the
target is the client taking at most 0.3 of the files' time.
"""

import statistics
import time

from strands.session.file_session_manager import FileSessionManager

from bench.report import Row, duration, ratio
from bench.run_context import BenchRun

TARGET = 0.2


def run(bench: BenchRun) -> list[Row]:
    agent = bench.restore_agent()
    bench.log(
        f"restore: {bench.sizes.restore_rounds} rounds of {agent.messages:,} messages, client and files"
    )
    files = FileSessionManager(agent.session_id, storage_dir=str(agent.storage_dir))
    client_times: list[float] = []
    file_times: list[float] = []
    with bench.repository() as repository:
        from_client = repository.list_messages(agent.session_id, agent.agent_id)
        from_files = files.list_messages(agent.session_id, agent.agent_id)
        assert len(from_client) == len(from_files) == agent.messages, (len(from_client), len(from_files))
        assert [m.message for m in from_client] == [m.message for m in from_files], "restored messages differ"
        for _ in range(bench.sizes.restore_rounds):
            start = time.perf_counter()
            repository.list_messages(agent.session_id, agent.agent_id)
            client_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            files.list_messages(agent.session_id, agent.agent_id)
            file_times.append(time.perf_counter() - start)
    client, reference = statistics.median(client_times), statistics.median(file_times)
    return [
        Row(
            case=f"restore {agent.messages:,} messages (median time)",
            figure=duration(client),
            reference=f"{duration(reference)} FileSessionManager",
            ratio=ratio(client, reference),
            target=f"<= {TARGET}x",
            met=client / reference <= TARGET,
        )
    ]
