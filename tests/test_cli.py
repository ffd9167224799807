"""The ``session-graphql`` command, run as users run it: in its own process."""

import asyncio
import io
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import httpx
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from db.migrate import alembic_config
from graphql_api.cli.main import main
from tests.conftest import free_port
from tests.scratch_database import scratch_database

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "graphql_api.cli"]
CREATE = 'mutation { createSession(session: {sessionId: "kept"}) { sessionId sessionType } }'
READ = '{ session(sessionId: "kept") { sessionId sessionType } }'


def clean_env(**extra: str) -> dict[str, str]:
    """This environment minus the server's own variables, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("SESSION_GRAPHQL_")
    }
    return {**env, **extra}


def in_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``session-graphql`` with ``args`` run in this process, in ``clean_env(**env)``, as a finished
    process: its exit status and its output.

    For the tests that run a command many times, where a process each costs a second or more of
    start-up; they still run it in a process of its own besides. An exception the command lets out
    fails the test here, where a process would have printed its traceback.
    """
    # Bytes underneath, as in a process: export writes its records to sys.stdout.buffer.
    written, err = io.BytesIO(), io.StringIO()
    out = io.TextIOWrapper(written, encoding="utf-8")
    with (
        mock.patch.dict(os.environ, clean_env(**env), clear=True),
        redirect_stdout(out),
        redirect_stderr(err),
    ):
        try:
            main(list(args))
            status = 0
        except SystemExit as stopped:
            # As the interpreter ends a process: a message goes to stderr with status 1.
            if isinstance(stopped.code, str):
                print(stopped.code, file=err)
                status = 1
            else:
                status = stopped.code or 0
    out.flush()
    return subprocess.CompletedProcess([*CLI, *args], status, written.getvalue().decode(), err.getvalue())


def postmasters_of(data_dir: Path) -> list[psutil.Process]:
    """Running PostgreSQL servers whose data directory is ``data_dir``."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and str(data_dir.resolve()) in cmdline:
            found.append(process)
    return found


def stop_postmasters(data_dir: Path) -> None:
    """Stops the servers a failed test left running in ``data_dir``."""
    for postmaster in postmasters_of(data_dir):
        postmaster.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        try:
            postmaster.wait(10)
        except psutil.TimeoutExpired:
            postmaster.kill()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A new embedded-database directory; a server a failed test left running in it is stopped."""
    path = tmp_path / "pgdata"
    yield path
    stop_postmasters(path)


class Served:
    """``session-graphql serve`` in a child process, its output in a file."""

    def __init__(self, data_dir: Path, log: Path, *more: str) -> None:
        self.port = free_port()
        self.log = log
        with log.open("w") as output:
            self.process = subprocess.Popen(
                [*CLI, "serve", "--data-dir", str(data_dir), "--port", str(self.port), *more],
                env=clean_env(),
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                if self.client.get("/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"serve did not become ready:\n{self.output()}")

    def graphql(self, query: str) -> object:
        response = self.client.post("/graphql", json={"query": query})
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self, how: signal.Signals) -> int:
        self.process.send_signal(how)
        return self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def serve(data_dir: Path) -> Iterator[list[Served]]:
    """Starts servers with ``Served(...)`` appended here; kills whatever is left at the end."""
    started: list[Served] = []
    yield started
    for served in started:
        served.close()


def start(started: list[Served], data_dir: Path, name: str, *more: str) -> Served:
    served = Served(data_dir, data_dir.parent / f"{name}.log", *more)
    started.append(served)
    served.wait_ready()
    return served


def test_serve_without_database_url_runs_graphiql_on_embedded_postgres_and_stops_on_ctrl_c(
    serve: list[Served], data_dir: Path
) -> None:
    served = start(serve, data_dir, "first")
    health = served.client.get("/health")
    ide = served.client.get("/graphql", headers={"Accept": "text/html"})
    home = served.client.get("/", follow_redirects=False)
    created = served.graphql(CREATE)
    running_postmasters = postmasters_of(data_dir)

    code = served.stop(signal.SIGINT)

    output = served.output()
    assert f"GraphiQL at http://127.0.0.1:{served.port}/graphql" in output
    assert str(data_dir) in output
    assert health.status_code == 200
    assert ide.status_code == 200
    assert "graphiql" in ide.text.lower()
    assert home.status_code == 200  # the conversation viewer (tests/test_viewer_page.py)
    assert "<title>Conversations" in home.text
    assert created == {"data": {"createSession": {"sessionId": "kept", "sessionType": "AGENT"}}}
    assert len(running_postmasters) == 1
    assert code in (0, -signal.SIGINT, 128 + signal.SIGINT), output
    assert "Traceback" not in output
    assert postmasters_of(data_dir) == []
    assert not (data_dir / "postmaster.pid").exists()


def test_second_start_with_the_same_data_dir_finds_the_first_runs_sessions(
    serve: list[Served], data_dir: Path
) -> None:
    first = start(serve, data_dir, "first")
    assert first.graphql(CREATE) == {"data": {"createSession": {"sessionId": "kept", "sessionType": "AGENT"}}}
    # Container runtimes stop with SIGTERM rather than Ctrl-C.
    first_code = first.stop(signal.SIGTERM)
    assert postmasters_of(data_dir) == []

    second = start(serve, data_dir, "second")
    found = second.graphql(READ)
    second_code = second.stop(signal.SIGINT)

    assert found == {"data": {"session": {"sessionId": "kept", "sessionType": "AGENT"}}}
    assert first_code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), first.output()
    assert second_code in (0, -signal.SIGINT, 128 + signal.SIGINT), second.output()
    assert "Traceback" not in first.output() + second.output()
    assert postmasters_of(data_dir) == []


