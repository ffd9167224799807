"""PostGraphile 5, the reference for the dashboard query, on the benchmark's database.

Installed on first use with npm into a cache directory outside the repository
(``~/.cache/session-graphql-bench/postgraphile``), then run with its CLI and the Amber preset
over schema ``public``: ``postgraphile -P postgraphile/presets/amber -c <database> -s public``.
The names of its generated fields (``allSessions``, ``sessionAgentsBySessionIdAndTenant``, ...)
are found by introspection, not assumed.

PostGraphile 5 asks for Node 22; of what Node 22 added, it uses only ``Promise.withResolvers``.
On an older Node that one function is defined first (``node --require``), a three-line
polyfill, and the report says so.
"""

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.server_process import free_port

PACKAGES = ("postgraphile@^5", "pg@^8")
INSTALL_SECONDS = 600
READY_SECONDS = 60
NATIVE_NODE = 22
"""The first Node PostGraphile 5 supports (its package.json engines)."""
POLYFILL = """\
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new this((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}
"""


class PostGraphileUnavailableError(Exception):
    """PostGraphile cannot run here; the message says why in one line."""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "session-graphql-bench" / "postgraphile"


def installed_version(directory: Path) -> str | None:
    manifest = directory / "node_modules" / "postgraphile" / "package.json"
    if not manifest.is_file():
        return None
    version = json.loads(manifest.read_text()).get("version")
    return version if isinstance(version, str) else None


def install() -> tuple[Path, str]:
    """The PostGraphile CLI script and its version, installing it first if it is not in the cache."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise PostGraphileUnavailableError("node and npm are not both on PATH")
    directory = cache_dir()
    version = installed_version(directory)
    if version is None or not version.startswith("5."):
        directory.mkdir(parents=True, exist_ok=True)
        manifest = directory / "package.json"
        if not manifest.exists():
            manifest.write_text(json.dumps({"name": "session-graphql-bench-postgraphile", "private": True}))
        try:
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *PACKAGES],
                cwd=directory,
                check=True,
                capture_output=True,
                text=True,
                timeout=INSTALL_SECONDS,
            )
        except subprocess.CalledProcessError as error:
            last = (error.stderr or error.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise PostGraphileUnavailableError(
                f"npm install {' '.join(PACKAGES)} failed: {last[0]}"
            ) from None
        except subprocess.TimeoutExpired:
            raise PostGraphileUnavailableError(f"npm install took over {INSTALL_SECONDS} s") from None
        version = installed_version(directory)
        if version is None or not version.startswith("5."):
            raise PostGraphileUnavailableError(f"npm installed postgraphile {version}, not 5.x")
    return directory / "node_modules" / "postgraphile" / "dist" / "cli-run.js", version


def _answers(url: str) -> bool:
    try:
        response = httpx.post(url, json={"query": "{ __typename }"}, timeout=2)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


@dataclass(frozen=True)
class RunningPostGraphile:
    url: str
    description: str
    """PostGraphile's version and the Node it runs on."""


def _node_command(node: str, directory: Path) -> tuple[list[str], str]:
    """How to start node for PostGraphile, and which Node it is (with the polyfill, if needed)."""
    version = subprocess.run([node, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    major = int(version.lstrip("v").split(".")[0])
    if major >= NATIVE_NODE:
        return [node], f"Node {major}"
    polyfill = directory / "promise-with-resolvers.cjs"
    polyfill.write_text(POLYFILL)
    return [node, "--require", str(polyfill)], f"Node {major}+polyfill"


@contextmanager
def running_postgraphile(libpq_url: str, log_path: Path) -> Iterator[RunningPostGraphile]:
    """Serves ``libpq_url`` with PostGraphile until the block ends."""
    cli, version = install()
    node = shutil.which("node")
    assert node is not None
    directory = cli.parents[3]
    node_command, runtime = _node_command(node, directory)
    port = free_port()
    preset = ["-P", "postgraphile/presets/amber", "-c", libpq_url, "-s", "public"]
    command = [*node_command, str(cli), *preset]
    env = {**os.environ, "GRAPHILE_ENV": "production", "NODE_ENV": "production"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "-n", "127.0.0.1", "-p", str(port)],
            cwd=directory,
            env=env,
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + READY_SECONDS
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise PostGraphileUnavailableError(f"PostGraphile did not start: {tail[0]}")
            time.sleep(0.2)
        yield RunningPostGraphile(url, f"PostGraphile {version} ({runtime})")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_INTROSPECT = """
query {
  query: __type(name: "Query") { fields { name type { ...Named } } }
  session: __type(name: "Session") { fields { name type { ...Named } } }
  agent: __type(name: "SessionAgent") { fields { name type { ...Named } } }
}
fragment Named on __Type { name ofType { name ofType { name } } }
"""


def _named(kind: dict[str, Any]) -> str | None:
    while kind.get("name") is None and kind.get("ofType"):
        kind = kind["ofType"]
    name = kind.get("name")
    return name if isinstance(name, str) else None


def _field_of_type(fields: list[dict[str, Any]], type_name: str, prefix: str = "") -> str:
    found = [f["name"] for f in fields if _named(f["type"]) == type_name and f["name"].startswith(prefix)]
    if len(found) != 1:
        raise PostGraphileUnavailableError(
            f"no single field of type {type_name} in PostGraphile's schema: {found}"
        )
    name: str = found[0]
    return name


@dataclass(frozen=True)
class NestedFields:
    """PostGraphile's names for sessions, a session's agents and an agent's messages."""

    sessions: str
    agents: str
    messages: str


def nested_fields(url: str) -> NestedFields:
    answer = httpx.post(url, json={"query": _INTROSPECT}, timeout=30).json()["data"]
    return NestedFields(
        sessions=_field_of_type(answer["query"]["fields"], "SessionConnection", prefix="all"),
        agents=_field_of_type(answer["session"]["fields"], "SessionAgentConnection"),
        messages=_field_of_type(answer["agent"]["fields"], "SessionMessageConnection"),
    )
