"""Prometheus metrics on ``serve --metrics-port``: exact counts after known traffic, with one worker
and summed over two, the database's figures, and the listener's address."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client import REGISTRY, multiprocess
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from db.analytics import rollups
from db.engine import Database, create_engine
from db.migrate import upgrade
from graphql_api import metrics
from graphql_api.settings import Limits, MetricsSettings, Settings
from tests.conftest import GraphQLCall, RunningServer, free_port
from tests.metrics_server import Samples, Served, analyze, requests_by_label, scrape, value
from tests.scratch_database import scratch_database
from tests.secured import secured_server
from tests.server_process import REPO, SERVE, server_env

CREATE = "mutation Create($id: String!) { createSession(session: {sessionId: $id}) { sessionId } }"
APPEND = """
mutation Append($s: String!, $m: [MessageInput!]!) {
  appendMessages(sessionId: $s, agentId: "support", messages: $m) { messageId }
}"""
AGENT = """
mutation Agent($s: String!) {
  createAgent(sessionId: $s, agent: {agentId: "support", state: {}, conversationManagerState: {}}) { agentId }
}"""
PING = "query Ping { __typename }"


@pytest.fixture
def scratch_url(database_url: str) -> Iterator[str]:
    with scratch_database(database_url) as url:
        upgrade(url)
        yield url


def _backlog(url: str) -> rollups.Backlog:
    async def run() -> rollups.Backlog:
        database = Database(create_engine(url))
        try:
            return await database.run(rollups.backlog)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _until(port: int, ready: Callable[[Samples], bool]) -> Samples:
    deadline = time.monotonic() + 20
    while True:
        samples = scrape(port)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_counts_after_known_requests_are_exact_by_operation_and_outcome(
    scratch_url: str, tmp_path: Path
) -> None:
    served = Served(
        scratch_url,
        tmp_path / "serve.log",
        # The fold never runs, so the queue it would empty stays as the writes left it.
        env={"SESSION_GRAPHQL_METRICS_REFRESH_SECONDS": "1", "SESSION_GRAPHQL_ROLLUP_FOLD_SECONDS": "0"},
    )
    try:
        assert "metrics at http://127.0.0.1:" in served.output()
        before = scrape(served.metrics_port)
        for tenant, ids in (("acme", ["a1", "a2", "a3"]), ("globex", ["g1", "g2"])):
            for session_id in ids:
                assert served.post(CREATE, {"id": session_id}, tenant).json()["data"]
        assert served.post(AGENT, {"s": "a1"}).json()["data"]
        message = {"role": "user", "content": [{"text": "hello"}]}
        batch = [{"messageId": n, "message": message} for n in range(4)]
        assert served.post(APPEND, {"s": "a1", "m": batch}).json()["data"]
        for _ in range(3):
            assert served.post(PING).json() == {"data": {"__typename": "Query"}}
        for _ in range(2):
            assert served.post("{ __typename }").status_code == 200
        missing = served.post(APPEND, {"s": "no-such-session", "m": batch}).json()
        assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        bad = served.http.post("/graphql", content=b"{not json", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400

        analyze(scratch_url)
        after = _until(
            served.metrics_port, lambda s: value(s, "session_graphql_stored_sessions", tenant="acme") == 3
        )
        queued = _backlog(scratch_url)
    finally:
        served.stop()

    assert requests_by_label(before) == {}
    assert requests_by_label(after) == {
        ("Create", "ok"): 5,
        ("Agent", "ok"): 1,
        ("Append", "ok"): 1,
        ("Append", "NOT_FOUND"): 1,
        ("Ping", "ok"): 3,
        ("anonymous", "ok"): 2,
        ("anonymous", "BAD_REQUEST"): 1,
    }
    durations = {
        operation: value(after, "session_graphql_request_duration_seconds_count", operation=operation)
        for operation in ("Create", "Agent", "Append", "Ping", "anonymous")
    }
    assert durations == {"Create": 5, "Agent": 1, "Append": 2, "Ping": 3, "anonymous": 3}
    assert value(after, "session_graphql_request_duration_seconds_bucket", operation="Ping", le="+Inf") == 3
    assert value(after, "session_graphql_rate_limited_requests_total") == 0
    assert value(after, "session_graphql_statement_timeouts_total") == 0
    assert value(after, "session_graphql_db_pool_connections_in_use") is not None
    assert value(after, "session_graphql_db_pool_waiting") == 0
    # Estimated from PostgreSQL's statistics, exact here: ANALYZE read every row of small tables.
    assert value(after, "session_graphql_stored_sessions", tenant="acme") == 3
    assert value(after, "session_graphql_stored_sessions", tenant="globex") == 2
    assert value(after, "session_graphql_stored_messages", tenant="acme") == 4
    assert queued.entries > 0
    assert value(after, "session_graphql_rollup_backlog_writes") == queued.entries
    assert value(after, "session_graphql_rollup_backlog_buckets") == queued.buckets
    lag = value(after, "session_graphql_rollup_lag_seconds")
    assert lag is not None and lag > 0
    assert value(after, "session_graphql_retention_deleted_sessions_total") == 0


def _worker_counts(directory: Path) -> dict[str, float]:
    """Requests counted by each worker, read from its own file of the multiprocess directory."""
    counts = {}
    for file in directory.glob("counter_*.db"):
        merged = multiprocess.MultiProcessCollector.merge([str(file)], accumulate=False)  # type: ignore[no-untyped-call]
        counts[file.stem] = sum(
            sample.value
            for family in merged
            if family.name == "session_graphql_requests"
            for sample in family.samples
            if sample.name == "session_graphql_requests_total"
        )
    return counts


def _workers(served: Served) -> set[int]:
    """The worker processes alive now (a killed one is a zombie until the supervisor reaps it)."""
    alive = set()
    for child in psutil.Process(served.process.pid).children():
        with contextlib.suppress(psutil.Error):
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                alive.add(child.pid)
    return alive


def test_two_workers_counts_are_summed_across_them_and_kept_when_one_dies(
    scratch_url: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "tmp"
    run_dir.mkdir()
    served = Served(scratch_url, tmp_path / "serve.log", "--workers", "2", env={"TMPDIR": str(run_dir)})
    sent = 0
    try:
        (directory,) = run_dir.glob("session-graphql-metrics-*")

        def ping(_: int) -> int:
            # A connection each, so the kernel spreads them over both workers' accepts.
            answer = httpx.post(f"http://127.0.0.1:{served.port}/graphql", json={"query": PING}, timeout=30)
            return answer.status_code

        with ThreadPoolExecutor(8) as pool:
            for _ in range(10):
                assert list(pool.map(ping, range(20))) == [200] * 20
                sent += 20
                by_worker = _worker_counts(directory)
                if len(by_worker) == 2 and all(by_worker.values()):
                    break
        samples = scrape(served.metrics_port)

        (killed, _) = workers = sorted(_workers(served))
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(_workers(served) - set(workers)) < 1:  # the supervisor starts another
            assert time.monotonic() < deadline, served.output()
            time.sleep(0.1)
        while served.http.get("/ready").status_code != 200:
            time.sleep(0.1)
        live_gauges = {file.name for file in directory.glob("gauge_livesum_*.db")}
        after_death = scrape(served.metrics_port)
    finally:
        served.stop()

    assert len(by_worker) == 2 and all(by_worker.values()), by_worker
    # The dead worker's requests still count; its share of the pool no longer does.
    assert requests_by_label(after_death) == {("Ping", "ok"): sent}
    assert f"gauge_livesum_{killed}.db" not in live_gauges
    assert sum(by_worker.values()) == sent
    assert requests_by_label(samples) == {("Ping", "ok"): sent}
    assert value(samples, "session_graphql_request_duration_seconds_count", operation="Ping") == sent
    assert list(run_dir.iterdir()) == [], "the metrics directory outlived the server"
    assert "Traceback" not in served.output()


def test_a_taken_metrics_port_is_one_line_and_a_failed_start(scratch_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = subprocess.run(
            [*SERVE, "--port", str(free_port()), "--metrics-port", str(port)],
            env=server_env(scratch_url),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert finished.returncode != 0
    assert finished.stderr.strip().splitlines() == [
        f"session-graphql: cannot listen on 127.0.0.1:{port} for metrics: address already in use"
    ]


def test_requests_refused_for_their_rate_are_counted(database_url: str) -> None:
    settings = Settings(
        limits=replace(Limits(), rate_per_second=1.0, rate_burst=2), metrics=MetricsSettings(port=free_port())
    )
    counted = "session_graphql_rate_limited_requests_total"
    with secured_server(database_url, settings) as secured:
        key = secured.key("reader", tenant="metered")
        before = REGISTRY.get_sample_value(counted) or 0.0
        statuses = [secured.post(PING, key=key).status_code for _ in range(5)]
        after = REGISTRY.get_sample_value(counted) or 0.0
    assert statuses.count(429) >= 2
    assert after - before == statuses.count(429)


def test_operation_names_past_the_cap_count_as_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_operations", set())
    monkeypatch.setattr(metrics, "MOST_OPERATIONS", 2)
    labels = [metrics.operation_label(name) for name in ("A", "B", "C", "A", None, "D", "B")]
    assert labels == ["A", "B", "other", "A", "anonymous", "other", "B"]


def test_a_statement_cancelled_for_its_time_is_counted(scratch_url: str) -> None:
    settings = Settings(
        database_url=scratch_url,
        limits=replace(Limits(), statement_timeout_ms=300),
        metrics=MetricsSettings(port=free_port()),
    )
    server = RunningServer(settings)
    server.start()
    look = 'query Look { session(sessionId: "x") { sessionId } }'

    async def blocked() -> httpx.Response:
        # The table locked by another transaction: the server's read waits past its timeout.
        engine = create_async_engine(scratch_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
                return await asyncio.to_thread(httpx.post, server.url, json={"query": look}, timeout=30)
        finally:
            await engine.dispose()

    timeouts = "session_graphql_statement_timeouts_total"
    labels = {"operation": "Look", "outcome": "STATEMENT_TIMEOUT"}
    try:
        before = REGISTRY.get_sample_value(timeouts) or 0.0
        requests_before = REGISTRY.get_sample_value("session_graphql_requests_total", labels) or 0.0
        answer = asyncio.run(blocked())
        after = REGISTRY.get_sample_value(timeouts) or 0.0
        requests = REGISTRY.get_sample_value("session_graphql_requests_total", labels) or 0.0
    finally:
        server.stop()
    assert answer.json()["errors"][0]["extensions"]["code"] == "STATEMENT_TIMEOUT"
    assert after - before == 1
    assert requests - requests_before == 1


def test_the_pool_gauges_show_connections_held_and_work_waiting(scratch_url: str) -> None:
    settings = Settings(
        database_url=scratch_url, pool_size=2, max_overflow=0, metrics=MetricsSettings(port=free_port())
    )
    server = RunningServer(settings)
    server.start()
    look = 'query Look { session(sessionId: "x") { sessionId } }'

    async def while_locked() -> tuple[float | None, float | None, list[int]]:
        engine = create_async_engine(scratch_url)
        try:
            async with engine.begin() as conn:
                # Three reads wait on the lock: two hold the pool's two connections, one waits.
                await conn.execute(text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
                reads = [
                    asyncio.to_thread(httpx.post, server.url, json={"query": look}, timeout=30)
                    for _ in range(3)
                ]
                pending = asyncio.gather(*reads)
                await asyncio.sleep(2.5)  # the gauges are sampled every second
                held = REGISTRY.get_sample_value("session_graphql_db_pool_connections_in_use")
                waiting = REGISTRY.get_sample_value("session_graphql_db_pool_waiting")
            answers = await pending
            return held, waiting, [answer.status_code for answer in answers]
        finally:
            await engine.dispose()

    try:
        held, waiting, statuses = asyncio.run(while_locked())
        # Back to idle at a later sample (the fold and the key refresh borrow a connection briefly).
        deadline = time.monotonic() + 10
        while True:
            after_in_use = REGISTRY.get_sample_value("session_graphql_db_pool_connections_in_use")
            after_waiting = REGISTRY.get_sample_value("session_graphql_db_pool_waiting")
            if (after_in_use, after_waiting) == (0, 0) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        server.stop()
    assert statuses == [200] * 3
    assert held == 2
    assert waiting is not None and waiting >= 1
    assert (after_in_use, after_waiting) == (0, 0)


def test_without_a_metrics_port_nothing_is_recorded(graphql: GraphQLCall) -> None:
    assert graphql("query Unmetered { __typename }") == {"data": {"__typename": "Query"}}

    labels = {"operation": "Unmetered", "outcome": "ok"}
    assert REGISTRY.get_sample_value("session_graphql_requests_total", labels) is None
