"""Liveness and readiness, and what clients see while the database is away."""

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import URL, make_url

from graphql_api.errors import UNAVAILABLE_MESSAGE
from graphql_api.settings import Settings
from tests.conftest import RunningServer, free_port

UNAVAILABLE = {"message": UNAVAILABLE_MESSAGE, "code": "SERVICE_UNAVAILABLE"}


@contextmanager
def serving(settings: Settings) -> Iterator[httpx.Client]:
    """The app under uvicorn, once it answers /health (it may never be ready)."""
    running = RunningServer(settings)
    running.thread.start()
    try:
        with httpx.Client(base_url=running.base_url, timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield client
    finally:
        running.stop()


def errors_of(client: httpx.Client, query: str) -> list[dict[str, Any]]:
    """Errors of a request; HTTP 503 when the server could not even read its API keys yet."""
    response = client.post("/graphql", json={"query": query})
    assert response.status_code in (200, 503), response.text
    assert "Traceback" not in response.text
    errors: list[dict[str, Any]] = response.json()["errors"]
    return [{"message": e["message"], "code": e["extensions"]["code"]} for e in errors]


READ = '{ session(sessionId: "any") { sessionId } }'
WRITE = 'mutation { createSession(session: {sessionId: "any"}) { sessionId } }'


@pytest.mark.parametrize(
    "database_url",
    [
        pytest.param("postgresql+asyncpg://nobody@127.0.0.1:1/x", id="port-refuses"),
        pytest.param(
            "postgresql+asyncpg://nobody@/x?host=/nonexistent/socket-dir",
            id="unix-socket-missing",
        ),
        pytest.param(
            "postgresql+asyncpg://nobody@db.invalid/x",
            id="host-unknown",
        ),
    ],
)
def test_unreachable_database_makes_server_live_but_not_ready_and_requests_retryable(
    database_url: str,
) -> None:
    with serving(Settings(database_url=database_url)) as client:
        health = client.get("/health")
        ready = client.get("/ready")
        read_errors = errors_of(client, READ)
        write_errors = errors_of(client, WRITE)

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 503
    assert read_errors == [UNAVAILABLE]
    assert write_errors == [UNAVAILABLE]


def test_ready_answers_503_within_seconds_when_the_database_never_answers() -> None:
    """A database that accepts connections but says nothing must not hang the readiness probe."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        with serving(Settings(database_url=f"postgresql+asyncpg://nobody@127.0.0.1:{port}/x")) as client:
            started = time.monotonic()
            ready = client.get("/ready")
            waited = time.monotonic() - started

    assert ready.status_code == 503
    assert waited < 5


def test_graphiql_is_not_served_when_turned_off() -> None:
    unreachable = "postgresql+asyncpg://nobody@127.0.0.1:1/x"
    with serving(Settings(database_url=unreachable, graphiql=False)) as client:
        page = client.get("/graphql", headers={"Accept": "text/html"})

    assert "graphiql" not in page.text.lower()
    assert page.status_code >= 400


class DatabaseLink:
    """A TCP relay to the test database that can be cut and restored, to stage an outage."""

    def __init__(self, upstream: URL) -> None:
        self.port = free_port()
        socket_dir = upstream.query.get("host")
        if isinstance(socket_dir, str) and socket_dir.startswith("/"):
            self._target: Any = f"{socket_dir}/.s.PGSQL.{upstream.port or 5432}"
            self._family = socket.AF_UNIX
        else:
            self._target = (upstream.host or "127.0.0.1", upstream.port or 5432)
            self._family = socket.AF_INET
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._up = threading.Event()
        self.restore()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.05)
        self._up.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one, as a database restart does."""
        self._up.clear()
        time.sleep(0.2)  # the accept loop notices and closes its socket
        with self._lock:
            for sock in self._open:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._up.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                server = socket.socket(self._family, socket.SOCK_STREAM)
                server.connect(self._target)
                with self._lock:
                    self._open += [client, server]
                for source, sink in ((client, server), (server, client)):
                    threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def test_server_reports_an_outage_and_recovers_when_the_database_returns(database_url: str) -> None:
    upstream = make_url(database_url)
    link = DatabaseLink(upstream)
    via_link = upstream.difference_update_query(["host"]).set(host="127.0.0.1", port=link.port)
    session_id = f"outage-{uuid.uuid4().hex[:8]}"
    read = f'{{ session(sessionId: "{session_id}") {{ sessionId }} }}'
    try:
        with serving(Settings(database_url=via_link.render_as_string(hide_password=False))) as client:
            assert client.get("/ready").status_code == 200
            created = client.post("/graphql", json={"query": WRITE.replace('"any"', f'"{session_id}"')})
            assert created.json() == {"data": {"createSession": {"sessionId": session_id}}}

            link.cut()
            during_ready = client.get("/ready").status_code
            during_errors = errors_of(client, read)

            link.restore()
            deadline = time.monotonic() + 10
            while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            after = client.post("/graphql", json={"query": read}).json()
    finally:
        link.cut()

    assert during_ready == 503
    assert during_errors == [UNAVAILABLE]
    assert after == {"data": {"session": {"sessionId": session_id}}}


def test_first_request_after_a_quiet_database_restart_succeeds(database_url: str) -> None:
    upstream = make_url(database_url)
    link = DatabaseLink(upstream)
    via_link = upstream.difference_update_query(["host"]).set(host="127.0.0.1", port=link.port)
    try:
        with serving(Settings(database_url=via_link.render_as_string(hide_password=False))) as client:
            assert client.get("/ready").status_code == 200

            link.cut()
            link.restore()
            after = client.post("/graphql", json={"query": READ}).json()
    finally:
        link.cut()

    assert after == {"data": {"session": None}}