def test_two_servers_share_one_data_dir_and_the_database_outlives_the_first_to_stop(
    serve: list[Served], data_dir: Path
) -> None:
    first = start(serve, data_dir, "first")
    second = start(serve, data_dir, "second")
    assert len(postmasters_of(data_dir)) == 1

    first.stop(signal.SIGINT)
    still_ready = second.client.get("/ready").status_code
    created = second.graphql(CREATE)
    second.stop(signal.SIGINT)

    assert still_ready == 200
    assert created == {"data": {"createSession": {"sessionId": "kept", "sessionType": "AGENT"}}}
    assert postmasters_of(data_dir) == []


def test_serve_with_workers_answers_from_each_process_and_stops_them_all(
    serve: list[Served], data_dir: Path
) -> None:
    served = start(serve, data_dir, "workers", "--workers", "2")
    workers = [
        child
        for child in psutil.Process(served.process.pid).children()
        if "spawn_main" in " ".join(child.cmdline())
    ]
    # New connections, so that the kernel spreads them over both processes' accepts.
    answers = [
        httpx.post(f"http://127.0.0.1:{served.port}/graphql", json={"query": READ}).json() for _ in range(20)
    ]
    created = served.graphql(CREATE)
    found = served.graphql(READ)

    code = served.stop(signal.SIGTERM)

    assert len(workers) == 2
    assert answers == [{"data": {"session": None}}] * 20
    assert created == {"data": {"createSession": {"sessionId": "kept", "sessionType": "AGENT"}}}
    assert found == {"data": {"session": {"sessionId": "kept", "sessionType": "AGENT"}}}
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), served.output()
    assert not any(worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE for worker in workers)
    assert "Traceback" not in served.output()
    assert postmasters_of(data_dir) == []


def test_sighup_stops_serve_and_its_embedded_postgres_as_ctrl_c_does(
    serve: list[Served], data_dir: Path
) -> None:
    served = start(serve, data_dir, "hung-up")
    created = served.graphql(CREATE)
    [postmaster] = postmasters_of(data_dir)

    # What a closing terminal sends; uvicorn handles only SIGINT and SIGTERM.
    code = served.stop(signal.SIGHUP)

    assert created == {"data": {"createSession": {"sessionId": "kept", "sessionType": "AGENT"}}}
    assert code in (0, 128 + signal.SIGHUP), served.output()
    assert "Traceback" not in served.output()
    postmaster.wait(10)
    assert postmasters_of(data_dir) == []
    assert not (data_dir / "postmaster.pid").exists()


class InATerminal(Served):
    """``Served``, but run from a terminal: its output goes to a pseudo-terminal (read here), and it
    and its workers are one process group, as a shell's job is."""

    def __init__(self, data_dir: Path, *more: str) -> None:
        self.port = free_port()
        self.terminal, screen = pty.openpty()
        self.shown = bytearray()
        self.stop_reading = threading.Event()
        self.process = subprocess.Popen(
            [*CLI, "serve", "--data-dir", str(data_dir), "--port", str(self.port), *more],
            env=clean_env(),
            cwd=REPO,
            stdin=screen,
            stdout=screen,
            stderr=screen,
            start_new_session=True,
        )
        os.close(screen)
        # Read all along: a full terminal would block the server at its next line of log.
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def _read(self) -> None:
        while not self.stop_reading.is_set():
            if select.select([self.terminal], [], [], 0.1)[0]:
                try:
                    self.shown += os.read(self.terminal, 65536)
                except OSError:
                    return

    def output(self) -> str:
        return self.shown.decode(errors="replace")

    def close_terminal(self) -> None:
        """The window closes: output goes nowhere, and the shell passes SIGHUP on to its job, then
        the kernel sends it again when the shell exits."""
        self.stop_reading.set()
        self.reader.join()
        os.close(self.terminal)
        for _ in range(2):
            os.killpg(self.process.pid, signal.SIGHUP)
            time.sleep(0.05)

    def close(self) -> None:
        self.client.close()
        if not self.stop_reading.is_set():
            self.stop_reading.set()
            self.reader.join()
            os.close(self.terminal)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_closing_the_terminal_stops_serve_its_workers_and_its_embedded_postgres(
    data_dir: Path, workers: str
) -> None:
    served = InATerminal(data_dir, "--workers", workers)
    try:
        served.wait_ready()
        created = served.graphql(CREATE)
        server = psutil.Process(served.process.pid)
        processes = [server, *server.children(), *postmasters_of(data_dir)]
        shown = served.output()

        served.close_terminal()
        code = served.process.wait(timeout=60)
    finally:
        served.close()

    assert created == {"data": {"createSession": {"sessionId": "kept", "sessionType": "AGENT"}}}
    assert "GraphiQL at" in shown
    assert code in (0, 128 + signal.SIGHUP), shown
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert [process for process in alive if process.status() != psutil.STATUS_ZOMBIE] == []
    assert postmasters_of(data_dir) == []
    assert not (data_dir / "postmaster.pid").exists()


