"""Per-call latency of ``createMessage`` through each gql transport, against raw HTTP POST floors.

    python -m bench.client_transport              # starts its own server (embedded PostgreSQL)
    python -m bench.client_transport --url http://127.0.0.1:8000/graphql --calls 200 --rounds 10
    python -m bench.client_transport --hide-httpx2  # gql's httpx transports on httpx, not httpx2

The server runs in another process, so the client under test does not share its GIL. Candidates
take turns in rounds (so database warm-up and background noise spread over all of them), each
storing messages in its own agent over one keep-alive connection. The table shows the median and
p95 wall time per call, the client process's CPU time per call (what the HTTP client itself
costs), and the median's ratio to raw httpx's, measured in the same run. A ``{ __typename }`` row
shows the HTTP and GraphQL floor without the database.

gql's httpx transports import ``httpx2`` instead of ``httpx`` whenever ``httpx2`` is installed;
``--hide-httpx2`` measures them on ``httpx``.
"""

import sys

if "--hide-httpx2" in sys.argv:
    sys.modules["httpx2"] = None  # type: ignore[assignment]  # makes `import httpx2` fail in gql

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import requests
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession, SyncClientSession
from gql.transport import httpx as gql_httpx
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.httpx import HTTPXAsyncTransport, HTTPXTransport
from gql.transport.requests import RequestsHTTPTransport
from strands.types.session import SessionMessage

from client import AsyncGraphQLSessionRepository, GraphQLSessionRepository
from client.operations import CREATE_MESSAGE

MESSAGE = {"role": "user", "content": [{"text": "How warm is it in Lisbon today? " * 4}]}
NOW = "2026-01-02T03:04:05.123456+00:00"
TYPENAME = {"query": "{ __typename }"}

Variables = dict[str, Any]


@dataclass
class Timings:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)


@dataclass
class Candidate:
    name: str
    send: Callable[[Variables], object] | None = None
    send_async: Callable[[Variables], Awaitable[object]] | None = None
    agent_id: str = ""
    next_id: int = 0
    timings: Timings = field(default_factory=Timings)


def payload(variables: Variables) -> dict[str, Any]:
    return {"query": CREATE_MESSAGE.query, "operationName": CREATE_MESSAGE.name, "variables": variables}


def checked(body: Any) -> Any:
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body


class Bench:
    def __init__(self, url: str) -> None:
        self.url = url
        self.session_id = f"bench-{uuid.uuid4().hex[:12]}"
        self.setup = httpx.Client(timeout=30)
        self.post(
            "mutation($s: SessionInput!) { createSession(session: $s) { sessionId } }",
            {"s": {"sessionId": self.session_id}},
        )

    def post(self, query: str, variables: Variables) -> Any:
        return checked(self.setup.post(self.url, json={"query": query, "variables": variables}).json())

    def new_agent(self) -> str:
        agent_id = f"agent-{uuid.uuid4().hex[:12]}"
        self.post(
            "mutation($s: String!, $a: AgentInput!) { createAgent(sessionId: $s, agent: $a) { agentId } }",
            {"s": self.session_id, "a": {"agentId": agent_id, "state": {}, "conversationManagerState": {}}},
        )
        return agent_id

    def variables(self, candidate: Candidate) -> Variables:
        if not candidate.agent_id:
            candidate.agent_id = self.new_agent()
        candidate.next_id += 1
        return {
            "sessionId": self.session_id,
            "agentId": candidate.agent_id,
            "message": {
                "messageId": candidate.next_id,
                "message": MESSAGE,
                "createdAt": NOW,
                "updatedAt": NOW,
            },
        }

    def run_sync(self, candidate: Candidate, calls: int, record: bool) -> None:
        assert candidate.send is not None
        for _ in range(calls):
            variables = self.variables(candidate)
            wall, cpu = time.perf_counter(), time.process_time()
            candidate.send(variables)
            if record:
                candidate.timings.add(time.perf_counter() - wall, time.process_time() - cpu)

    async def run_async(self, candidate: Candidate, calls: int, record: bool) -> None:
        assert candidate.send_async is not None
        for _ in range(calls):
            variables = self.variables(candidate)
            wall, cpu = time.perf_counter(), time.process_time()
            await candidate.send_async(variables)
            if record:
                candidate.timings.add(time.perf_counter() - wall, time.process_time() - cpu)


