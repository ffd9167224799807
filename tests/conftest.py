"""Shared fixtures: a real PostgreSQL (embedded, or TEST_DATABASE_URL), migrated once, and a real
uvicorn server on a free port in this process, so tests can also watch the server's SQL."""

import asyncio
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import event

from db.embedded import start_embedded_postgres
from db.engine import Database
from db.migrate import upgrade
from graphql_api.app import create_app
from graphql_api.background import TASK_PREFIX
from graphql_api.settings import Settings, normalize_database_url

GraphQLCall = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated database: TEST_DATABASE_URL when set, else a fresh embedded PostgreSQL."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        url = normalize_database_url(configured)
        upgrade(url)
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="sgq-") as tmp:
        embedded = start_embedded_postgres(Path(tmp) / "pgdata")
        try:
            upgrade(embedded.url)
            yield embedded.url
        finally:
            embedded.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sent_in_background() -> bool:
    """Whether the statement being sent comes from the server's background work (the rollups'
    fold, key refreshes), not from a request: asked from a SQLAlchemy event."""
    task = asyncio.current_task()
    return task is not None and task.get_name().startswith(TASK_PREFIX)


class RunningServer:
    """A uvicorn server in a background thread, serving ``create_app``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.port = free_port()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/graphql"

    @property
    def database(self) -> Database:
        database: Database = self.app.state.services.database
        return database

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("test server did not become ready")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @contextmanager
    def count_statements(self) -> Iterator[list[str]]:
        """Collects the SQL the server sends for requests while the block runs.

        The replica's own background work (re-reading API keys every few seconds, folding the
        rollups) is left out.
        """
        statements: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if not sent_in_background() and "api_keys" not in statement:
                statements.append(statement)

        engine = self.database.engine.sync_engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            yield statements
        finally:
            event.remove(engine, "before_cursor_execute", record)


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[RunningServer]:
    running = RunningServer(Settings(database_url=database_url))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def graphql(http: httpx.Client) -> GraphQLCall:
    """POSTs a document (with variables) to /graphql and returns the decoded response body."""

    def call(query: str, variables: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
        response = http.post("/graphql", json={"query": query, "variables": variables or {}, **more})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return call


@pytest.fixture
def new_id() -> Callable[[str], str]:
    """Unique ids, so tests share one database without seeing each other's rows."""
    return lambda prefix="id": f"{prefix}-{uuid.uuid4().hex[:12]}"