def test_workers_must_be_a_positive_number() -> None:
    result = subprocess.run(
        [*CLI, "serve", "--workers", "0"], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "--workers: must be a number of processes from 1 to 256, or auto, not '0'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("port", ["abc", "0", "65536", "-1", "8000.5"])
def test_a_port_that_is_no_port_is_one_clear_line(port: str) -> None:
    result = subprocess.run(
        [*CLI, "serve", f"--port={port}"], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert f"--port: must be a port number from 1 to 65535, not {port!r}" in result.stderr
    assert "_port" not in result.stderr and "Traceback" not in result.stderr


def test_version_names_the_installed_package() -> None:
    from importlib import metadata

    result = subprocess.run([*CLI, "--version"], env=clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"session-graphql {metadata.version('strands-graphql-session-store')}"


@pytest.mark.parametrize(
    ("command", "explained"),
    [
        (["token", "create"], ["--role {reader,writer,admin}", "reader (queries only)", "admin (also"]),
        (["token", "revoke"], ["the key's label, as `token list` shows it"]),
    ],
)
def test_every_argument_has_help(command: list[str], explained: list[str]) -> None:
    result = subprocess.run(
        [*CLI, *command, "--help"], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    shown = " ".join(result.stdout.split())
    for words in explained:
        assert words in shown


def alembic_version(url: str) -> list[str]:
    async def read() -> list[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("postgresql+asyncpg://unused/x")).get_current_head()
    assert head is not None
    return head


def test_migrate_with_database_url_brings_the_database_to_head_and_repeats_harmlessly(
    database_url: str,
) -> None:
    with scratch_database(database_url) as url:
        pasted = url.replace("postgresql+asyncpg://", "postgres://", 1)
        runs = [
            subprocess.run(
                [*CLI, "migrate"],
                env=clean_env(DATABASE_URL=pasted),
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            for _ in range(2)
        ]
        version = alembic_version(url)

    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "session-graphql: database migrated" in run.stdout
    assert version == [head_revision()]


def test_migrate_without_database_url_migrates_the_embedded_database_and_stops_it(data_dir: Path) -> None:
    run = subprocess.run(
        [*CLI, "migrate", "--data-dir", str(data_dir)],
        env=clean_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
    )

    assert run.returncode == 0, run.stderr
    assert f"embedded database in {data_dir} migrated" in run.stdout
    assert postmasters_of(data_dir) == []
    assert (data_dir / "PG_VERSION").exists()


def test_export_schema_to_stdout_prints_the_committed_sdl() -> None:
    run = subprocess.run(
        [*CLI, "export-schema", "-"], env=clean_env(), cwd=REPO, capture_output=True, text=True
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout == (REPO / "schema.graphql").read_text(encoding="utf-8")


def test_export_schema_writes_the_sdl_to_the_named_file(tmp_path: Path) -> None:
    target = tmp_path / "exported.graphql"

    run = subprocess.run(
        [*CLI, "export-schema", str(target)], env=clean_env(), cwd=tmp_path, capture_output=True, text=True
    )

    assert run.returncode == 0, run.stderr
    assert target.read_text(encoding="utf-8") == (REPO / "schema.graphql").read_text(encoding="utf-8")


def test_installed_console_script_runs_the_cli() -> None:
    script = shutil.which("session-graphql")
    if script is None:
        pytest.skip("session-graphql is not installed (pip install -e .)")

    run = subprocess.run([script, "export-schema", "-"], env=clean_env(), capture_output=True, text=True)

    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith('"""An agent of a session')


def test_unusable_database_url_exits_with_a_one_line_reason() -> None:
    run = subprocess.run(
        [*CLI, "migrate"], env=clean_env(DATABASE_URL="mysql://app@db/store"), capture_output=True, text=True
    )

    assert run.returncode != 0
    assert run.stderr.strip() == (
        "session-graphql: DATABASE_URL must start with postgresql://, postgres:// or postgresql+asyncpg://"
    )


def test_unknown_log_level_exits_with_a_one_line_reason() -> None:
    run = subprocess.run(
        [*CLI, "export-schema", "-"],
        env=clean_env(SESSION_GRAPHQL_LOG_LEVEL="loud"),
        capture_output=True,
        text=True,
    )

    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert "SESSION_GRAPHQL_LOG_LEVEL" in run.stderr


def test_uvicorns_trace_log_level_is_accepted() -> None:
    run = subprocess.run(
        [*CLI, "export-schema", "-"],
        env=clean_env(SESSION_GRAPHQL_LOG_LEVEL="trace"),
        capture_output=True,
        text=True,
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout == (REPO / "schema.graphql").read_text(encoding="utf-8")
