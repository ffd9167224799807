"""The audit log: every delete and key change, written with it, read back by admins only."""

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api_calls import assert_error, data_of
from tests.secured import Secured, secured_server
from tests.test_cli import CLI, REPO, clean_env

EVENTS = """
query($first: Int, $after: String, $action: String, $sessionId: String) {
  auditEvents(first: $first, after: $after, action: $action, sessionId: $sessionId) {
    nodes { eventId occurredAt tenant actor actorRole action sessionId target requestId }
    pageInfo { hasNextPage endCursor }
  }
}
"""
SEED = """
mutation($s: String!) {
  createSession(session: {sessionId: $s}) { sessionId }
  createAgent(sessionId: $s, agent: {agentId: "bot", state: {}, conversationManagerState: {}}) { agentId }
  appendMessages(sessionId: $s, agentId: "bot", messages: [
    {messageId: 0, message: {role: "user", content: []}}
    {messageId: 1, message: {role: "user", content: []}}
  ]) { messageId }
  createMultiAgent(sessionId: $s, multiAgent: {multiAgentId: "graph", state: {}}) { multiAgentId }
}
"""


@pytest.fixture(scope="module")
def audited(database_url: str) -> Iterator[tuple[Secured, dict[str, str]]]:
    with secured_server(database_url) as secured:
        keys = {
            "admin": secured.key("admin", tenant="audited", label="auditor"),
            "writer": secured.key("writer", tenant="audited", label="agent"),
        }
        yield secured, keys


def events(secured: Secured, key: str, **variables: Any) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = data_of(secured.graphql(EVENTS, variables, key=key))["auditEvents"]["nodes"]
    return nodes


def test_each_delete_is_recorded_with_who_what_which_tenant_and_the_request_id(
    audited: tuple[Secured, dict[str, str]],
) -> None:
    secured, keys = audited
    data_of(secured.graphql(SEED, {"s": "doomed"}, key=keys["writer"]))
    deletes = [
        'mutation { deleteMessage(sessionId: "doomed", agentId: "bot", messageId: 1) }',
        'mutation { deleteMultiAgent(sessionId: "doomed", multiAgentId: "graph") }',
        'mutation { deleteAgent(sessionId: "doomed", agentId: "bot") }',
        'mutation { deleteSession(sessionId: "doomed") }',
    ]
    request_ids = []
    for document in deletes:
        response = secured.post(document, key=keys["admin"])
        assert "errors" not in response.json(), response.text
        request_ids.append(response.headers["x-request-id"])

    recorded = events(secured, keys["admin"], sessionId="doomed")

    assert [(e["action"], e["target"]) for e in recorded] == [
        ("deleteSession", {"sessionId": "doomed"}),
        ("deleteAgent", {"sessionId": "doomed", "agentId": "bot"}),
        ("deleteMultiAgent", {"sessionId": "doomed", "multiAgentId": "graph"}),
        ("deleteMessage", {"sessionId": "doomed", "agentId": "bot", "messageId": 1}),
    ]
    assert {(e["tenant"], e["actor"], e["actorRole"], e["sessionId"]) for e in recorded} == {
        ("audited", "key:auditor", "admin", "doomed")
    }
    assert [e["requestId"] for e in recorded] == request_ids[::-1]


def test_a_delete_that_finds_nothing_or_is_forbidden_records_nothing(
    audited: tuple[Secured, dict[str, str]],
) -> None:
    secured, keys = audited
    data_of(secured.graphql(SEED, {"s": "kept"}, key=keys["writer"]))

    assert_error(
        secured.graphql('mutation { deleteSession(sessionId: "never-was") }', key=keys["admin"]), "NOT_FOUND"
    )
    assert_error(
        secured.graphql('mutation { deleteSession(sessionId: "kept") }', key=keys["writer"]), "FORBIDDEN"
    )

    assert events(secured, keys["admin"], sessionId="never-was") == []
    assert events(secured, keys["admin"], sessionId="kept") == []


def test_key_changes_are_recorded_from_graphql_and_from_the_command_line(
    audited: tuple[Secured, dict[str, str]],
) -> None:
    secured, keys = audited
    data_of(
        secured.graphql(
            'mutation { createApiKey(role: READER, label: "grafana") { key } }', key=keys["admin"]
        )
    )
    data_of(secured.graphql('mutation { revokeApiKey(label: "grafana") { label } }', key=keys["admin"]))
    secured.key("writer", tenant="audited", label="old-agent")
    revoked = subprocess.run(
        [*CLI, "token", "revoke", "old-agent", "--tenant", "audited"],
        env=clean_env(DATABASE_URL=secured.database_url),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert revoked.returncode == 0, revoked.stderr

    made = events(secured, keys["admin"], action="createApiKey")
    gone = events(secured, keys["admin"], action="revokeApiKey")

    grafana = [e for e in made if e["target"]["label"] == "grafana"]
    assert len(grafana) == 1 and grafana[0]["actor"] == "key:auditor"
    assert grafana[0]["target"]["role"] == "reader" and "key" not in grafana[0]["target"]
    assert [(e["target"]["label"], e["actor"].split(":")[0]) for e in gone] == [
        ("old-agent", "cli"),
        ("grafana", "key"),
    ]


def test_the_log_pages_newest_first_with_cursors(audited: tuple[Secured, dict[str, str]]) -> None:
    secured, keys = audited
    for n in range(3):
        data_of(secured.graphql(SEED, {"s": f"paged-{n}"}, key=keys["writer"]))
        data_of(secured.graphql(f'mutation {{ deleteSession(sessionId: "paged-{n}") }}', key=keys["admin"]))

    first = data_of(secured.graphql(EVENTS, {"first": 2, "action": "deleteSession"}, key=keys["admin"]))
    page = first["auditEvents"]
    second = data_of(
        secured.graphql(
            EVENTS,
            {"first": 2, "after": page["pageInfo"]["endCursor"], "action": "deleteSession"},
            key=keys["admin"],
        )
    )["auditEvents"]

    seen = [e["sessionId"] for e in page["nodes"] + second["nodes"]]
    assert seen[:3] == ["paged-2", "paged-1", "paged-0"]
    assert page["pageInfo"]["hasNextPage"] is True
    assert len(set(e["eventId"] for e in page["nodes"] + second["nodes"])) == len(seen)


def test_a_foreign_cursor_is_bad_user_input(audited: tuple[Secured, dict[str, str]]) -> None:
    secured, keys = audited
    body = secured.graphql(EVENTS, {"after": "bm90LWEtY3Vyc29y"}, key=keys["admin"])

    assert_error(body, "BAD_USER_INPUT", field="after")
