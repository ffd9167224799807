"""``session-graphql token``: keys made, listed and revoked from the command line, as an operator does,
and a server that refuses to run open where anyone could reach it."""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from db.migrate import upgrade
from tests.conftest import free_port
from tests.scratch_database import scratch_database
from tests.test_cli import CLI, REPO, Served, clean_env, postmasters_of, stop_postmasters

READ = {"query": '{ session(sessionId: "s") { sessionId } }'}


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pgdata"
    yield path
    stop_postmasters(path)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=clean_env(**env), cwd=REPO, capture_output=True, text=True, timeout=90
    )


def made_key(run: subprocess.CompletedProcess[str]) -> str:
    """The key ``token create`` printed: its last line of output, alone."""
    assert run.returncode == 0, run.stdout + run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("sgq_") and " " not in last
    return last


def one_line_refusal(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode != 0, run.stdout
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


@pytest.fixture
def served(data_dir: Path, tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for server in started:
        server.close()


def test_keys_made_before_the_first_serve_close_the_server_and_work(
    data_dir: Path, tmp_path: Path, served: list[Served]
) -> None:
    writer = made_key(
        run_cli(
            "token",
            "create",
            "--role",
            "writer",
            "--tenant",
            "acme",
            "--name",
            "agent",
            "--data-dir",
            str(data_dir),
        )
    )
    reader = made_key(
        run_cli("token", "create", "--role", "reader", "--tenant", "acme", "--data-dir", str(data_dir))
    )

    server = Served(data_dir, tmp_path / "serve.log")
    served.append(server)
    server.wait_ready()
    client = server.client
    create = {"query": 'mutation { createSession(session: {sessionId: "s"}) { tenant } }'}

    assert client.post("/graphql", json=READ).status_code == 401
    written = client.post("/graphql", json=create, headers={"Authorization": f"Bearer {writer}"}).json()
    assert written == {"data": {"createSession": {"tenant": "acme"}}}
    refused = client.post("/graphql", json=create, headers={"Authorization": f"Bearer {reader}"}).json()
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "OPEN" not in server.output()


def test_token_list_shows_label_role_tenant_creation_and_last_use_but_no_secret(data_dir: Path) -> None:
    key = made_key(
        run_cli("token", "create", "--role", "admin", "--name", "ops", "--data-dir", str(data_dir))
    )

    listed = run_cli("token", "list", "--data-dir", str(data_dir))

    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.strip().splitlines()
    assert header.split() == ["LABEL", "ROLE", "TENANT", "CREATED", "LAST", "USED"]
    assert row.split()[:3] == ["ops", "admin", "*"]
    assert key[len("sgq_") + 17 :] not in listed.stdout and key not in listed.stdout


def test_a_key_revoked_from_the_command_line_stops_working_on_the_running_server(
    data_dir: Path, tmp_path: Path, served: list[Served]
) -> None:
    key = made_key(
        run_cli("token", "create", "--role", "reader", "--name", "soon-gone", "--data-dir", str(data_dir))
    )
    server = Served(data_dir, tmp_path / "serve.log")
    served.append(server)
    server.wait_ready()
    auth = {"Authorization": f"Bearer {key}"}
    assert server.client.post("/graphql", json=READ, headers=auth).status_code == 200

    revoked = run_cli("token", "revoke", "soon-gone", "--data-dir", str(data_dir))

    assert revoked.returncode == 0, revoked.stderr
    assert "revoked reader key 'soon-gone'" in revoked.stdout
    deadline = time.monotonic() + 10
    while server.client.post("/graphql", json=READ, headers=auth).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.2)
    # The command joined the server's database and left it running.
    assert server.client.get("/ready").status_code == 200
    assert postmasters_of(data_dir)


def test_token_commands_work_on_a_database_url_and_say_when_it_is_not_migrated(database_url: str) -> None:
    with scratch_database(database_url) as url:
        unmigrated = run_cli("token", "create", "--role", "admin", DATABASE_URL=url)
        assert "not migrated" in one_line_refusal(unmigrated)

        upgrade(url)
        made_key(run_cli("token", "create", "--role", "admin", "--name", "deploy", DATABASE_URL=url))
        listed = run_cli("token", "list", DATABASE_URL=url)
    assert "deploy" in listed.stdout


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("token", "create", "--role", "admin", "--tenant", "no spaces"), "tenant"),
        (("token", "create", "--role", "admin", "--name", " padded "), "label"),
        (("token", "revoke", "nobody"), "no key in force is labelled 'nobody'"),
    ],
)
def test_token_mistakes_are_one_line(data_dir: Path, args: tuple[str, ...], problem: str) -> None:
    assert problem in one_line_refusal(run_cli(*args, "--data-dir", str(data_dir)))


def test_serve_without_any_credentials_refuses_a_non_loopback_address(data_dir: Path) -> None:
    run = run_cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(data_dir))

    line = one_line_refusal(run)
    assert "refusing to listen on 0.0.0.0 without credentials" in line
    assert "token create" in line and "--insecure" in line
    assert "GraphiQL" not in run.stdout
    assert not postmasters_of(data_dir)


def test_serve_insecure_runs_open_on_any_address_and_says_so(
    data_dir: Path, tmp_path: Path, served: list[Served]
) -> None:
    port = free_port()
    log = tmp_path / "open.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                *CLI,
                "serve",
                "--host",
                "0.0.0.0",
                "--port",
                str(port),
                "--insecure",
                "--data-dir",
                str(data_dir),
            ],
            env=clean_env(),
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.1)
        answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json=READ, timeout=10)
    finally:
        process.terminate()
        process.wait(30)
    assert answer.status_code == 200
    assert "OPEN: no API key exists" in log.read_text()


def test_serve_with_a_key_may_listen_on_any_address(data_dir: Path, tmp_path: Path) -> None:
    made_key(run_cli("token", "create", "--role", "admin", "--data-dir", str(data_dir)))
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "serve", "--host", "0.0.0.0", "--port", str(port), "--data-dir", str(data_dir)],
        env=clean_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = httpx.post(f"http://127.0.0.1:{port}/graphql", json=READ, timeout=1).status_code
                break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert status == 401, output
    # A newcomer reads that the server is secured, and an address a browser here can open.
    assert "secured: requests need an API key" in output
    assert f"GraphiQL at http://127.0.0.1:{port}/graphql on this machine" in output
    assert "http://0.0.0.0" not in output
