"""A PostgreSQL restart under load: retryable answers, nothing lost or doubled, one warning per outage."""

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from graphql import GraphQLError
from sqlalchemy.exc import DBAPIError, InterfaceError
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from client import GraphQLSessionError, GraphQLSessionRepository
from db.embedded import EmbeddedPostgres, start_embedded_postgres
from db.migrate import upgrade
from graphql_api.errors import ErrorCode, classify
from graphql_api.settings import Settings
from tests.conftest import RunningServer
from tests.test_cli import stop_postmasters
from tests.test_embedded_postgres import pg_ctl

WRITERS = 8
MESSAGES_EACH = 40


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, which it may restart."""
    data_dir = tmp_path / "pgdata"
    embedded = start_embedded_postgres(data_dir)
    try:
        upgrade(embedded.url)
        yield embedded
    finally:
        embedded.stop()
        stop_postmasters(data_dir)


def test_writes_through_a_database_restart_are_all_stored_once_and_the_outage_is_logged_once(
    own_database: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = RunningServer(Settings(database_url=own_database.url))
    server.start()
    failures: list[BaseException] = []
    started = threading.Barrier(WRITERS + 1)
    try:
        with GraphQLSessionRepository(server.url) as setup:
            setup.create_session(Session(session_id="restart", session_type=SessionType.AGENT))
            for n in range(WRITERS):
                agent = SessionAgent(agent_id=f"writer-{n}", state={}, conversation_manager_state={})
                setup.create_agent("restart", agent)

        def write(n: int) -> None:
            # Generous retries: a restart takes a second or two, and every create_message may be resent.
            with GraphQLSessionRepository(server.url, retries=12, backoff=0.05) as repository:
                started.wait()
                try:
                    for i in range(MESSAGES_EACH):
                        message = {"role": "user", "content": [{"text": f"{n}/{i}"}]}
                        repository.create_message("restart", f"writer-{n}", SessionMessage(message, i))  # type: ignore[arg-type]
                        time.sleep(0.01)
                except BaseException as error:
                    failures.append(error)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        started.wait()
        time.sleep(0.15)
        pg_ctl(own_database.data_dir, "-w", "-m", "fast", "-l", str(own_database.data_dir / "log"), "restart")
        for thread in threads:
            thread.join(120)

        with GraphQLSessionRepository(server.url) as reader:
            stored = {
                n: [m.message["content"][0]["text"] for m in reader.list_messages("restart", f"writer-{n}")]
                for n in range(WRITERS)
            }
    finally:
        server.stop()

    assert failures == []
    for n in range(WRITERS):
        assert stored[n] == [f"{n}/{i}" for i in range(MESSAGES_EACH)]
    unexpected = [r for r in caplog.records if r.name == "graphql_api.errors" and r.levelno >= logging.ERROR]
    assert unexpected == [], [r.getMessage() for r in unexpected]
    outages = [r for r in caplog.records if r.name == "db.availability" and r.levelno == logging.WARNING]
    assert 1 <= len(outages) <= 2, [r.getMessage() for r in outages]  # the restart, maybe its two halves
    assert "Traceback" not in "\n".join(r.getMessage() for r in outages)
    assert any(r.name == "db.availability" and "available again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "sqlstate", ["57P01", "57P02", "57P03", "08006", "08003", "53300"], ids=lambda state: state
)
def test_shutdown_startup_and_connection_sqlstates_are_service_unavailable(sqlstate: str) -> None:
    class DriverError(Exception):
        pass

    driver_error = DriverError("the database system is shutting down")
    driver_error.sqlstate = sqlstate  # type: ignore[attr-defined]
    wrapped = DBAPIError("SELECT 1", None, driver_error)

    assert classify(GraphQLError("x", original_error=wrapped)) is ErrorCode.SERVICE_UNAVAILABLE


def test_a_statement_timeout_is_not_an_outage() -> None:
    class QueryCanceled(Exception):
        sqlstate = "57014"

    wrapped = DBAPIError("UPDATE ...", None, QueryCanceled("canceling statement due to statement timeout"))

    assert classify(GraphQLError("x", original_error=wrapped)) is ErrorCode.STATEMENT_TIMEOUT


def test_a_connection_closed_mid_operation_is_service_unavailable() -> None:
    closed = InterfaceError("SELECT 1", None, Exception("connection is closed"))

    assert classify(GraphQLError("x", original_error=closed)) is ErrorCode.SERVICE_UNAVAILABLE


def test_the_client_sees_retryable_errors_during_the_outage(own_database: EmbeddedPostgres) -> None:
    server = RunningServer(Settings(database_url=own_database.url))
    server.start()
    try:
        pg_ctl(own_database.data_dir, "-w", "-m", "fast", "stop")
        with (
            GraphQLSessionRepository(server.url, retries=0) as repository,
            pytest.raises(GraphQLSessionError) as raised,
        ):
            repository.read_session("anything")
        # restart reads the options the server was started with (its socket directory); start would not.
        pg_ctl(own_database.data_dir, "-w", "-l", str(own_database.data_dir / "log"), "restart")
    finally:
        server.stop()
    assert raised.value.code == "SERVICE_UNAVAILABLE"
    assert raised.value.retryable