async def open_async_candidates(url: str, candidates: list[Candidate]) -> list[Any]:
    """Opens the async clients on the running loop; returns what must be closed afterwards."""
    opened: list[Any] = []
    # Its loop stands still during the sync rounds, so it would not notice the server closing the
    # idle connection; a shorter keep-alive than the server's (5 s) avoids reusing a dead one.
    raw = aiohttp.ClientSession(connector=aiohttp.TCPConnector(keepalive_timeout=4))
    opened.append(raw)

    async def aiohttp_post(variables: Variables) -> object:
        async with raw.post(url, json=payload(variables)) as response:
            return checked(await response.json())

    candidates.append(Candidate("raw aiohttp POST", send_async=aiohttp_post))
    transports = {
        f"gql HTTPXAsyncTransport ({gql_httpx.httpx.__name__})": HTTPXAsyncTransport(url, timeout=30),
        "gql AIOHTTPTransport": AIOHTTPTransport(url, timeout=30),
    }
    for name, transport in transports.items():
        client = Client(transport=transport)
        session = await client.connect_async()
        opened.append(client)
        candidates.append(Candidate(name, send_async=execute_async(session)))
    repository = AsyncGraphQLSessionRepository(url)
    opened.append(repository)
    candidates.append(
        Candidate(
            "client.AsyncGraphQLSessionRepository.create_message (aiohttp)",
            send_async=lambda v: repository.create_message(v["sessionId"], v["agentId"], session_message(v)),
        )
    )
    return opened


def session_message(variables: Variables) -> SessionMessage:
    message = variables["message"]
    return SessionMessage(message=MESSAGE, message_id=message["messageId"], created_at=NOW, updated_at=NOW)


def execute_async(session: AsyncClientSession) -> Callable[[Variables], Awaitable[object]]:
    return lambda variables: session.execute(CREATE_MESSAGE.request(variables))


def execute_sync(session: SyncClientSession, prepared: bool = True) -> Callable[[Variables], object]:
    if prepared:
        return lambda variables: session.execute(CREATE_MESSAGE.request(variables))
    return lambda variables: session.execute(
        GraphQLRequest(CREATE_MESSAGE.document, variable_values=variables, operation_name=CREATE_MESSAGE.name)
    )


