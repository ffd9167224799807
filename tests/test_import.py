"""``session-graphql import``: sessions real Strands agents saved with ``FileSessionManager``, moved
into a running server through its API by the command: in this process, but for a first import and a
refusal, run as users run it (its own process)."""

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from strands import Agent
from strands.agent.conversation_manager import SlidingWindowConversationManager
from strands.multiagent import GraphBuilder, Swarm
from strands.session import FileSessionManager, SnapshotSessionManager
from strands.storage import LocalFileStorage
from strands.types.session import Session, SessionAgent, SessionMessage, SessionType

from client import GraphQLSessionRepository, GraphQLStorage
from graphql_api.settings import Limits, Settings
from tests.api_calls import table_rows
from tests.client_agent_script import new_agent, remember
from tests.conftest import RunningServer, free_port
from tests.fake_model import FakeModel, scripted, text, tool_call
from tests.secured import secured_server
from tests.terminal import on_a_terminal
from tests.test_cli import CLI, REPO, clean_env, in_process

NewId = Callable[[str], str]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x03"
SWARM_ID = "report-team"
KINDS = ("sessions", "agents", "messages", "multi-agents")


def run_import(directory: Path, url: str, *more: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (a process each cost a second or more of start-up)."""
    return in_process("import", "--from-dir", str(directory), "--url", url, *more, **env)


def run_import_in_a_process(
    directory: Path, url: str, *more: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The command as users run it; the first import and a refusal go this way."""
    return subprocess.run(
        [*CLI, "import", "--from-dir", str(directory), "--url", url, *more],
        env=clean_env(**env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )


@dataclass
class Report:
    """The final report as printed: the table's rows, and the lines under ``skipped:``/``notes:``."""

    rows: dict[str, dict[str, int]]
    skipped: list[str]
    notes: list[str]


def report_of(run: subprocess.CompletedProcess[str]) -> Report:
    lines = run.stdout.splitlines()
    assert lines[0].startswith("session-graphql: import from "), run.stdout + run.stderr
    assert lines[1].split() == list(KINDS), run.stdout
    rows = {}
    for line in lines[2:5]:
        words = line.split()
        rows[" ".join(words[:-4])] = dict(zip(KINDS, map(int, words[-4:]), strict=True))
    sections: dict[str, list[str]] = {"skipped:": [], "notes:": []}
    current: list[str] | None = None
    for line in lines[5:]:
        if line in sections:
            current = sections[line]
        elif current is not None and line.startswith("  "):
            current.append(line.strip())
    return Report(rows, sections["skipped:"], sections["notes:"])


def counts(sessions: int = 0, agents: int = 0, messages: int = 0, multi_agents: int = 0) -> dict[str, int]:
    return dict(zip(KINDS, (sessions, agents, messages, multi_agents), strict=True))


def one_line(run: subprocess.CompletedProcess[str]) -> str:
    """The one line a user mistake gets, after checking it is all there is."""
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("session-graphql: ")
    return lines[0]


def remember_prompt(key: str, value: str) -> str:
    return f'use remember {{"key": "{key}", "value": "{value}"}}'


def save_conversation(directory: Path, session_id: str) -> None:
    """Two agents in one session: one with a sliding window, a tool, a guardrail's redaction and an
    image (bytes), the other with state of its own."""
    manager = FileSessionManager(session_id=session_id, storage_dir=str(directory))
    support = Agent(
        agent_id="support",
        model=FakeModel(),
        tools=[remember],
        session_manager=manager,
        conversation_manager=SlidingWindowConversationManager(4),
        callback_handler=None,
    )
    support("hello")
    support(remember_prompt("city", "Lisbon"))
    support("tell me something forbidden")
    support([{"text": "what is in this picture?"}, {"image": {"format": "png", "source": {"bytes": PNG}}}])
    critic = Agent(
        agent_id="critic", model=FakeModel(), tools=[remember], session_manager=manager, callback_handler=None
    )
    critic(remember_prompt("verdict", "too long"))


def save_swarm(directory: Path, session_id: str) -> None:
    handoff = {"agent_name": "writer", "message": "write it up"}
    researcher = Agent(
        name="researcher",
        model=FakeModel(scripted(tool_call("handoff_to_agent", handoff, "handoff-1"), text("handed off"))),
        callback_handler=None,
    )
    writer = Agent(name="writer", model=FakeModel(scripted(text("the report"))), callback_handler=None)
    manager = FileSessionManager(session_id=session_id, storage_dir=str(directory))
    Swarm([researcher, writer], session_manager=manager, id=SWARM_ID)("write a report")


def save_graph(directory: Path, session_id: str) -> str:
    """A two-step Graph with an image in its task; returns its id."""
    builder = GraphBuilder()
    builder.add_node(
        Agent(name="draft", model=FakeModel(scripted(text("a draft"))), callback_handler=None), "draft"
    )
    builder.add_node(
        Agent(name="review", model=FakeModel(scripted(text("approved"))), callback_handler=None), "review"
    )
    builder.add_edge("draft", "review")
    builder.set_max_node_executions(10)
    builder.set_session_manager(FileSessionManager(session_id=session_id, storage_dir=str(directory)))
    graph = builder.build()
    graph([{"text": "describe this chart"}, {"image": {"format": "png", "source": {"bytes": PNG}}}])
    return graph.id


def dumped(value: Any) -> str:
    """The record as Strands' stores write it (bytes in envelopes), keys in their order."""
    return json.dumps(value.to_dict() if hasattr(value, "to_dict") else value)


def assert_stored_as_files_hold(
    repository: GraphQLSessionRepository,
    directory: Path,
    session_id: str,
    agent_ids: list[str],
    multi_agent_ids: Sequence[str] = (),
) -> None:
    """What the client reads from the server is what FileSessionManager reads from the files."""
    files = FileSessionManager(session_id=session_id, storage_dir=str(directory))
    stored_session, saved_session = repository.read_session(session_id), files.read_session(session_id)
    assert stored_session is not None and saved_session is not None
    # The store moves a session's updatedAt with every write to it (the import's included);
    # FileSessionManager never rewrites session.json.
    stored_session.updated_at = saved_session.updated_at
    assert dumped(stored_session) == dumped(saved_session)
    for agent_id in agent_ids:
        assert dumped(repository.read_agent(session_id, agent_id)) == dumped(
            files.read_agent(session_id, agent_id)
        )
        stored = [dumped(message) for message in repository.list_messages(session_id, agent_id)]
        saved = [dumped(message) for message in files.list_messages(session_id, agent_id)]
        assert stored == saved
    for multi_agent_id in multi_agent_ids:
        assert dumped(repository.read_multi_agent(session_id, multi_agent_id)) == dumped(
            files.read_multi_agent(session_id, multi_agent_id)
        )


def message_path(directory: Path, session_id: str, agent_id: str, message_id: int) -> Path:
    return (
        directory
        / f"session_{session_id}"
        / "agents"
        / f"agent_{agent_id}"
        / "messages"
        / f"message_{message_id}.json"
    )


def message_count(directory: Path, session_id: str, agent_id: str) -> int:
    return len(list(message_path(directory, session_id, agent_id, 0).parent.glob("message_*.json")))


@dataclass
class Saved:
    directory: Path
    conversation: str
    team: str
    pipeline: str
    graph_id: str

    @property
    def messages(self) -> int:
        return message_count(self.directory, self.conversation, "support") + message_count(
            self.directory, self.conversation, "critic"
        )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    """Sessions of a conversation, a Swarm and a Graph, saved by FileSessionManager (module-wide:
    tests that import them only read)."""
    directory = tmp_path_factory.mktemp("strands-sessions")
    suffix = os.urandom(4).hex()
    conversation, team, pipeline = f"talk-{suffix}", f"team-{suffix}", f"pipeline-{suffix}"
    save_conversation(directory, conversation)
    save_swarm(directory, team)
    graph_id = save_graph(directory, pipeline)
    return Saved(directory, conversation, team, pipeline, graph_id)


@pytest.fixture(scope="module")
def first_run(saved: Saved, server: RunningServer) -> subprocess.CompletedProcess[str]:
    return run_import_in_a_process(saved.directory, server.url)


def test_import_reports_each_session_agent_message_and_multi_agent_it_stored(
    saved: Saved, first_run: subprocess.CompletedProcess[str]
) -> None:
    assert first_run.returncode == 0, first_run.stdout + first_run.stderr
    assert first_run.stderr == ""  # no progress bar without a terminal
    report = report_of(first_run)
    assert report.rows == {
        "imported": counts(sessions=3, agents=2, messages=saved.messages, multi_agents=2),
        "already present": counts(),
        "skipped": counts(),
    }
    assert (report.skipped, report.notes) == ([], [])


def test_imported_sessions_read_back_exactly_as_file_session_manager_reads_them(
    saved: Saved, first_run: subprocess.CompletedProcess[str], server: RunningServer
) -> None:
    repository = GraphQLSessionRepository(server.url)
    assert_stored_as_files_hold(repository, saved.directory, saved.conversation, ["support", "critic"])
    assert_stored_as_files_hold(repository, saved.directory, saved.team, [], [SWARM_ID])
    assert_stored_as_files_hold(repository, saved.directory, saved.pipeline, [], [saved.graph_id])
    # What the comparison covers: the sliding window's offset, a redaction, bytes and the tool's state.
    support = repository.read_agent(saved.conversation, "support")
    assert support is not None
    assert support.conversation_manager_state["removed_message_count"] > 0
    assert support.state == {"city": "Lisbon"}
    messages = repository.list_messages(saved.conversation, "support")
    assert any(message.redact_message is not None for message in messages)
    assert any(
        block.get("image", {}).get("source", {}).get("bytes") == PNG
        for message in messages
        for block in message.message["content"]
    )


def test_a_second_run_stores_nothing_twice_and_says_everything_is_there(
    saved: Saved, first_run: subprocess.CompletedProcess[str], server: RunningServer, database_url: str
) -> None:
    assert first_run.returncode == 0
    ids = [saved.conversation, saved.team, saved.pipeline]

    async def rows() -> list[dict[str, Any]]:
        return await table_rows(
            database_url,
            "SELECT session_id, count(*) AS n, max(updated_at) AS last FROM session_messages "
            "WHERE session_id = ANY(:ids) GROUP BY session_id ORDER BY session_id",
            ids=ids,
        )

    before = asyncio.run(rows())
    second = run_import(saved.directory, server.url)

    assert second.returncode == 0, second.stdout + second.stderr
    report = report_of(second)
    assert report.rows == {
        "imported": counts(),
        "already present": counts(sessions=3, agents=2, messages=saved.messages, multi_agents=2),
        "skipped": counts(),
    }
    assert asyncio.run(rows()) == before


def test_an_agent_resumes_from_the_imported_session(
    server: RunningServer, tmp_path: Path, new_id: NewId
) -> None:
    session_id = new_id("resume")
    save_conversation(tmp_path, session_id)
    assert run_import(tmp_path, server.url).returncode == 0
    on_files = support_on_files(tmp_path, session_id)

    resumed = new_agent(
        server.url, session_id, "support", conversation_manager=SlidingWindowConversationManager(4)
    )

    assert resumed.messages == on_files.messages
    assert resumed.state.get() == on_files.state.get() == {"city": "Lisbon"}
    assert (
        resumed.conversation_manager.removed_message_count
        == on_files.conversation_manager.removed_message_count
    )
    reply = str(resumed("and now?")).strip()
    assert reply == str(on_files("and now?")).strip()
    saved_count = message_count(tmp_path, session_id, "support") - 2  # on_files just added two
    stored = GraphQLSessionRepository(server.url).list_messages(session_id, "support")
    assert [message.message_id for message in stored] == list(range(saved_count + 2))
    assert stored[-1].message["content"][0]["text"] == reply


def support_on_files(directory: Path, session_id: str) -> Agent:
    return Agent(
        agent_id="support",
        model=FakeModel(),
        tools=[remember],
        session_manager=FileSessionManager(session_id=session_id, storage_dir=str(directory)),
        conversation_manager=SlidingWindowConversationManager(4),
        callback_handler=None,
    )


def test_an_agent_gone_on_on_the_server_is_kept_and_one_gone_on_on_both_sides_is_a_conflict(
    server: RunningServer, tmp_path: Path, new_id: NewId
) -> None:
    session_id = new_id("moved")
    save_conversation(tmp_path, session_id)
    assert run_import(tmp_path, server.url).returncode == 0
    new_agent(server.url, session_id, "support", conversation_manager=SlidingWindowConversationManager(4))(
        "more"
    )
    repository = GraphQLSessionRepository(server.url)
    on_server = [dumped(message) for message in repository.list_messages(session_id, "support")]

    again = run_import(tmp_path, server.url)

    assert again.returncode == 0, again.stdout + again.stderr
    report = report_of(again)
    assert report.rows["already present"]["agents"] == 2
    assert report.notes == [
        f"session_{session_id}/agents/agent_support/: the stored agent's state differs from agent.json but "
        "holds all its messages: it has gone on since; the stored state was kept"
    ]
    saved_count = message_count(tmp_path, session_id, "support")
    support_on_files(tmp_path, session_id)(remember_prompt("mood", "fine"))  # and from the files too

    diverged = run_import(tmp_path, server.url)

    assert diverged.returncode == 1
    assert report_of(diverged).skipped == [
        f"session_{session_id}/agents/agent_support/: conflict: the server holds this agent with another "
        f"state, and message {saved_count} is stored with other content; nothing of it imported, nothing "
        "overwritten"
    ]
    assert [dumped(message) for message in repository.list_messages(session_id, "support")] == on_server


def test_dry_run_compares_and_writes_nothing(server: RunningServer, tmp_path: Path, new_id: NewId) -> None:
    session_id = new_id("dry")
    save_conversation(tmp_path, session_id)

    run = run_import(tmp_path, server.url, "--dry-run")

    assert run.returncode == 0, run.stdout + run.stderr
    report = report_of(run)
    total = message_count(tmp_path, session_id, "support") + message_count(tmp_path, session_id, "critic")
    assert report.rows["would import"] == counts(sessions=1, agents=2, messages=total)
    assert run.stdout.splitlines()[-1] == "dry run: nothing was written"
    assert GraphQLSessionRepository(server.url).read_session(session_id) is None


def test_a_corrupt_message_file_and_a_conflicting_message_are_reported_and_the_rest_imported(
    server: RunningServer, tmp_path: Path, new_id: NewId
) -> None:
    broken, other = new_id("broken"), new_id("other")
    save_conversation(tmp_path, broken)
    save_conversation(tmp_path, other)
    support_count = message_count(tmp_path, broken, "support")
    corrupt = message_path(tmp_path, broken, "support", 3)
    whole = corrupt.read_text()
    corrupt.write_text('{"message": {"role": "user", "content": [')

    first = run_import(tmp_path, server.url)

    assert first.returncode == 1, first.stdout + first.stderr
    report = report_of(first)
    later = support_count - 4
    assert report.skipped == [
        f"session_{broken}/agents/agent_support/messages/message_3.json: unreadable JSON (Expecting value: "
        f"line 1 column 42 (char 41)); {later} later messages of this agent not imported either, since they "
        "would follow a gap"
    ]
    assert report.rows["skipped"] == counts(messages=later + 1)
    repository = GraphQLSessionRepository(server.url)
    assert [m.message_id for m in repository.list_messages(broken, "support")] == [0, 1, 2]
    assert_stored_as_files_hold(repository, tmp_path, other, ["support", "critic"])
    assert len(repository.list_messages(broken, "critic")) == message_count(tmp_path, broken, "critic")

    # The file is mended, and another one now says something else than what the server holds.
    corrupt.write_text(whole)
    changed = message_path(tmp_path, other, "critic", 1)
    stored_before = dumped(repository.read_message(other, "critic", 1))
    record = json.loads(changed.read_text())
    record["message"]["content"] = [{"text": "something else"}]
    changed.write_text(json.dumps(record))

    second = run_import(tmp_path, server.url)

    assert second.returncode == 1, second.stdout + second.stderr
    report = report_of(second)
    critic_count = message_count(tmp_path, other, "critic")
    assert report.skipped == [
        f"session_{other}/agents/agent_critic/messages/message_1.json: conflict: the server holds this "
        "message with other content"
    ]
    assert report.rows["imported"] == counts(messages=later + 1)
    assert report.rows["skipped"] == counts(messages=1)
    assert report.rows["already present"]["messages"] == 3 + message_count(tmp_path, broken, "critic") + (
        support_count + critic_count - 1
    )
    assert_stored_as_files_hold(repository, tmp_path, broken, ["support", "critic"])
    assert dumped(repository.read_message(other, "critic", 1)) == stored_before  # never overwritten


def test_a_session_of_the_same_id_made_elsewhere_is_a_conflict_and_left_alone(
    server: RunningServer, tmp_path: Path, new_id: NewId
) -> None:
    session_id = new_id("taken")
    repository = GraphQLSessionRepository(server.url)
    repository.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
    save_conversation(tmp_path, session_id)

    run = run_import(tmp_path, server.url)

    assert run.returncode == 1
    report = report_of(run)
    assert report.skipped[0].startswith(f"session_{session_id}/: conflict: the server holds another session")
    assert report.rows["skipped"]["sessions"] == 1
    assert repository.read_agent(session_id, "support") is None


@pytest.fixture(scope="module")
def strict_server(database_url: str) -> Iterator[RunningServer]:
    """A server taking at most 4 messages per batch and 5,000 bytes per message."""
    limits = Limits(max_batch=4, max_message_bytes=5000)
    running = RunningServer(Settings(database_url=database_url, limits=limits))
    running.start()
    yield running
    running.stop()


def test_batches_shrink_to_the_servers_limit_and_a_refused_message_ends_its_agent(
    strict_server: RunningServer, tmp_path: Path, new_id: NewId
) -> None:
    session_id = new_id("limits")
    store = FileSessionManager(session_id=session_id, storage_dir=str(tmp_path))
    store.create_agent(session_id, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
    for message_id in range(12):
        said = "x" * 6000 if message_id == 9 else f"message {message_id}"
        role = "user" if message_id % 2 == 0 else "assistant"
        store.create_message(
            session_id, "a", SessionMessage({"role": role, "content": [{"text": said}]}, message_id)
        )

    run = run_import(tmp_path, strict_server.url)

    assert run.returncode == 1
    report = report_of(run)
    assert report.rows["imported"] == counts(sessions=1, agents=1, messages=9)
    assert len(report.skipped) == 1
    assert report.skipped[0].startswith(
        f"session_{session_id}/agents/agent_a/messages/message_9.json: server refused it (MESSAGE_TOO_LARGE: "
    )
    assert report.skipped[0].endswith(
        "; 2 later messages of this agent not imported either, since they would follow a gap"
    )
    stored = GraphQLSessionRepository(strict_server.url).list_messages(session_id, "a")
    assert [message.message_id for message in stored] == list(range(9))


def with_a_session(directory: Path) -> Path:
    FileSessionManager(session_id="mistake", storage_dir=str(directory))  # makes the session
    return directory


def a_file(directory: Path) -> Path:
    path = directory / "session.json"
    path.write_text("{}")
    return path


UNREACHABLE = "unreachable"
MISTAKES = {
    "missing": (lambda directory: directory / "missing", None, "does not exist"),
    "a-file": (a_file, None, "is not a directory"),
    "no-sessions": (lambda directory: directory, None, "holds no Strands sessions"),
    "bad-url": (with_a_session, "ftp://localhost/graphql", "--url must be an http:// or https:// address"),
    "unreachable": (with_a_session, UNREACHABLE, "no GraphQL answer from http://127.0.0.1:"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_user_mistakes_are_one_line_and_a_non_zero_exit(
    mistake: str, tmp_path: Path, server: RunningServer
) -> None:
    make, url, problem = MISTAKES[mistake]
    (tmp_path / "notes.txt").write_text("not a session")
    directory = make(tmp_path)
    if url == UNREACHABLE:
        run = run_import_in_a_process(directory, f"http://127.0.0.1:{free_port()}/graphql")
    else:
        run = run_import(directory, url or server.url)

    line = one_line(run)

    assert problem in line


def test_snapshot_directories_are_imported_beside_file_sessions_and_agents_resume_from_them(
    server: RunningServer, tmp_path: Path, new_id: NewId
) -> None:
    file_session, snapshot_session = new_id("files"), new_id("snapshots")
    save_conversation(tmp_path, file_session)
    local = LocalFileStorage(str(tmp_path))
    snapshots = SnapshotSessionManager(snapshot_session, storage=local, snapshot_trigger=lambda **_: True)
    agent = Agent(agent_id="helper", model=FakeModel(), session_manager=snapshots, callback_handler=None)
    agent("hello")
    agent("again")
    assert (tmp_path / "session" / snapshot_session / "scopes" / "agent" / "helper" / "snapshots").is_dir()
    (tmp_path / "notes.txt").write_text("kept beside the sessions")

    run = run_import(tmp_path, server.url)

    assert run.returncode == 1, run.stdout + run.stderr  # notes.txt
    report = report_of(run)
    assert report.skipped == ["notes.txt: unknown layout: neither a session_<id> directory nor snapshots"]
    assert report.rows["imported"]["sessions"] == 2
    assert report.rows["imported"]["agents"] >= 2  # the file session's agents and the snapshot agent
    remote = GraphQLStorage(server.url)
    prefix = f"session/{snapshot_session}/"
    local_keys = asyncio.run(local.list(prefix))
    assert asyncio.run(remote.list(prefix)) == local_keys and len(local_keys) == 3  # two checkpoints
    for key in local_keys:
        assert asyncio.run(remote.read(key)) == asyncio.run(local.read(key))
    resumed = Agent(
        agent_id="helper",
        model=FakeModel(),
        session_manager=SnapshotSessionManager(snapshot_session, storage=remote),
        callback_handler=None,
    )
    assert resumed.messages == agent.messages
    assert (
        GraphQLSessionRepository(server.url).list_messages(snapshot_session, "helper")[0].message
        == (agent.messages[0])
    )

    again = report_of(run_import(tmp_path, server.url))
    assert again.rows["imported"] == counts()
    assert again.rows["already present"]["sessions"] == 2


def test_a_progress_bar_goes_to_stderr_when_it_is_a_terminal(
    server: RunningServer, tmp_path: Path, new_id: NewId
) -> None:
    save_conversation(tmp_path, new_id("progress"))
    run, shown = on_a_terminal("import", "--from-dir", str(tmp_path), "--url", server.url)
    assert run.returncode == 0
    assert b"importing" in shown and b"msg" in shown and b"session 1/1" in shown
    assert "importing" not in run.stdout


def test_a_writer_key_imports_into_its_tenant_and_other_credentials_are_refused(
    database_url: str, tmp_path: Path, new_id: NewId
) -> None:
    session_id = new_id("secured")
    save_conversation(tmp_path, session_id)
    with secured_server(database_url) as secured:
        url = secured.server.url
        writer, reader = secured.key("writer", tenant="acme"), secured.key("reader", tenant="acme")
        admin = secured.key("admin")

        assert "needs credentials: pass --token or set SESSION_GRAPHQL_TOKEN" in one_line(
            run_import(tmp_path, url)
        )
        assert "refused the token (UNAUTHENTICATED)" in one_line(
            run_import(tmp_path, url, SESSION_GRAPHQL_TOKEN="sgq_not-a-key")
        )
        as_reader = run_import(tmp_path, url, SESSION_GRAPHQL_TOKEN=reader)
        assert as_reader.returncode == 2
        assert "Traceback" not in as_reader.stderr
        assert as_reader.stderr.strip().startswith(
            f"session-graphql: import stopped: {url} refused the request (FORBIDDEN): createSession needs "
        )
        assert as_reader.stdout == ""  # nothing happened to report
        assert len(as_reader.stderr.strip().splitlines()) == 1

        imported = run_import(tmp_path, url, SESSION_GRAPHQL_TOKEN=writer)

        assert imported.returncode == 0, imported.stdout + imported.stderr
        in_acme = GraphQLSessionRepository(url, token=admin, headers={"X-Tenant": "acme"})
        assert_stored_as_files_hold(in_acme, tmp_path, session_id, ["support", "critic"])
        assert GraphQLSessionRepository(url, token=admin).read_session(session_id) is None  # default tenant

        operator = run_import(tmp_path, url, "--token", secured.key("writer"), "--tenant", "beta")
        assert operator.returncode == 0, operator.stdout + operator.stderr
        in_beta = GraphQLSessionRepository(url, token=admin, headers={"X-Tenant": "beta"})
        assert_stored_as_files_hold(in_beta, tmp_path, session_id, ["support", "critic"])

        # A reader finds the imported session there, then is refused the new one's first write.
        FileSessionManager(session_id=f"{session_id}-later", storage_dir=str(tmp_path))
        stopped = run_import(tmp_path, url, SESSION_GRAPHQL_TOKEN=reader)
        assert stopped.returncode == 2
        assert report_of(stopped).rows["already present"]["sessions"] == 1
        (line,) = stopped.stderr.strip().splitlines()
        assert line.startswith(f"session-graphql: import stopped: {url} refused the request (FORBIDDEN): ")
        assert line.endswith("; what was stored stays, and running it again goes on from there")


def test_a_rate_limited_key_waits_its_turn_and_imports_everything(database_url: str, tmp_path: Path) -> None:
    store = FileSessionManager.__new__(FileSessionManager)  # its constructor would make a session
    store.storage_dir = str(tmp_path)
    for number in range(15):
        session_id = f"limited-{number}"
        store.create_session(Session(session_id=session_id, session_type=SessionType.AGENT))
        store.create_agent(session_id, SessionAgent(agent_id="a", state={}, conversation_manager_state={}))
        store.create_message(
            session_id, "a", SessionMessage({"role": "user", "content": [{"text": "hi"}]}, 0)
        )
    slow = Settings(limits=Limits(rate_per_second=10, rate_burst=5))
    with secured_server(database_url, slow) as secured:
        started = time.monotonic()

        run = run_import(tmp_path, secured.server.url, SESSION_GRAPHQL_TOKEN=secured.key("writer"))

        assert run.returncode == 0, run.stdout + run.stderr
        # 1 look-up, then 4 requests a session: 61 requests at 10 a second after a burst of 5.
        assert time.monotonic() - started >= 5
        assert report_of(run).rows["imported"] == counts(sessions=15, agents=15, messages=15)
