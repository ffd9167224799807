"""``session-graphql serve`` in a process of its own, and what one request costs it.

A request's cost is measured on the server's own process, not the test's: its peak resident memory
(the kernel's high-water mark, ``VmHWM``, which misses no spike between samples) and how long a
liveness probe polling ``/health`` waited meanwhile. A runaway request is ended by killing the
server, so a test against a server without protection still finishes and the shared machine is
not exhausted.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
SERVE = [sys.executable, "-m", "graphql_api.cli", "serve"]
READY_SECONDS = 60.0
MB = 1024 * 1024
T = TypeVar("T")


def server_env(database_url: str) -> dict[str, str]:
    """This environment minus the server's own settings, so every server runs at the defaults
    (tracing off too, whatever OTEL_* variables the shell has)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "DATABASE_URL" and not k.startswith(("SESSION_GRAPHQL_", "OTEL_"))
    }
    env["DATABASE_URL"] = database_url
    env["SESSION_GRAPHQL_LOG_LEVEL"] = "warning"
    # Only a database that already holds API keys makes these servers use one, and then the rate
    # limit, which is about callers, not about what one request costs, would refuse the setup's bursts.
    env["SESSION_GRAPHQL_RATE_LIMIT"] = "0"
    return env


class ServerProcess:
    """One ``session-graphql serve`` on a free loopback port, its output in ``log``."""

    def __init__(
        self, database_url: str, log: Path, token: str | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.database_url = database_url
        self.log = log
        self.token = token
        self.env = dict(env or {})
        """Set for the server beside ``server_env``'s."""
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        """What every request to this server carries: the key, when the database made one necessary."""
        return {} if self.token is None else {"Authorization": f"Bearer {self.token}"}

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server was never started"
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> "ServerProcess":
        """Starts the server and returns once ``/ready`` answers (the database is reachable)."""
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [*SERVE, "--port", str(self.port)],
                env={**server_env(self.database_url), **self.env},
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_SECONDS
        with httpx.Client(base_url=self.base_url, timeout=2) as client:
            while time.monotonic() < deadline:
                if not self.alive:
                    raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.output()}")
                try:
                    if client.get("/ready").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.kill()
        raise AssertionError(f"serve did not become ready within {READY_SECONDS:g}s:\n{self.output()}")

    def memory(self, name: str) -> int | None:
        """A ``/proc/<pid>/status`` size (``VmRSS``, ``VmHWM``) in bytes; None once the process is gone."""
        if not self.alive:
            return None  # its pid may already be another process's
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        found = re.search(rf"^{name}:\s+(\d+) kB$", status, re.MULTILINE)
        return None if found is None else int(found.group(1)) * 1024

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL if it takes more than a few seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self, last: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-last:]
        except FileNotFoundError:
            return ""


class HealthWatch(threading.Thread):
    """GETs ``/health`` every ``interval`` seconds on a connection of its own, as a load balancer's
    liveness probe does, and records how long each answer took: a server whose event loop is
    blocked keeps the probe waiting, and a probe that waits too long gets the server restarted."""

    def __init__(self, base_url: str, *, interval: float = 0.1, timeout: float = 300.0) -> None:
        super().__init__(name="health-watch", daemon=True)
        self.base_url = base_url
        self.interval = interval
        self.timeout = timeout
        self.waits: list[float] = []
        self.failures: list[str] = []
        self._asked_at: float | None = None
        self._done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout) as client:
            while not self._done.is_set():
                asked = self._asked_at = time.monotonic()
                try:
                    response = client.get("/health")
                    if response.status_code != 200:
                        self.failures.append(f"HTTP {response.status_code}")
                except httpx.HTTPError as error:
                    self.failures.append(f"{type(error).__name__} after {time.monotonic() - asked:.1f}s")
                self.waits.append(time.monotonic() - asked)
                self._asked_at = None
                self._done.wait(self.interval)

    @property
    def longest_wait(self) -> float:
        """The longest answer, counting a probe still waiting for its answer as waiting until now."""
        asked = self._asked_at
        pending = [time.monotonic() - asked] if asked is not None else []
        return max([*self.waits, *pending], default=0.0)

    def finish(self, patience: float) -> None:
        """Stops polling; a probe in flight gets ``patience`` seconds more to be answered and counted."""
        self._done.set()
        self.join(timeout=patience)


class MemoryWatch(threading.Thread):
    """Samples the server's resident memory every 20 ms and ends a runaway request by killing the
    server: past ``kill_bytes`` (so one test cannot exhaust the shared machine) or ``deadline``."""

    def __init__(self, server: ServerProcess, *, kill_bytes: int, deadline: float) -> None:
        super().__init__(name="memory-watch", daemon=True)
        self.server = server
        self.kill_bytes = kill_bytes
        self.deadline = deadline
        self.largest_sample = 0
        self.killed_because: str | None = None
        self._done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self._done.wait(0.02):
            resident = self.server.memory("VmRSS")
            if resident is None:
                return
            self.largest_sample = max(self.largest_sample, resident)
            if resident > self.kill_bytes:
                self.killed_because = (
                    f"killed at {resident / MB:.0f} MB RSS (the bound is {self.kill_bytes / MB:.0f} MB)"
                )
            elif time.monotonic() - started > self.deadline:
                self.killed_because = f"killed after {self.deadline:g}s, still busy with the request"
            if self.killed_because is not None:
                self.server.kill()
                return

    def finish(self) -> None:
        self._done.set()
        self.join(timeout=5)


