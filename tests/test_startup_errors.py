"""Every start-up mistake is one line on stderr and a non-zero exit, with nothing changed on disk."""

import asyncio
import shutil
import socket
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import free_port
from tests.scratch_database import scratch_database
from tests.test_cli import CLI, REPO, clean_env, postmasters_of, stop_postmasters

PASSWORD = "s3cret-pw"
DiskState = dict[str, tuple[int, int, int, int, bytes | None]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pgdata"
    yield path
    stop_postmasters(path)


def run_cli(*args: str, prefix: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *CLI, *args], env=clean_env(**env), cwd=REPO, capture_output=True, text=True, timeout=60
    )


def refusal(run: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed start printed; fails the test for a zero exit, a traceback or more lines."""
    assert run.returncode != 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "GraphiQL" not in run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


def disk_state(root: Path) -> DiskState:
    """Owner, group, mode, modification time and content of ``root``, its parent and all below it."""
    state: DiskState = {}
    for path in [root.parent, root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
        state[str(path)] = (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode), info.st_mtime_ns, content)
    return state


@pytest.fixture
def not_a_database(tmp_path: Path) -> Path:
    folder = tmp_path / "my-documents"
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "todo.txt").write_text("buy milk\n")
    (folder / "report.csv").write_text("a,b\n1,2\n")
    folder.chmod(0o750)
    return folder


@pytest.mark.parametrize(
    ("command", "through"), [("serve", "option"), ("serve", "environment"), ("migrate", "option")]
)
def test_data_dir_that_is_not_a_database_is_refused_and_left_untouched(
    not_a_database: Path, command: str, through: str
) -> None:
    before = disk_state(not_a_database)

    if through == "option":
        run = run_cli(command, "--data-dir", str(not_a_database))
    else:
        run = run_cli(command, SESSION_GRAPHQL_DATA_DIR=str(not_a_database))

    assert refusal(run) == (
        f"session-graphql: {not_a_database} is not empty and is not a PostgreSQL data directory"
        " (it has no PG_VERSION); give a new or empty directory"
    )
    assert disk_state(not_a_database) == before
    assert postmasters_of(not_a_database) == []


def test_data_dir_that_is_a_file_is_refused_and_left_untouched(not_a_database: Path) -> None:
    target = not_a_database / "report.csv"
    before = disk_state(not_a_database)

    run = run_cli("serve", "--data-dir", str(target))

    assert refusal(run) == f"session-graphql: {target} is not a directory"
    assert disk_state(not_a_database) == before


def test_data_dir_below_a_file_is_refused_and_nothing_is_created(not_a_database: Path) -> None:
    target = not_a_database / "report.csv" / "pgdata"
    before = disk_state(not_a_database)

    run = run_cli("migrate", "--data-dir", str(target))

    assert refusal(run) == (
        f"session-graphql: cannot create {target}: {not_a_database / 'report.csv'} is not a directory"
    )
    assert disk_state(not_a_database) == before


# Root writes through any file mode, so a read-only place for root is a read-only mount: a bind
# mount in a private mount namespace, which vanishes with the command it wraps.
PRIVATE_MOUNTS = ("unshare", "--mount", "--propagation", "private")
READ_ONLY_MOUNT = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def read_only(directory: Path) -> tuple[str, ...]:
    """A command prefix that runs the rest with ``directory`` mounted read-only, for it alone."""
    return (
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        READ_ONLY_MOUNT,
        "sh",
        str(directory),
    )


@pytest.fixture
def read_only_place(tmp_path: Path) -> Path:
    place = tmp_path / "read-only"
    place.mkdir()
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a directory read-only")
    probe = subprocess.run(
        [*read_only(place), "sh", "-c", f"! touch {place}/probe 2>/dev/null"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a directory read-only here (needs root): {probe.stderr.strip()}")
    return place


def test_data_dir_in_a_read_only_place_is_refused_and_not_created(read_only_place: Path) -> None:
    target = read_only_place / "sessions" / "pgdata"
    before = disk_state(read_only_place)

    run = run_cli("serve", "--data-dir", str(target), prefix=read_only(read_only_place))

    assert refusal(run) == (
        f"session-graphql: cannot create {target}: {read_only_place} is on a read-only file system"
    )
    assert disk_state(read_only_place) == before


def test_empty_read_only_data_dir_is_refused_and_left_untouched(read_only_place: Path) -> None:
    before = disk_state(read_only_place)

    run = run_cli("migrate", "--data-dir", str(read_only_place), prefix=read_only(read_only_place))

    assert refusal(run) == f"session-graphql: cannot use {read_only_place}: it is on a read-only file system"
    assert disk_state(read_only_place) == before


def test_initdb_that_runs_out_of_space_is_one_line_naming_the_data_dir(tmp_path: Path) -> None:
    small_disk = tmp_path / "small-disk"
    small_disk.mkdir()
    target = small_disk / "pgdata"
    # initdb needs tens of megabytes; a 2 MB tmpfs fills up while it writes the first WAL segment.
    mount_small_disk = 'mount -t tmpfs -o size=2m tmpfs "$1" && shift && exec "$@"'
    prefix = (*PRIVATE_MOUNTS, "sh", "-c", mount_small_disk, "sh")
    probe = subprocess.run([*prefix, str(small_disk), "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {probe.stderr.strip()}")

    run = run_cli("migrate", "--data-dir", str(target), prefix=(*prefix, str(small_disk)))

    line = refusal(run)
    assert line.startswith(f"session-graphql: initdb could not initialise {target}: could not write to file")
    assert line.endswith("No space left on device")


def test_data_dir_of_another_postgresql_version_is_one_line_naming_the_log(data_dir: Path) -> None:
    assert run_cli("migrate", "--data-dir", str(data_dir)).returncode == 0
    # What a directory made by PostgreSQL 15 says; the server checks this file before anything else.
    (data_dir / "PG_VERSION").write_text("15\n")

    run = run_cli("serve", "--data-dir", str(data_dir))

    line = refusal(run)
    assert line.startswith(
        f"session-graphql: PostgreSQL did not start in {data_dir}: database files are incompatible with"
        " server: The data directory was initialized by PostgreSQL version 15"
    )
    assert line.endswith(f"; see {data_dir / 'log'}")
    assert postmasters_of(data_dir) == []


UNREACHABLE = [
    pytest.param(
        "postgresql://app:{password}@127.0.0.1:{port}/store",
        "127.0.0.1:{port}/store: connection refused",
        id="port-refusing",
    ),
    pytest.param(
        "postgres://app:{password}@no-such-host.invalid/store",
        "no-such-host.invalid:5432/store: unknown host",
        id="unknown-host",
    ),
    pytest.param(
        "postgresql://app:{password}@/store?host=/nonexistent-socket-dir",
        "/nonexistent-socket-dir:5432/store: no such socket",
        id="missing-socket",
    ),
]


@pytest.mark.parametrize("command", ["migrate", "serve"])
@pytest.mark.parametrize(("url", "where"), UNREACHABLE)
def test_unreachable_database_url_is_one_line_naming_where_without_the_password(
    command: str, url: str, where: str
) -> None:
    port = free_port()

    run = run_cli(command, DATABASE_URL=url.format(password=PASSWORD, port=port))

    assert refusal(run) == f"session-graphql: cannot reach the database at {where.format(port=port)}"
    assert PASSWORD not in run.stdout + run.stderr


def test_unknown_database_role_is_one_line_saying_the_database_refused(database_url: str) -> None:
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    url = make_url(database_url).set(username=role, password=PASSWORD)

    run = run_cli("serve", DATABASE_URL=url.render_as_string(hide_password=False))

    line = refusal(run)
    assert line.startswith("session-graphql: the database at ")
    assert line.endswith(f'refused the connection: role "{role}" does not exist')
    assert PASSWORD not in run.stdout + run.stderr


async def execute(url: str, *statements: str) -> list[object]:
    """Runs ``statements`` in autocommit and returns the first column of the last one's rows."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            rows: list[object] = []
            for statement in statements:
                result = await conn.execute(text(statement))
                rows = list(result.scalars()) if result.returns_rows else []
            return rows
    finally:
        await engine.dispose()


def test_migrate_as_a_role_without_create_rights_is_one_line_and_creates_nothing(database_url: str) -> None:
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with scratch_database(database_url) as url:
        try:
            asyncio.run(
                execute(url, f'CREATE ROLE "{role}" LOGIN', "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            )
        except DBAPIError as error:
            pytest.skip(f"cannot create a role on the test server: {error.orig}")
        try:
            as_reader = make_url(url).set(username=role, password=None).render_as_string(hide_password=False)

            run = run_cli("migrate", DATABASE_URL=as_reader)

            tables = asyncio.run(execute(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        finally:
            asyncio.run(execute(database_url, f'DROP ROLE IF EXISTS "{role}"'))

    assert (
        refusal(run)
        == "session-graphql: the database refused the migration: permission denied for schema public"
    )
    assert tables == []


def test_port_in_use_is_one_line_before_graphiql_is_announced_and_the_database_is_stopped(
    data_dir: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        run = run_cli("serve", "--data-dir", str(data_dir), "--port", str(port))

    assert refusal(run) == f"session-graphql: cannot listen on 127.0.0.1:{port}: address already in use"
    assert (data_dir / "PG_VERSION").exists()  # it got as far as starting the database
    assert postmasters_of(data_dir) == []


def test_bad_port_setting_is_one_line_naming_the_variable(data_dir: Path) -> None:
    run = run_cli("serve", "--data-dir", str(data_dir), SESSION_GRAPHQL_PORT="eighty")

    assert refusal(run) == "session-graphql: SESSION_GRAPHQL_PORT must be a whole number, not 'eighty'"
    assert not data_dir.exists()