def measure(url: str, calls: int, rounds: int, warmup: int) -> list[Candidate]:
    bench = Bench(url)
    raw_httpx = httpx.Client(timeout=30)
    raw_requests = requests.Session()
    untrusting = requests.Session()
    untrusting.trust_env = False
    candidates = [
        Candidate("raw httpx POST", send=lambda v: checked(raw_httpx.post(url, json=payload(v)).json())),
        Candidate(
            "raw httpx POST { __typename } (no database)",
            send=lambda v: checked(raw_httpx.post(url, json=TYPENAME).json()),
        ),
        Candidate(
            "raw requests POST", send=lambda v: checked(raw_requests.post(url, json=payload(v)).json())
        ),
        Candidate(
            "raw requests POST, trust_env=False (no per-call proxy/netrc lookup)",
            send=lambda v: checked(untrusting.post(url, json=payload(v)).json()),
        ),
    ]
    sync_clients = {
        "gql RequestsHTTPTransport": Client(transport=RequestsHTTPTransport(url, timeout=30)),
        f"gql HTTPXTransport ({gql_httpx.httpx.__name__})": Client(transport=HTTPXTransport(url, timeout=30)),
    }
    for name, client in sync_clients.items():
        candidates.append(Candidate(name, send=execute_sync(client.connect_sync())))
    repository = GraphQLSessionRepository(url)
    candidates.append(
        Candidate(
            f"client.GraphQLSessionRepository.create_message ({gql_httpx.httpx.__name__})",
            send=lambda v: repository.create_message(v["sessionId"], v["agentId"], session_message(v)),
        )
    )
    printed_per_call = Client(transport=RequestsHTTPTransport(url, timeout=30))
    candidates.append(
        Candidate(
            "gql RequestsHTTPTransport, query printed per call (plain GraphQLRequest)",
            send=execute_sync(printed_per_call.connect_sync(), prepared=False),
        )
    )
    background = asyncio.new_event_loop()
    threading.Thread(target=background.run_forever, name="bench-loop", daemon=True).start()
    threaded = Client(transport=AIOHTTPTransport(url, timeout=30))
    threaded_session = asyncio.run_coroutine_threadsafe(threaded.connect_async(), background).result()
    candidates.append(
        Candidate(
            "gql AIOHTTPTransport on a private loop thread, called synchronously",
            send=lambda v: asyncio.run_coroutine_threadsafe(
                threaded_session.execute(CREATE_MESSAGE.request(v)), background
            ).result(),
        )
    )
    loop = asyncio.new_event_loop()
    opened = loop.run_until_complete(open_async_candidates(url, candidates))
    try:
        for round_number in range(rounds + 1):
            record = round_number > 0  # round 0 warms every client and the database up
            for candidate in candidates:
                count = calls if record else warmup
                if candidate.send is not None:
                    bench.run_sync(candidate, count, record)
                else:
                    loop.run_until_complete(bench.run_async(candidate, count, record))
    finally:
        for thing in opened:
            if isinstance(thing, aiohttp.ClientSession):
                loop.run_until_complete(thing.close())
            elif isinstance(thing, AsyncGraphQLSessionRepository):
                loop.run_until_complete(thing.aclose())
            else:
                loop.run_until_complete(thing.close_async())
        loop.close()
        asyncio.run_coroutine_threadsafe(threaded.close_async(), background).result()
        background.call_soon_threadsafe(background.stop)
        for client in [*sync_clients.values(), printed_per_call]:
            client.close_sync()
        repository.close()
        raw_httpx.close()
        raw_requests.close()
        untrusting.close()
    return candidates


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def own_server() -> Iterator[str]:
    """``session-graphql serve`` on a free port with a fresh embedded PostgreSQL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sgq-bench-") as tmp:
        env = {**os.environ, "SESSION_GRAPHQL_LOG_LEVEL": "warning", "DATABASE_URL": ""}
        command = [sys.executable, "-m", "graphql_api.cli", "serve", "--port", str(port)]
        process = subprocess.Popen([*command, "--data-dir", str(Path(tmp) / "pgdata")], env=env)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the benchmark server did not become ready")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}/graphql"
        finally:
            process.terminate()
            process.wait(timeout=30)


def print_table(candidates: list[Candidate], calls: int, rounds: int) -> None:
    floor = statistics.median(candidates[0].timings.wall)
    print(f"\ncreateMessage: {rounds} rounds x {calls} calls per client, server in another process")
    print(f"{'client':<72} {'median ms':>9} {'p95 ms':>7} {'CPU us':>7} {'x raw httpx':>11}")
    for candidate in candidates:
        wall = candidate.timings.wall
        median = statistics.median(wall)
        p95 = statistics.quantiles(wall, n=20)[-1]
        cpu = statistics.mean(candidate.timings.cpu)
        numbers = f"{median * 1e3:>9.3f} {p95 * 1e3:>7.3f} {cpu * 1e6:>7.0f} {median / floor:>11.2f}"
        print(f"{candidate.name:<72} {numbers}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running server's /graphql URL (default: start one)")
    parser.add_argument("--calls", type=int, default=100, help="calls per client per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=50, help="unrecorded calls per client first")
    parser.add_argument("--hide-httpx2", action="store_true", help="run gql's httpx transports on httpx")
    args = parser.parse_args()
    if args.url:
        print_table(measure(args.url, args.calls, args.rounds, args.warmup), args.calls, args.rounds)
    else:
        with own_server() as url:
            print_table(measure(url, args.calls, args.rounds, args.warmup), args.calls, args.rounds)


if __name__ == "__main__":
    main()
