"""What tracing costs an append: the server's CPU time and the client's wall time per call, with
tracing off and on (spans sent to a discarding OTLP receiver in this process, ``bench.otlp_sink``).

    python -m bench.tracing_cost                  # 3 rounds of 500 calls per server
    python -m bench.tracing_cost --calls 1000 --rounds 5

Two ``session-graphql serve`` on one fresh database, one with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set;
the sync client appends 1 KB messages (``createMessage``) to each in turn, round after round (the
first round warms up), from inside a span as a traced agent does (so it sends ``traceparent``).
Server CPU is its process's user and system time (psutil), which other work on a shared machine
disturbs less than wall time, and the client's CPU time per call; each the median of the rounds,
and the median wall time per call.
"""

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import psutil
from opentelemetry.sdk.trace import TracerProvider
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from bench.conversation import APPEND_MESSAGE
from bench.fresh_database import fresh_database
from bench.otlp_sink import Sink
from bench.server_process import Server, running_server
from client import GraphQLSessionRepository


@contextmanager
def _environment(**variables: str) -> Iterator[None]:
    """The variables set while the block runs (the servers it starts inherit them)."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _appends(server: Server, agent_id: str, first: int, calls: int) -> tuple[float, float, float]:
    """Server CPU seconds, client CPU seconds and the client's median wall seconds, per call."""
    process = psutil.Process(server.pid)
    walls = []
    tracer = TracerProvider().get_tracer(__name__)
    with GraphQLSessionRepository(server.url, headers=server.headers) as repository:
        if first == 0:
            repository.create_session(Session(session_id=agent_id, session_type=SessionType.AGENT))
            repository.create_agent(
                agent_id, SessionAgent(agent_id=agent_id, state={}, conversation_manager_state={})
            )
        cpu = process.cpu_times()
        client_cpu = time.process_time()
        with tracer.start_as_current_span("agent turn"):
            for message_id in range(first, first + calls):
                message = SessionMessage(message=APPEND_MESSAGE, message_id=message_id)  # type: ignore[arg-type]
                start = time.perf_counter()
                repository.create_message(agent_id, agent_id, message)
                walls.append(time.perf_counter() - start)
        client_used = time.process_time() - client_cpu
        after = process.cpu_times()
    used = (after.user + after.system) - (cpu.user + cpu.system)
    return used / calls, client_used / calls, statistics.median(walls)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing_cost", description=__doc__)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}"
    with tempfile.TemporaryDirectory(prefix="sgq-tracing-") as tmp, ExitStack() as stack:
        database = stack.enter_context(fresh_database(Path(tmp)))
        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        servers = {"off": stack.enter_context(running_server(database))}
        with _environment(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint):
            servers["on"] = stack.enter_context(running_server(database))
        figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in servers}
        for round_number in range(args.rounds + 1):
            for name, server in servers.items():
                measured = _appends(server, f"tracing-{name}", round_number * args.calls, args.calls)
                if round_number:
                    figures[name].append(measured)
        sink.shutdown()
    print(f"{args.rounds} rounds of {args.calls} createMessage calls per server; {Sink.spans} spans received")
    print("| tracing | server CPU per call | client CPU per call | client wall per call |")
    print("|---------|---------------------|---------------------|----------------------|")
    medians = {}
    for name, rounds in figures.items():
        medians[name] = [statistics.median(each[column] for each in rounds) * 1000 for column in range(3)]
        server_cpu, client_cpu, wall = medians[name]
        print(f"| {name:7} | {server_cpu:14.3f} ms   | {client_cpu:14.3f} ms   | {wall:15.3f} ms   |")
    cpu_ratio, wall_ratio = medians["on"][0] / medians["off"][0], medians["on"][2] / medians["off"][2]
    print(f"with tracing on: server CPU per call {cpu_ratio:.2f}x off, client wall {wall_ratio:.2f}x")


if __name__ == "__main__":
    main()
