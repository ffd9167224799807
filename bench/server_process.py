"""``session-graphql serve`` in its own process, as in production, on a free loopback port.

Its environment is the benchmark's (``PYTHONPATH`` included, so it runs the same checkout), plus the
database and ``SESSION_GRAPHQL_ROLLUP_LABELS=team``: its rollups keep the label the dashboard's label
variable filters the bulk-loaded sessions by (``bench.bulk_load.TEAM_LABEL``), as a deployment's
would. On a fresh database it runs open (no key exists), so clients send no credentials. When it is
not open (a JWT issuer in the environment), an admin key is made with ``session-graphql token
create`` and every client of the benchmark sends it.
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from bench.bulk_load import TEAM_LABEL
from bench.fresh_database import Database

READY_SECONDS = 60
COMMAND = [sys.executable, "-m", "graphql_api.cli"]
"""``session-graphql``, run by this interpreter (the console script may not be on PATH)."""


@dataclass(frozen=True)
class Server:
    url: str
    """The ``/graphql`` endpoint."""
    pid: int
    token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """What every request sends: the bearer token, if there is one."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"session-graphql serve exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("session-graphql serve did not become ready")
        time.sleep(0.1)


def _answers(url: str, headers: dict[str, str]) -> bool:
    response = httpx.post(url, json={"query": "{ __typename }"}, headers=headers, timeout=10)
    return response.status_code == 200


def _admin_token(env: dict[str, str], url: str) -> str:
    made = subprocess.run(
        [*COMMAND, "token", "create", "--role", "admin", "--name", f"bench-{uuid.uuid4().hex[:8]}"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = made.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + 30
    while not _answers(url, {"Authorization": f"Bearer {token}"}):  # replicas re-read keys every 2 s
        if time.monotonic() > deadline:
            raise RuntimeError("the server refuses the admin key made for the benchmark")
        time.sleep(0.5)
    return token


@contextmanager
def running_server(database: Database) -> Iterator[Server]:
    """Starts the server on ``database``, waits until it answers, and stops it afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database.url,
        "SESSION_GRAPHQL_LOG_LEVEL": "warning",
        "SESSION_GRAPHQL_ROLLUP_LABELS": TEAM_LABEL,
    }
    process = subprocess.Popen(
        [*COMMAND, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, process)
        url = f"{base}/graphql"
        if _answers(url, {}):
            yield Server(url=url, pid=process.pid)
        else:
            token = _admin_token(env, url)
            yield Server(url=url, pid=process.pid, token=token, headers={"Authorization": f"Bearer {token}"})
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
