"""What an agent pays per ``create_message`` with ``write_behind=True``, against the same calls without.

    python -m bench.write_behind [--calls 2000] [--pause-ms 1] [--url URL [--token KEY]]

Without ``--url`` it starts its own server, a separate process on a fresh database, as
``python -m bench`` does (``bench.fresh_database``, ``bench.server_process``). Each mode stores
the same ~400-byte message ``--calls`` times in an agent of its own through
``GraphQLSessionRepository``; between calls it pauses ``--pause-ms``, the time an agent's model
takes between two messages, in which the sender delivers (0: back to back, and a full queue
blocks). Prints each mode's median and p95 per call, and how long the final ``flush()`` of the
write-behind mode took.
"""

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from bench.conversation import APPEND_MESSAGE as MESSAGE
from bench.fresh_database import fresh_database
from bench.server_process import running_server
from client import GraphQLSessionRepository


def per_call(
    repository: GraphQLSessionRepository, session_id: str, agent_id: str, calls: int, pause: float
) -> list[float]:
    timings = []
    for message_id in range(calls):
        message = SessionMessage.from_message(MESSAGE, message_id)  # type: ignore[arg-type]
        start = time.perf_counter()
        repository.create_message(session_id, agent_id, message)
        timings.append(time.perf_counter() - start)
        if pause:
            time.sleep(pause)
    return timings


def summarize(name: str, seconds: list[float], reference: float | None = None) -> str:
    median = statistics.median(seconds) * 1e3
    p95 = statistics.quantiles(seconds, n=20)[18] * 1e3
    ratio = f"   {median / reference:6.3f}x normal" if reference else ""
    return f"{name:<13} median {median:7.3f} ms   p95 {p95:7.3f} ms{ratio}"


def measure(url: str, token: str | None, calls: int, pause: float) -> None:
    session_id = f"bench-{uuid.uuid4().hex[:8]}"
    with GraphQLSessionRepository(url, token=token) as repository:
        repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
        for agent_id in ("warm", "normal", "write-behind"):
            agent = SessionAgent(agent_id=agent_id, state={}, conversation_manager_state={})
            repository.create_agent(session_id, agent)
        per_call(repository, session_id, "warm", 200, 0)  # connections, caches, plans
        normal = per_call(repository, session_id, "normal", calls, pause)
    with GraphQLSessionRepository(url, token=token, write_behind=True) as repository:
        behind = per_call(repository, session_id, "write-behind", calls, pause)
        start = time.perf_counter()
        repository.flush()
        flushed = time.perf_counter() - start
    print(f"create_message of one ~400-byte message, {calls} calls each, {pause * 1e3:g} ms apart")
    print(summarize("normal", normal))
    print(summarize("write-behind", behind, statistics.median(normal) * 1e3))
    print(f"write-behind  flush() after the last call: {flushed * 1e3:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--pause-ms", type=float, default=1.0)
    parser.add_argument("--url", help="a running server's GraphQL endpoint (default: start one)")
    parser.add_argument("--token", help="a writer key for --url, if it needs one")
    args = parser.parse_args()
    if args.url:
        measure(args.url, args.token, args.calls, args.pause_ms / 1e3)
        return
    with (
        tempfile.TemporaryDirectory(prefix="sgq-bench-") as workdir,
        fresh_database(Path(workdir)) as database,
        running_server(database) as server,
    ):
        measure(server.url, server.token, args.calls, args.pause_ms / 1e3)


if __name__ == "__main__":
    main()