@dataclass
class Costs:
    """What a request cost the server: peak RSS, the longest ``/health`` wait, and whether it had to
    be killed."""

    peak_rss: int
    longest_health_wait: float
    health_polls: int
    health_failures: list[str] = field(default_factory=list)
    killed_because: str | None = None

    def describe(self) -> str:
        failures = (
            f", {len(self.health_failures)} failed ({self.health_failures[0]})"
            if self.health_failures
            else ""
        )
        killed = f"; server {self.killed_because}" if self.killed_because else ""
        return (
            f"server peak RSS {self.peak_rss / MB:.0f} MB; longest /health wait "
            f"{self.longest_health_wait:.2f}s over {self.health_polls} polls{failures}{killed}"
        )


def measure(
    server: ServerProcess,
    work: Callable[[], T],
    *,
    kill_bytes: int = 1536 * MB,
    deadline: float = 150.0,
    settle: float = 0.3,
) -> tuple[T, Costs]:
    """Runs ``work`` (requests to ``server``) while watching the server, and returns what it cost.

    ``server`` must be fresh: its ``VmHWM`` is then the peak of start-up and ``work`` alone, which
    sampling cannot match (a spike between two samples would be missed). ``settle`` seconds of
    polling after ``work`` catch the event loop being blocked after the answer went out.
    """
    health = HealthWatch(server.base_url)
    memory = MemoryWatch(server, kill_bytes=kill_bytes, deadline=deadline)
    health.start()
    memory.start()
    try:
        result = work()
        time.sleep(settle)
    finally:
        memory.finish()
        health.finish(patience=0 if memory.killed_because else 30)
    peak = server.memory("VmHWM")
    failures = health.failures
    if memory.killed_because is not None:
        failures = []  # the probes a killed server refused say nothing more
    return result, Costs(
        peak_rss=max(peak or 0, memory.largest_sample),
        longest_health_wait=health.longest_wait,
        health_polls=len(health.waits),
        health_failures=failures,
        killed_because=memory.killed_because,
    )


PARSED_BYTES = 32 * MB
"""Answers up to this size are decoded; larger ones (a gigabyte, from a server without protection)
are only counted, keeping their first and last bytes, so the test process stays small."""
KEPT_BYTES = 256 * 1024
CODE = re.compile(rb'"code":\s*"([A-Z_]+)"')


@dataclass
class Answer:
    """An HTTP answer to one GraphQL request, read as a stream."""

    status: int | None
    """None: no answer came (the connection failed or the server was killed)."""
    size: int
    seconds: float
    head: bytes
    tail: bytes
    body: dict[str, Any] | None = None
    """The decoded answer, when it is at most ``PARSED_BYTES``."""
    failure: str | None = None

    @property
    def has_errors(self) -> bool:
        if self.body is not None:
            return bool(self.body.get("errors"))
        # strawberry writes "errors" after "data", so a large answer's errors are in its last bytes.
        return b'"errors"' in self.tail

    @property
    def error_codes(self) -> list[str]:
        if self.body is not None:
            return [
                str((error.get("extensions") or {}).get("code")) for error in self.body.get("errors") or []
            ]
        return [code.decode() for code in CODE.findall(self.tail)]

    @property
    def has_traceback(self) -> bool:
        return b"Traceback" in self.head or b"Traceback" in self.tail

    def describe(self) -> str:
        if self.status is None:
            return f"no answer after {self.seconds:.1f}s ({self.failure})"
        codes = ", ".join(sorted(set(self.error_codes))) or "none"
        first_error = ""
        if self.body is not None and self.body.get("errors"):
            first_error = f" ({str(self.body['errors'][0].get('message'))[:200]})"
        return (
            f"HTTP {self.status}, {self.size / MB:.1f} MB in {self.seconds:.1f}s, "
            f"error codes {codes}{first_error}"
        )


def post_graphql(
    server: ServerProcess,
    query: str | None = None,
    variables: dict[str, Any] | None = None,
    *,
    content: bytes | None = None,
    timeout: float = 300.0,
    client: httpx.Client | None = None,
) -> Answer:
    """POSTs one request (``query`` and ``variables``, or a ready ``content``) on ``client``'s kept-alive
    connection, or else on a client of its own."""
    sent = content if content is not None else orjson.dumps({"query": query, "variables": variables or {}})
    headers = {**server.headers, "content-type": "application/json"}
    size, head, tail, whole = 0, b"", b"", bytearray()
    started = time.monotonic()
    own = client is None
    sending = httpx.Client(base_url=server.base_url) if client is None else client
    try:
        with sending.stream(
            "POST", "/graphql", content=sent, headers=headers, timeout=httpx.Timeout(timeout, connect=10)
        ) as response:
            for chunk in response.iter_bytes(1024 * 1024):
                size += len(chunk)
                if len(head) < KEPT_BYTES:
                    head += chunk[: KEPT_BYTES - len(head)]
                tail = (tail + chunk)[-KEPT_BYTES:]
                if size <= PARSED_BYTES:
                    whole += chunk
                else:
                    whole.clear()
            status = response.status_code
    except httpx.HTTPError as error:
        return Answer(None, size, time.monotonic() - started, head, tail, failure=repr(error)[:300])
    finally:
        if own:
            sending.close()
    seconds = time.monotonic() - started
    body: dict[str, Any] | None = None
    if size <= PARSED_BYTES:
        try:
            decoded = orjson.loads(bytes(whole))
        except orjson.JSONDecodeError:
            decoded = None
        body = decoded if isinstance(decoded, dict) else None
    return Answer(status, size, seconds, head, tail, body)
