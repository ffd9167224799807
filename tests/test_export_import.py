"""``session-graphql export`` and ``import --from-file``: a tenant's sessions through the API into a
file and back into another tenant, exactly (bytes, NUL characters, integers past 64 bits,
redactions, times), against a secured server. The commands run in this process (``in_process``), but
for a first export and import and a refusal, run as users run them, in processes of their own (as
test_export_import_scale and the progress-bar tests run them too): a process each cost a second or
more of start-up."""

import base64
import gzip
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from strands import Agent
from strands.session import SnapshotSessionManager

from client import GraphQLStorage
from tests.fake_model import FakeModel
from tests.secured import Secured, secured_server
from tests.terminal import on_a_terminal
from tests.test_cli import CLI, REPO, clean_env, in_process
from tests.test_import import counts, report_of

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x03"
HUGE = 2**70 + 1
TIME = "2025-03-04T05:06:07.123456+00:00"
LATER = "2025-03-05T01:02:03.654321+00:00"
LAST = "2025-03-06T09:08:07.000001+00:00"


Runner = Callable[..., subprocess.CompletedProcess[str]]


def in_a_process(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=clean_env(), cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def export(
    url: str, token: str, tenant: str, output: Path, *more: str, run: Runner = in_process
) -> subprocess.CompletedProcess[str]:
    done = run("export", "--url", url, "--token", token, "--tenant", tenant, "--output", str(output), *more)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def import_file(
    url: str, token: str, tenant: str, path: Path, run: Runner = in_process
) -> subprocess.CompletedProcess[str]:
    return run("import", "--from-file", str(path), "--url", url, "--token", token, "--tenant", tenant)


def records(path: Path) -> list[dict[str, Any]]:
    """The file's records after its header (read as the importer reads them: integers exact)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as lines:  # type: ignore[operator]
        read = [json.loads(line) for line in lines]
    assert read[0]["kind"] == "header" and read[0]["version"] == 1
    return read[1:]


def one_line(run: subprocess.CompletedProcess[str]) -> str:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    return lines[0]


MESSAGE_FIELDS = "messageId createdAt"


def store_conversations(secured: Secured, admin: str, tenant: str) -> None:
    """Two sessions with every kind of record, written with explicit times."""

    def call(query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = secured.graphql(query, variables, key=admin, tenant=tenant)
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    call(
        "mutation($s: SessionInput!) { createSession(session: $s) { sessionId } }",
        {"s": {"sessionId": "ana-1", "createdAt": TIME, "labels": {"user": "ana"}, "title": "Refund?"}},
    )
    call(
        'mutation($a: AgentInput!) { createAgent(sessionId: "ana-1", agent: $a) { agentId } }',
        {
            "a": {
                "agentId": "support",
                "state": {"big": HUGE, "nul": "a\u0000b"},
                "conversationManagerState": {"removed_message_count": 0},
                "internalState": {"interrupt_state": {"activated": False}},
                "createdAt": TIME,
                "updatedAt": LATER,
            }
        },
    )
    image = {
        "image": {
            "format": "png",
            "source": {"bytes": {"__bytes_encoded__": True, "data": base64.b64encode(PNG).decode()}},
        }
    }
    messages = [
        {
            "messageId": 0,
            "message": {"role": "user", "content": [{"text": "look\u0000here"}, image]},
            "createdAt": TIME,
        },
        {
            "messageId": 1,
            "message": {
                "role": "assistant",
                "content": [
                    {"toolUse": {"toolUseId": "t1", "name": "count", "input": {"n": HUGE, "f": 0.1}}}
                ],
            },
            "createdAt": LATER,
            "updatedAt": LAST,
        },
        {
            "messageId": 2,
            "message": {"role": "user", "content": [{"text": "my card is 4111 1111 1111 1111"}]},
            "redactMessage": {"role": "user", "content": [{"text": "[redacted]"}]},
            "createdAt": LAST,
        },
    ]
    call(
        'mutation($m: [MessageInput!]!) { appendMessages(sessionId: "ana-1", agentId: "support", '
        "messages: $m) { messageId } }",
        {"m": messages},
    )
    call(
        'mutation($m: MultiAgentInput!) { createMultiAgent(sessionId: "ana-1", multiAgent: $m) '
        "{ multiAgentId } }",
        {
            "m": {
                "multiAgentId": "team",
                "state": {"type": "swarm", "n": HUGE},
                "createdAt": TIME,
                "updatedAt": LATER,
            }
        },
    )
    call(
        "mutation($k: String!, $d: Base64!) { writeStorageObject(key: $k, data: $d) { key } }",
        {"k": "context/ana-1/stash.bin", "d": base64.b64encode(PNG).decode()},
    )
    call(
        "mutation($k: String!, $d: Base64!) { writeStorageObject(key: $k, data: $d) { key } }",
        {"k": "notes/readme.txt", "d": base64.b64encode(b"kept beside the sessions").decode()},
    )
    storage = GraphQLStorage(secured.server.url, token=admin, headers={"X-Tenant": tenant})
    try:
        manager = SnapshotSessionManager("snap-1", storage=storage, snapshot_trigger=lambda **_: True)
        agent = Agent(agent_id="helper", model=FakeModel(), session_manager=manager, callback_handler=None)
        agent("hello")
        agent("again")
    finally:
        storage.close()
    call(
        'mutation { updateSession(sessionId: "snap-1", labels: {user: "ben"}, title: "snapshots") '
        "{ sessionId } }",
        {},
    )


@pytest.fixture(scope="module")
def secured(database_url: str) -> Iterator[Secured]:
    with secured_server(database_url) as running:
        yield running


@pytest.fixture(scope="module")
def admin(secured: Secured) -> str:
    key = secured.key("admin")
    store_conversations(secured, key, "acme")
    return key


@pytest.fixture(scope="module")
def exported(secured: Secured, admin: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "acme.jsonl.gz"
    export(secured.server.url, admin, "acme", path, run=in_a_process)
    return path


def test_export_holds_every_record_exactly_as_stored(exported: Path) -> None:
    written = records(exported)
    kinds = [record["kind"] for record in written]
    assert kinds.count("session") == 2 and kinds.count("agent") == 1 and kinds.count("message") == 3
    assert kinds.count("multiAgent") == 1 and kinds[-1] == "end"
    session = next(r for r in written if r["kind"] == "session" and r["sessionId"] == "ana-1")
    assert (session["labels"], session["title"], session["createdAt"]) == ({"user": "ana"}, "Refund?", TIME)
    agent = next(r for r in written if r["kind"] == "agent")
    assert agent["state"] == {"big": HUGE, "nul": "a\u0000b"} and agent["updatedAt"] == LATER
    message = {r["messageId"]: r for r in written if r["kind"] == "message"}
    source = message[0]["message"]["content"][1]["image"]["source"]["bytes"]
    assert (
        base64.b64decode(source["data"]) == PNG
        and message[0]["message"]["content"][0]["text"] == "look\u0000here"
    )
    assert message[1]["message"]["content"][0]["toolUse"]["input"]["n"] == HUGE
    assert (message[1]["createdAt"], message[1]["updatedAt"]) == (LATER, LAST)
    assert message[2]["redactMessage"] == {"role": "user", "content": [{"text": "[redacted]"}]}
    keys = [r["key"] for r in written if r["kind"] == "storageObject"]
    assert "context/ana-1/stash.bin" in keys and keys[-1] == "notes/readme.txt"
    snapshot_keys = [key for key in keys if key.startswith("session/snap-1/")]
    assert len(snapshot_keys) == 3 and snapshot_keys[-1].endswith("snapshot_latest.json")


def test_import_into_another_tenant_then_export_gives_the_same_records(
    secured: Secured, admin: str, exported: Path, tmp_path: Path
) -> None:
    run = import_file(secured.server.url, admin, "beta", exported, run=in_a_process)

    assert run.returncode == 0, run.stdout + run.stderr
    report = report_of(run)
    assert report.rows["imported"] == counts(sessions=2, agents=2, messages=3, multi_agents=1), run.stdout
    again = tmp_path / "beta.jsonl"
    export(secured.server.url, admin, "beta", again)
    assert records(again) == records(exported)

    second = import_file(secured.server.url, admin, "beta", exported)
    assert second.returncode == 0, second.stdout + second.stderr
    rerun = report_of(second)
    assert rerun.rows["imported"] == counts() and rerun.rows["already present"]["messages"] == 3
    assert rerun.rows["already present"]["sessions"] == 2
    third = tmp_path / "beta-again.jsonl"
    export(secured.server.url, admin, "beta", third)
    assert records(third) == records(exported)


def test_since_and_session_choose_the_sessions(secured: Secured, admin: str, tmp_path: Path) -> None:
    url, named = secured.server.url, tmp_path / "named.jsonl"
    run = in_process(
        "export",
        "--url",
        url,
        "--token",
        admin,
        "--tenant",
        "acme",
        "--output",
        str(named),
        "--session",
        "ana-1",
        "missing-one",
    )
    assert run.returncode == 1 and "session 'missing-one' not found" in run.stderr, run.stderr
    kinds = [(r["kind"], r.get("sessionId", r.get("key"))) for r in records(named)]
    assert ("session", "ana-1") in kinds and ("session", "snap-1") not in kinds
    assert ("storageObject", "context/ana-1/stash.bin") in kinds
    assert ("storageObject", "notes/readme.txt") not in kinds  # objects of no session: whole tenants only
    future, past = tmp_path / "future.jsonl", tmp_path / "past.jsonl"
    export(url, admin, "acme", future, "--since", "2999-01-01T00:00:00Z")
    assert [r["kind"] for r in records(future)] == ["end"]
    export(url, admin, "acme", past, "--since", "2000-01-01")
    assert [r["sessionId"] for r in records(past) if r["kind"] == "session"] == ["ana-1", "snap-1"]
    streamed = in_process("export", "--url", url, "--token", admin, "--tenant", "acme", "--session", "ana-1")
    assert streamed.returncode == 0 and json.loads(streamed.stdout.splitlines()[0])["kind"] == "header"
    assert [json.loads(line) for line in streamed.stdout.splitlines()[1:]] == records(named)


def test_a_message_stored_with_other_content_is_reported_as_a_conflict_and_its_agent_stops(
    secured: Secured, admin: str, exported: Path
) -> None:
    assert import_file(secured.server.url, admin, "gamma", exported).returncode == 0
    changed = secured.graphql(
        'mutation { updateMessage(sessionId: "ana-1", agentId: "support", message: {messageId: 1, '
        'message: {role: "assistant", content: [{text: "other"}]}}) { messageId } }',
        key=admin,
        tenant="gamma",
    )
    assert "errors" not in changed, changed

    run = import_file(secured.server.url, admin, "gamma", exported)

    assert run.returncode == 1, run.stdout + run.stderr
    report = report_of(run)
    assert report.skipped == [
        "session ana-1 agent support message 1: conflict: the server holds this message with other "
        "content; 1 later message of this agent not imported either, since they would follow a gap"
    ]
    assert report.rows["skipped"]["messages"] == 2


def test_a_writer_key_imports_and_leaves_the_times_with_a_note(
    secured: Secured, admin: str, exported: Path
) -> None:
    writer = secured.key("writer", tenant="delta")

    run = in_process("import", "--from-file", str(exported), "--url", secured.server.url, "--token", writer)

    assert run.returncode == 0, run.stdout + run.stderr
    report = report_of(run)
    assert report.rows["imported"]["messages"] == 3
    assert any("needs an admin key" in note for note in report.notes), run.stdout


def test_mistakes_are_one_line_and_a_non_zero_exit(
    secured: Secured, admin: str, exported: Path, tmp_path: Path
) -> None:
    url = secured.server.url
    unreachable = in_a_process(
        "export", "--url", "http://127.0.0.1:9/graphql", "--output", str(tmp_path / "x.jsonl")
    )
    assert unreachable.returncode == 2 and "127.0.0.1:9" in one_line(unreachable)
    assert not (tmp_path / "x.jsonl").exists()
    bad_token = in_process(
        "export", "--url", url, "--token", "sgq_nope", "--output", str(tmp_path / "x.jsonl")
    )
    assert bad_token.returncode == 2 and "refused the token" in one_line(bad_token)
    not_export = tmp_path / "not.jsonl"
    not_export.write_text("hello\n")
    bad_file = import_file(url, admin, "epsilon", not_export)
    assert bad_file.returncode == 2 and "not a session-graphql export" in one_line(bad_file)
    future = tmp_path / "future.jsonl"
    future.write_text(
        json.dumps({"kind": "header", "format": "session-graphql-export", "version": 99}) + "\n"
    )
    wrong_version = import_file(url, admin, "epsilon", future)
    assert wrong_version.returncode == 2 and "version 99" in one_line(wrong_version)
    both = in_process("export", "--url", url, "--since", "2026-01-01", "--session", "ana-1")
    assert both.returncode == 2 and "give one of them" in one_line(both)
    bad_since = in_process("export", "--url", url, "--since", "yesterday")
    assert bad_since.returncode == 2 and "ISO 8601" in one_line(bad_since)
    dry = in_process("import", "--from-file", str(exported), "--url", url, "--dry-run")
    assert dry.returncode == 2 and "--from-dir only" in one_line(dry)
    odd = tmp_path / "odd.jsonl"
    header = {"kind": "header", "format": "session-graphql-export", "version": 1}
    odd.write_text(json.dumps(header) + "\n" + json.dumps({"kind": "session", "sessionId": "x"}) + "\n")
    odd_record = import_file(url, admin, "epsilon", odd)
    assert odd_record.returncode == 2 and "line 2: a session record" in one_line(odd_record)
    missing = import_file(url, admin, "epsilon", tmp_path / "nowhere.jsonl")
    assert missing.returncode == 2 and "does not exist" in one_line(missing)
    cut = tmp_path / "cut.jsonl"
    with gzip.open(exported) as whole:
        cut.write_bytes(b"".join(whole.readlines()[:-1]))
    short = import_file(url, admin, "epsilon", cut)
    assert short.returncode == 2 and "ends before its end line" in short.stderr, short.stderr


def test_progress_bars_go_to_stderr_on_a_terminal_only(
    secured: Secured, admin: str, exported: Path, tmp_path: Path
) -> None:
    url = secured.server.url
    out = tmp_path / "shown.jsonl"
    run, shown = on_a_terminal(
        "export", "--url", url, "--token", admin, "--tenant", "acme", "--output", str(out)
    )
    assert run.returncode == 0 and b"exporting" in shown and b"2/2" in shown and b"3 messages" in shown
    run, shown = on_a_terminal(
        "import", "--from-file", str(exported), "--url", url, "--token", admin, "--tenant", "zeta"
    )
    assert run.returncode == 0 and b"importing" in shown and b"100%" in shown
    assert "importing" not in run.stdout
    quiet = import_file(url, admin, "zeta", exported)
    assert "importing" not in quiet.stderr and "\r" not in quiet.stderr


def test_a_session_gone_on_since_the_export_keeps_its_messages_and_times(
    secured: Secured, admin: str, exported: Path
) -> None:
    url = secured.server.url
    assert import_file(url, admin, "eta", exported).returncode == 0
    went_on = secured.graphql(
        'mutation { createMessage(sessionId: "ana-1", agentId: "support", message: {messageId: 3, '
        'message: {role: "assistant", content: [{text: "later"}]}}) { messageId } }',
        key=admin,
        tenant="eta",
    )
    assert "errors" not in went_on, went_on
    times = (
        '{ session(sessionId: "ana-1") { updatedAt lastActivityAt '
        'agent(agentId: "support") { messageCount } } }'
    )
    before = secured.graphql(times, key=admin, tenant="eta")["data"]["session"]

    run = import_file(url, admin, "eta", exported)

    assert run.returncode == 0, run.stdout + run.stderr
    report = report_of(run)
    assert report.notes == [
        "session ana-1 agent support: the server holds more messages of it than the file: it has gone on "
        "since"
    ]
    assert secured.graphql(times, key=admin, tenant="eta")["data"]["session"] == before
    assert before["agent"]["messageCount"] == 4


def test_without_tenant_a_bound_key_exports_its_own_and_a_tenantless_one_the_default(
    secured: Secured, admin: str, tmp_path: Path
) -> None:
    url = secured.server.url
    own, default = tmp_path / "own.jsonl", tmp_path / "default.jsonl"
    reader = secured.key("reader", tenant="acme")
    bound = in_process("export", "--url", url, "--token", reader, "--output", str(own))
    assert bound.returncode == 0, bound.stderr
    assert {r["sessionId"] for r in records(own) if r["kind"] == "session"} == {"ana-1", "snap-1"}
    # Its listings would span every tenant (acme's sessions too) while look-ups reach default only.
    tenantless = in_process("export", "--url", url, "--token", admin, "--output", str(default))
    assert tenantless.returncode == 0, tenantless.stderr
    with default.open() as lines:
        assert json.loads(next(lines))["tenant"] == "default"
    assert [r["kind"] for r in records(default) if r["kind"] == "session"] == []
