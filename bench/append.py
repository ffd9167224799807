"""Append-path benchmark: one message per call, as an agent turn writes it.

Measures, in the same run against the same embedded PostgreSQL:
  raw      asyncpg INSERT of the same row (prepared, autocommit): the floor
  http     createMessage over HTTP keep-alive with httpx (the server's own cost)
  client   GraphQLSessionRepository.create_message (what an agent pays), if the client is installed
and prints each one's median and p95 per call and its ratio to raw. The server runs as a separate
process (`session-graphql serve`), as in production.

    python bench/append.py [--calls 2000]
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from db.embedded import start_embedded_postgres
from db.migrate import upgrade

MESSAGE = {"role": "assistant", "content": [{"text": "The weather in Paris is 18°C and sunny. " * 8}]}
CREATE_MESSAGE = """
mutation($sessionId: String!, $agentId: String!, $message: MessageInput!) {
  createMessage(sessionId: $sessionId, agentId: $agentId, message: $message) { messageId }
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def summarize(name: str, seconds: list[float], floor: float | None) -> str:
    median = statistics.median(seconds) * 1e3
    p95 = statistics.quantiles(seconds, n=20)[18] * 1e3
    ratio = f"{median / floor:5.2f}x" if floor else "  1.00x"
    return f"{name:<8} median {median:7.3f} ms   p95 {p95:7.3f} ms   {ratio} raw"


async def bench_raw(libpq_url: str, session_id: str, agent_id: str, calls: int) -> list[float]:
    conn = await asyncpg.connect(libpq_url)
    statement = await conn.prepare(
        "INSERT INTO session_messages (session_id, tenant, agent_id, message_id, role, message,"
        " redact_message, created_at, updated_at)"
        " VALUES ($1, 'default', $2, $3, $4, $5::json, NULL, now(), now())"
    )
    timings = []
    for message_id in range(calls):
        start = time.perf_counter()
        await statement.fetch(session_id, agent_id, message_id, "assistant", json.dumps(MESSAGE))
        timings.append(time.perf_counter() - start)
    await conn.close()
    return timings


def bench_http(url: str, session_id: str, agent_id: str, calls: int) -> list[float]:
    timings = []
    with httpx.Client(timeout=30) as client:
        for message_id in range(calls):
            body = {
                "query": CREATE_MESSAGE,
                "variables": {
                    "sessionId": session_id,
                    "agentId": agent_id,
                    "message": {"messageId": message_id, "message": MESSAGE},
                },
            }
            start = time.perf_counter()
            response = client.post(url, json=body)
            timings.append(time.perf_counter() - start)
            assert "errors" not in response.json(), response.text
    return timings


def bench_client(url: str, session_id: str, agent_id: str, calls: int) -> list[float] | None:
    try:
        from strands.types.session import SessionMessage

        from client import GraphQLSessionRepository
    except ImportError:
        return None
    repo = GraphQLSessionRepository(url)
    timings = []
    for message_id in range(calls):
        message = SessionMessage.from_message(MESSAGE, message_id)  # type: ignore[arg-type]
        start = time.perf_counter()
        repo.create_message(session_id, agent_id, message)
        timings.append(time.perf_counter() - start)
    close: Callable[[], Any] | None = getattr(repo, "close", None)
    if close:
        close()
    return timings


def seed(url: str, session_id: str, agent_ids: list[str]) -> None:
    create_session = "mutation($s: SessionInput!) { createSession(session: $s) { sessionId } }"
    create_agent = (
        "mutation($s: String!, $a: AgentInput!) { createAgent(sessionId: $s, agent: $a) { agentId } }"
    )
    with httpx.Client(timeout=30) as client:
        client.post(url, json={"query": create_session, "variables": {"s": {"sessionId": session_id}}})
        for agent_id in agent_ids:
            agent = {"agentId": agent_id, "state": {}, "conversationManagerState": {}}
            client.post(url, json={"query": create_agent, "variables": {"s": session_id, "a": agent}})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sgq-bench-") as tmp:
        embedded = start_embedded_postgres(Path(tmp) / "pgdata")
        upgrade(embedded.url)
        port = free_port()
        env = {**os.environ, "DATABASE_URL": embedded.url, "SESSION_GRAPHQL_LOG_LEVEL": "warning"}
        server = subprocess.Popen(
            [sys.executable, "-m", "graphql_api.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/graphql"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start")
                time.sleep(0.1)

            session_id = f"bench-{uuid.uuid4().hex[:8]}"
            seed(url, session_id, ["raw", "http", "client", "warm"])
            libpq_url = embedded.url.replace("postgresql+asyncpg://", "postgresql://")
            # Warm up every path (connections, prepared statements, caches) before measuring.
            asyncio.run(bench_raw(libpq_url, session_id, "warm", 200))
            bench_http(url, session_id, "warm", 200)

            raw = asyncio.run(bench_raw(libpq_url, session_id, "raw", args.calls))
            http = bench_http(url, session_id, "http", args.calls)
            client = bench_client(url, session_id, "client", args.calls)
            floor = statistics.median(raw) * 1e3
            print(f"append of one ~400-byte message, {args.calls} calls each, same database, same run")
            print(summarize("raw", raw, None))
            print(summarize("http", http, floor))
            if client is not None:
                print(summarize("client", client, floor))
            else:
                print("client   (not measured: client package not importable)")
        finally:
            server.terminate()
            server.wait(timeout=10)
            embedded.stop()


if __name__ == "__main__":
    main()
