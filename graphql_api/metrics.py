"""The server's Prometheus metrics, and the listener that serves them on ``/metrics``.

Requests (by operation and outcome, and their durations) are recorded by the endpoint from the
request log's line, so the log and the metrics never disagree. The pool's use is sampled every
second; what is read from the database (the rollups' backlog and lag, stored rows per tenant)
every ``MetricsSettings.refresh_seconds``, by ``graphql_api.background``.

With ``serve --workers N`` each worker writes its values to files in a directory made for the
run (prometheus-client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``), and the supervisor's
listener adds them up: counters and histograms summed over workers alive or gone, the pool's
gauges summed over live workers, the database's figures taken from the worker that read them last.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import start_http_server

from db.analytics.rollups import Backlog
from db.analytics.stored_rows import StoredRows
from graphql_api.errors import ErrorCode
from graphql_api.request_log import RequestLine

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
MOST_OPERATIONS = 100
"""Distinct operation names one process labels requests with; later names count as ``other``, so
clients naming operations freely cannot grow the series without bound."""
ANONYMOUS = "anonymous"
OTHER = "other"
DURATION_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

requests = Counter(
    "session_graphql_requests",
    "GraphQL requests by operation name (anonymous; other past a cap) and outcome (ok or the error code).",
    ["operation", "outcome"],
)
request_duration = Histogram(
    "session_graphql_request_duration_seconds",
    "Time from a request's arrival to its answer, by operation.",
    ["operation"],
    buckets=DURATION_BUCKETS,
)
statement_timeouts = Counter(
    "session_graphql_statement_timeouts",
    "Requests in which PostgreSQL cancelled a statement for running past the statement timeout.",
)
rate_limited = Counter(
    "session_graphql_rate_limited_requests",
    "Requests refused with HTTP 429: their caller's rate or heavy requests at once.",
)
pool_in_use = Gauge(
    "session_graphql_db_pool_connections_in_use",
    "Connections of the database pool handed out now.",
    multiprocess_mode="livesum",
)
pool_waiting = Gauge(
    "session_graphql_db_pool_waiting",
    "Work waiting for a connection of the database pool.",
    multiprocess_mode="livesum",
)
rollup_backlog_writes = Gauge(
    "session_graphql_rollup_backlog_writes",
    "Writes queued for the rollups' fold.",
    multiprocess_mode="mostrecent",
)
rollup_backlog_buckets = Gauge(
    "session_graphql_rollup_backlog_buckets",
    "Buckets (tenant and 15 minutes) queued for the rollups' fold.",
    multiprocess_mode="mostrecent",
)
rollup_lag = Gauge(
    "session_graphql_rollup_lag_seconds",
    "Age of the oldest write the rollups' fold has not read yet; 0 when the queue is empty.",
    multiprocess_mode="mostrecent",
)
stored_sessions = Gauge(
    "session_graphql_stored_sessions",
    "Sessions stored per tenant, as PostgreSQL's statistics estimate them (as of the last ANALYZE).",
    ["tenant"],
    multiprocess_mode="mostrecent",
)
stored_messages = Gauge(
    "session_graphql_stored_messages",
    "Messages stored per tenant, as PostgreSQL's statistics estimate them (as of the last ANALYZE).",
    ["tenant"],
    multiprocess_mode="mostrecent",
)
subscriptions_active = Gauge(
    "session_graphql_subscriptions_active",
    "GraphQL subscriptions open now.",
    multiprocess_mode="livesum",
)
subscriptions_closed_slow = Counter(
    "session_graphql_subscriptions_closed_slow",
    "Subscriptions closed because their subscriber did not keep up (its buffer stayed full).",
)
listener_reconnects = Counter(
    "session_graphql_listener_reconnects",
    "Times the LISTEN connection was established again after a loss.",
)
retention_deleted_sessions = Counter(
    "session_graphql_retention_deleted_sessions",
    "Sessions deleted by the retention policy.",
)
retention_deleted_messages = Counter(
    "session_graphql_retention_deleted_messages",
    "Messages deleted by the retention policy (with their sessions or alone).",
)

_operations: set[str] = set()
_tenants_shown: set[str] = set()


def operation_label(operation: str | None) -> str:
    if operation is None:
        return ANONYMOUS
    if operation in _operations:
        return operation
    if len(_operations) >= MOST_OPERATIONS:
        return OTHER
    _operations.add(operation)
    return operation


def record_request(line: RequestLine, status: int, seconds: float) -> None:
    """One request, as its log line has it."""
    operation = operation_label(line.operation)
    requests.labels(operation, line.outcome).inc()
    request_duration.labels(operation).observe(seconds)
    if status == 429:
        rate_limited.inc()


def record_statement_timeout(codes: list[object]) -> None:
    if ErrorCode.STATEMENT_TIMEOUT.value in codes:
        statement_timeouts.inc()


def record_pool(in_use: int, waiting: int) -> None:
    pool_in_use.set(in_use)
    pool_waiting.set(waiting)


def record_backlog(backlog: Backlog) -> None:
    rollup_backlog_writes.set(backlog.entries)
    rollup_backlog_buckets.set(backlog.buckets)
    lag = 0.0 if backlog.oldest is None else (datetime.now(UTC) - backlog.oldest).total_seconds()
    rollup_lag.set(max(lag, 0.0))


def record_stored_rows(stored: StoredRows) -> None:
    # A tenant no longer among the most common values is shown as 0 rather than at its last figure
    # (in multiprocess mode a series cannot be removed from another process's file).
    for tenant in _tenants_shown - stored.sessions.keys():
        stored_sessions.labels(tenant).set(0)
    for tenant in _tenants_shown - stored.messages.keys():
        stored_messages.labels(tenant).set(0)
    for tenant, count in stored.sessions.items():
        stored_sessions.labels(tenant).set(count)
    for tenant, count in stored.messages.items():
        stored_messages.labels(tenant).set(count)
    _tenants_shown.update(stored.sessions, stored.messages)


def count_retention_deletions(sessions: int, messages: int) -> None:
    """For the retention policy: what one round of it deleted."""
    retention_deleted_sessions.inc(sessions)
    retention_deleted_messages.inc(messages)


def _registry() -> CollectorRegistry:
    """This process's metrics, or, in multiprocess mode, the sum of every worker's files."""
    directory = os.environ.get(MULTIPROCESS_DIR)
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def serve_metrics(host: str, port: int) -> WSGIServer:
    """``/metrics`` (any path, as prometheus-client serves it) on ``host:port``, from a thread.

    Raises OSError when the address cannot be listened on. Shut the server down when done."""
    server, _ = start_http_server(port, host, registry=_registry())
    return server


@contextmanager
def multiprocess_directory() -> Iterator[str]:
    """A fresh directory for the workers' metric files while the block runs, named to them by
    ``PROMETHEUS_MULTIPROC_DIR`` (workers are started after this, and read it when they import
    prometheus-client); removed after, so no run adds up files a previous one left."""
    directory = tempfile.mkdtemp(prefix="session-graphql-metrics-")
    previous = os.environ.get(MULTIPROCESS_DIR)
    os.environ[MULTIPROCESS_DIR] = directory
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_DIR, None)
        else:
            os.environ[MULTIPROCESS_DIR] = previous
        shutil.rmtree(directory, ignore_errors=True)


def mark_worker_gone(pid: int) -> None:
    """Drops a gone worker's live gauges (its pool), keeping its counts."""
    if os.environ.get(MULTIPROCESS_DIR):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
