"""The fast paths answer as the plain executor does, byte for byte, errors included.

Two servers on one database, one with SESSION_GRAPHQL_FAST_EXECUTION=true and one with false, are
sent the same requests with the same credentials (every role, in several tenants, and a tenantless
admin with and without X-Tenant), and their answers compared whole: the HTTP status, the content
type and every byte of the body. The requests are the client's own operations
(client/operations.graphql), documents hypothesis-graphql generates from schema.graphql (valid and
invalid, derandomized: the same documents every run), and requests every guard refuses.

What is allowed to differ, and is not normalised away blindly:

- the request id: a per-request value, sent in the ``x-request-id`` header and, for refusals of a
  whole request and masked internal errors, in the body's ``extensions.requestId``. That exact
  value, taken from the same answer's header, is the only thing replaced in a body.
- the ids a mutation case chose: a mutation changes data, so each side writes its own rows under
  ids of its own (``…-fast`` and ``…-plain``, everything else the same: times are given
  explicitly, so no clock is read), and the fast answer has its ids, and only those, replaced by the
  plain side's before the comparison.
"""

import base64
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_graphql import Mode, nodes

from client.operations import OPERATIONS
from db.migrate import upgrade
from graphql_api.request_ids import HEADER as REQUEST_ID_HEADER
from graphql_api.settings import Settings
from tests.conftest import RunningServer
from tests.generated_documents import (
    CUSTOM_SCALARS,
    DATETIME_VALUES,
    SCHEMA,
    SteerIds,
    documents,
    sending_settings,
)
from tests.scratch_database import scratch_database
from tests.secured import make_key
from tests.strands_messages import assistant, tool_results, user

TENANTS = ("acme", "globex", "initech")
ROLES = ("reader", "writer", "admin")
MAX_RESPONSE_BYTES = 400_000
"""Small enough that a few aliases of the large message are refused (RESPONSE_TOO_LARGE)."""

SESSION_IDS = ("s-1", "s-2", "s-3")
AGENT_IDS = ("a-1", "a-2")
MULTI_AGENT_IDS = ("m-1",)
MESSAGE_IDS = (0, 1, 2, 3, 4, 5)
STORAGE_KEYS = ("notes/a.json", "notes/ü.json", "bin/raw")
STEERED = {
    "sessionId": SESSION_IDS,
    "agentId": AGENT_IDS,
    "multiAgentId": MULTI_AGENT_IDS,
    "key": STORAGE_KEYS,
    "prefix": ("", "notes/"),
    "sessionIdPrefix": ("s-",),
}

QUERY_EXAMPLES = 300
INVALID_EXAMPLES = 80
BUDGET_SECONDS = 10.0
"""Each generated-documents test stops sending after this long, whatever the machine's speed."""


# --- two servers, one database ---


@dataclass(frozen=True)
class Credential:
    """Who asks: an API key, and the X-Tenant header a tenantless key may send."""

    name: str
    key: str | None
    tenant_header: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        sent = {} if self.key is None else {"Authorization": f"Bearer {self.key}"}
        if self.tenant_header is not None:
            sent["X-Tenant"] = self.tenant_header
        return sent


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str | None
    body: bytes
    """With the answer's own request id replaced (see the module's docstring)."""

    def describe(self) -> str:
        return f"HTTP {self.status} ({self.content_type}): {self.body[:3000].decode(errors='replace')}"


def answer_of(response: httpx.Response) -> Answer:
    body = response.content
    request_id = response.headers.get(REQUEST_ID_HEADER)
    assert request_id, response.headers
    return Answer(
        response.status_code,
        response.headers.get("content-type"),
        body.replace(request_id.encode(), b"<request id>"),
    )


@dataclass
class Tally:
    """What the comparisons covered, so a run that only ever met one refusal does not pass unnoticed."""

    compared: int = 0
    with_data: int = 0
    codes: dict[str, int] = field(default_factory=dict)

    def count(self, answer: Answer) -> None:
        self.compared += 1
        try:
            decoded = json.loads(answer.body)
        except ValueError:
            return
        if not isinstance(decoded, dict):
            return
        if decoded.get("data") and not decoded.get("errors"):
            self.with_data += 1
        for error in decoded.get("errors") or []:
            code = str((error.get("extensions") or {}).get("code"))
            self.codes[code] = self.codes.get(code, 0) + 1


@dataclass
class Pair:
    fast: httpx.Client
    plain: httpx.Client
    root: Credential
    """A tenantless admin: sets up what mutation cases need, in the tenant its X-Tenant names."""
    credentials: list[Credential]
    tally: Tally = field(default_factory=Tally)

    def send(
        self,
        client: httpx.Client,
        credential: Credential,
        content: bytes,
        *,
        method: str = "POST",
        content_type: str = "application/json",
        accept: str | None = None,
    ) -> Answer:
        headers = {**credential.headers, "content-type": content_type}
        if accept is not None:
            headers["accept"] = accept
        if method == "GET":
            return answer_of(client.get("/graphql", params={"query": content.decode()}, headers=headers))
        return answer_of(client.request(method, "/graphql", content=content, headers=headers))

    def compare(self, credential: Credential, content: bytes, **how: Any) -> Answer:
        """Sends ``content`` to both servers and asserts the answers are the same; returns it."""
        fast = self.send(self.fast, credential, content, **how)
        plain = self.send(self.plain, credential, content, **how)
        assert fast == plain, (
            f"{credential.name} sent {content[:2000].decode(errors='replace')}\n"
            f"fast:  {fast.describe()}\nplain: {plain.describe()}"
        )
        self.tally.count(plain)
        return plain

    def compare_graphql(
        self,
        credential: Credential,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> Answer:
        request: dict[str, Any] = {"query": query}
        if variables is not None:
            request["variables"] = variables
        if operation_name is not None:
            request["operationName"] = operation_name
        return self.compare(credential, json.dumps(request).encode())

    def setup(
        self, client: httpx.Client, tenant: str | None, query: str, variables: Mapping[str, Any]
    ) -> None:
        """A write the comparison needs done first; it must succeed."""
        headers = Credential("root", self.root.key, tenant).headers
        response = client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
        assert response.status_code == 200 and "errors" not in response.json(), response.text


def tenant_of(credential: Credential) -> str | None:
    """The tenant a credential's writes land in (None: the tenantless key's default tenant)."""
    if credential.tenant_header is not None:
        return credential.tenant_header
    bound = credential.name.split("/")[0]
    return None if bound == "*" else bound


@pytest.fixture(scope="module")
def pair(database_url: str) -> Iterator[Pair]:
    with scratch_database(database_url) as url:
        upgrade(url)
        # Keys first: a server reads them when it starts, and then every few seconds.
        credentials = [
            Credential(f"{tenant}/{role}", make_key(url, role, tenant, label=f"{tenant}-{role}"))
            for tenant in TENANTS
            for role in ROLES
        ]
        root_key = make_key(url, "admin", label="root")
        credentials += [
            Credential("*/admin", root_key),
            *(Credential(f"*/admin as {tenant}", root_key, tenant) for tenant in TENANTS[:2]),
        ]
        environment = {
            "DATABASE_URL": url,
            "SESSION_GRAPHQL_RATE_LIMIT": "0",  # the comparisons send far more than a key's rate
            "SESSION_GRAPHQL_MAX_RESPONSE_BYTES": str(MAX_RESPONSE_BYTES),
        }
        servers = [
            RunningServer(Settings.from_env({**environment, "SESSION_GRAPHQL_FAST_EXECUTION": switch}))
            for switch in ("true", "false")
        ]
        assert [server.settings.fast_execution for server in servers] == [True, False]
        for server in servers:
            server.start()
        fast, plain = (httpx.Client(base_url=server.base_url, timeout=60) for server in servers)
        try:
            made = Pair(fast, plain, Credential("*/admin", root_key), credentials)
            for tenant in TENANTS:
                seed(made, tenant)
            yield made
        finally:
            fast.close()
            plain.close()
            for server in servers:
                server.stop()


# --- what each tenant holds ---

SEED_SESSIONS = """
mutation {
  s1: createSession(session: {sessionId: "s-1", createdAt: "2026-03-01T10:00:00+00:00",
                              labels: {team: "core", user: "ana"}, title: "Première ✨"}) { sessionId }
  s2: createSession(session: {sessionId: "s-2", createdAt: "2026-03-02T11:30:00.5+02:00",
                              labels: {team: "edge"}}) { sessionId }
  s3: createSession(session: {sessionId: "s-3"}) { sessionId }
  big: createSession(session: {sessionId: "big", createdAt: "2026-03-03T00:00:00+00:00"}) { sessionId }
}
"""
CREATE_AGENT = """
mutation($sid: String!, $agent: AgentInput!) { createAgent(sessionId: $sid, agent: $agent) { agentId } }
"""
APPEND = """
mutation($sid: String!, $aid: String!, $messages: [MessageInput!]!) {
  appendMessages(sessionId: $sid, agentId: $aid, messages: $messages) { messageId }
}
"""
CREATE_MULTI_AGENT = """
mutation($sid: String!, $multi: MultiAgentInput!) {
  createMultiAgent(sessionId: $sid, multiAgent: $multi) { multiAgentId }
}
"""
CREATE_SESSION = "mutation($s: SessionInput!) { createSession(session: $s) { sessionId } }"
WRITE_OBJECT = "mutation($k: String!, $d: Base64!) { writeStorageObject(key: $k, data: $d) { key } }"
LARGE_TEXT = "large ✓ " * 20_000
"""200 KB written: one copy fits ``MAX_RESPONSE_BYTES``, two do not."""


def conversation(said: str) -> list[dict[str, Any]]:
    """Messages as Strands writes them: unicode text and escapes, tool calls and results (one
    failed), a redacted message, usage and latency on assistant messages, reasoning."""
    reasoning = {"reasoningContent": {"reasoningText": {"text": "thinking…", "signature": "sig"}}}
    return [
        {"messageId": 0, "message": user(f'{said}: héllo 😀 שלום e\u0301 \u2028 "quoted" \\ tab\t')},
        {
            "messageId": 1,
            "message": assistant(
                "let me look",
                tools=[("t-1", "search", {"q": "weather", "n": 3}), ("t-2", "calc", {"x": [1, 2.5]})],
                usage=(120, 30, 150),
                cache=(10, 5),
                latency_ms=812.4,
                first_byte_ms=90,
            ),
        },
        {"messageId": 2, "message": tool_results(("t-1", "success"), ("t-2", "error"), said="42")},
        {
            "messageId": 3,
            "message": user("my card is 4111 1111 1111 1111"),
            "redactMessage": user("[redacted]"),
        },
        {
            "messageId": 4,
            "message": assistant(f"done for {said} ✓", usage=(200, 40, 240), latency_ms=1500),
            "createdAt": "2026-03-05T12:00:00.123456+00:00",
            "updatedAt": "2026-03-05T12:00:01+00:00",
        },
        {"messageId": 5, "message": {"role": "assistant", "content": [reasoning, {"text": ""}]}},
    ]


def seed(pair: Pair, tenant: str) -> None:
    """Sessions with agents, messages, multi-agent states and storage objects, written once (through
    the plain server: both read the same rows)."""
    pair.setup(pair.plain, tenant, SEED_SESSIONS, {})
    for session_id in SESSION_IDS:
        for number, agent_id in enumerate(AGENT_IDS):
            agent = {
                "agentId": agent_id,
                "state": {"owner": tenant, "nested": [1, 2.5, None, {"deep": True, "ü": "ß"}]},
                "conversationManagerState": {"removed_message_count": number},
                "internalState": {"interrupt_state": {"activated": False}},
                "createdAt": f"2026-03-0{number + 1}T09:00:00+00:00",
            }
            pair.setup(pair.plain, tenant, CREATE_AGENT, {"sid": session_id, "agent": agent})
            messages = conversation(f"{tenant} {session_id} {agent_id}")
            pair.setup(pair.plain, tenant, APPEND, {"sid": session_id, "aid": agent_id, "messages": messages})
        state = {"type": "graph", "status": "completed", "node_history": list(AGENT_IDS), "tenant": tenant}
        multi = {"multiAgentId": "m-1", "state": state}
        pair.setup(pair.plain, tenant, CREATE_MULTI_AGENT, {"sid": session_id, "multi": multi})
    big_agent = {"agentId": "a-1", "state": {}, "conversationManagerState": {}}
    pair.setup(pair.plain, tenant, CREATE_AGENT, {"sid": "big", "agent": big_agent})
    big_message = {"messageId": 0, "message": user(LARGE_TEXT)}
    pair.setup(pair.plain, tenant, APPEND, {"sid": "big", "aid": "a-1", "messages": [big_message]})
    objects = {
        "notes/a.json": json.dumps({"note": f"{tenant} secret words", "n": 1}).encode(),
        "notes/ü.json": json.dumps({"note": "ünïcödé words"}, ensure_ascii=False).encode(),
        "bin/raw": bytes(range(256)),
    }
    for key, data in objects.items():
        pair.setup(pair.plain, tenant, WRITE_OBJECT, {"k": key, "d": base64.b64encode(data).decode()})


# --- the client's queries ---

S, A = "s-1", "a-1"
QUERY_CASES: dict[str, list[dict[str, Any]]] = {
    "ReadSession": [{"sessionId": S}, {"sessionId": "s-3"}, {"sessionId": "nope"}, {"sessionId": ""}],
    "ListSessions": [{"first": 2}, {"first": 1000}, {"first": 0}, {"first": -1}, {"first": 1001}],
    "ReadAgent": [
        {"sessionId": S, "agentId": A},
        {"sessionId": S, "agentId": "nope"},
        {"sessionId": "nope", "agentId": A},
    ],
    "ReadMessage": [
        *({"sessionId": S, "agentId": "a-2", "messageId": number} for number in (*MESSAGE_IDS, 99, -1)),
        {"sessionId": "big", "agentId": A, "messageId": 0},
    ],
    "ListMessages": [
        {"sessionId": S, "agentId": A, "offset": 0},
        {"sessionId": S, "agentId": A, "offset": 1, "limit": 2},
        {"sessionId": S, "agentId": A, "offset": 0, "limit": 0},
        {"sessionId": S, "agentId": A, "offset": -1},
        {"sessionId": S, "agentId": A, "offset": 0, "limit": 100_000},
        {"sessionId": "nope", "agentId": A, "offset": 0},
    ],
    "ReadMultiAgent": [{"sessionId": S, "multiAgentId": "m-1"}, {"sessionId": S, "multiAgentId": "nope"}],
    "ReadStorageObject": [{"key": key} for key in (*STORAGE_KEYS, "missing", "../notes/a.json", "")],
    "ListStorageKeys": [
        {"prefix": ""},
        {"prefix": "notes/", "first": 1},
        {"prefix": "", "after": "bin/raw"},
        {"prefix": "", "first": 0},
        {"prefix": "", "first": -1},
    ],
    "SearchStorage": [
        {"query": "secret words", "prefix": "", "first": 10},
        {"query": "ünïcödé", "prefix": "notes/", "first": 1},
        {"query": "", "prefix": "", "first": 10},
        {"query": "words", "prefix": "", "first": -1},
    ],
    "LastMessageId": [
        {"sessionId": S, "agentId": A},
        {"sessionId": "big", "agentId": A},
        {"sessionId": S, "agentId": "nope"},
    ],
    "ExportSessions": [
        {"first": 2},
        {"filter": {"sessionIdPrefix": "s-"}, "first": 10},
        {"filter": {"labels": {"team": "core"}}, "first": 5},
        {"filter": {"created": {"start": "2026-03-02T00:00:00Z"}, "contentType": "TOOL_USE"}, "first": 5},
        {"filter": {"labels": "not an object"}, "first": 5},
    ],
    "CountSessions": [{}, {"filter": {"agentId": "a-2"}}, {"filter": {"role": "assistant"}}],
    "ExportSession": [{"sessionId": S}, {"sessionId": "big"}, {"sessionId": "nope"}],
    "ExportAgents": [
        {"sessionId": S, "offset": 0, "limit": 10},
        {"sessionId": S, "offset": 1, "limit": 1},
        {"sessionId": S, "offset": 0, "limit": 100_000},
    ],
    "ExportAgent": [{"sessionId": S, "agentId": A}, {"sessionId": "big", "agentId": A}],
    "ExportMessages": [
        {"sessionId": S, "agentId": A, "first": 2},
        {"sessionId": S, "agentId": "a-2", "first": 1000},
        {"sessionId": "big", "agentId": A, "first": 1},
        {"sessionId": S, "agentId": A, "first": 2, "after": "bad cursor"},
    ],
    "ExportMultiAgents": [
        {"sessionId": S, "offset": 0, "limit": 10},
        {"sessionId": "s-2", "offset": 1, "limit": 1},
    ],
}


def next_page(answer: Answer, variables: Mapping[str, Any]) -> dict[str, Any] | None:
    """The variables for the page after ``answer``'s, when it says there is one."""
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("hasNextPage") is True:
                found.append(value)
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(json.loads(answer.body).get("data"))
    if not found:
        return None
    page = found[0]
    after = page.get("endCursor")
    if after is None and page.get("keys"):
        after = page["keys"][-1]  # storage keys page on from their last key
    return None if after is None else {**variables, "after": after}


def test_every_client_operation_has_cases() -> None:
    """A new operation in client/operations.graphql must be added here (subscriptions aside)."""
    kinds = {name: operation.document.definitions for name, operation in OPERATIONS.items()}
    operation_kinds = {
        name: next(d.operation.value for d in definitions if isinstance(d, graphql.OperationDefinitionNode))
        for name, definitions in kinds.items()
    }
    assert {name for name, kind in operation_kinds.items() if kind == "query"} == set(QUERY_CASES)
    assert {name for name, kind in operation_kinds.items() if kind == "mutation"} == {
        case.operation for case in MUTATION_CASES
    }


def test_the_clients_queries_answer_the_same_for_every_role_and_tenant(pair: Pair) -> None:
    sent = 0
    for credential in pair.credentials:
        for name, cases in QUERY_CASES.items():
            operation = OPERATIONS[name]
            for variables in cases:
                following: dict[str, Any] | None = variables
                pages = 0
                while following is not None and pages < 3:
                    answer = pair.compare_graphql(credential, operation.query, following, name)
                    sent += 1
                    pages += 1
                    following = next_page(answer, following) if answer.status == 200 else None
    assert sent >= len(pair.credentials) * sum(map(len, QUERY_CASES.values()))
    assert pair.tally.with_data >= sent // 2, pair.tally
    assert "BAD_USER_INPUT" in pair.tally.codes, pair.tally


# --- the client's mutations ---

T0, T1, T2 = "2026-04-01T08:00:00+00:00", "2026-04-02T09:30:00.25+00:00", "2026-04-03T10:45:00+00:00"
NOTHING, SESSION, AGENT, MESSAGE, MULTI_AGENT, OBJECT = (
    "nothing",
    "session",
    "agent",
    "message",
    "multi",
    "object",
)


@dataclass(frozen=True)
class MutationCase:
    """One of the client's mutations, what must exist before it runs (``needs``), and its variables
    given the session id (and storage keys) of the side it runs on."""

    operation: str
    needs: str
    variables: Callable[[str], dict[str, Any]]


def agent_input(**more: Any) -> dict[str, Any]:
    return {"agentId": "a", "state": {"k": [1, "ü"]}, "conversationManagerState": {"removed": 0}, **more}


MUTATION_CASES = (
    MutationCase(
        "CreateSession",
        NOTHING,
        lambda sid: {
            "session": {
                "sessionId": sid,
                "createdAt": T1,
                "updatedAt": T2,
                "labels": {"user": "zoë"},
                "title": "t ✓",
            }
        },
    ),
    MutationCase("CreateSession", SESSION, lambda sid: {"session": {"sessionId": sid, "createdAt": T1}}),
    MutationCase(
        "CreateSession", NOTHING, lambda sid: {"session": {"sessionId": sid, "createdAt": "2026-13-01"}}
    ),
    MutationCase(
        "UpdateSession", SESSION, lambda sid: {"sessionId": sid, "labels": {"team": "ops"}, "title": "x"}
    ),
    MutationCase("UpdateSession", NOTHING, lambda sid: {"sessionId": sid, "title": "x"}),
    MutationCase("DeleteSession", AGENT, lambda sid: {"sessionId": sid}),
    MutationCase("DeleteSession", NOTHING, lambda sid: {"sessionId": sid}),
    MutationCase("CreateAgent", SESSION, lambda sid: {"sessionId": sid, "agent": agent_input(createdAt=T1)}),
    MutationCase("CreateAgent", NOTHING, lambda sid: {"sessionId": sid, "agent": agent_input()}),
    MutationCase(
        "UpdateAgent",
        AGENT,
        lambda sid: {"sessionId": sid, "agent": agent_input(state={"k": 2}, updatedAt=T2)},
    ),
    MutationCase("DeleteAgent", AGENT, lambda sid: {"sessionId": sid, "agentId": "a"}),
    MutationCase(
        "CreateMessage",
        AGENT,
        lambda sid: {"sessionId": sid, "agentId": "a", "message": {**conversation(sid)[1], "createdAt": T1}},
    ),
    MutationCase(
        "CreateMessage",
        MESSAGE,
        lambda sid: {"sessionId": sid, "agentId": "a", "message": {"messageId": 0, "message": user("other")}},
    ),
    MutationCase(
        "AppendMessages",
        AGENT,
        lambda sid: {
            "sessionId": sid,
            "agentId": "a",
            "messages": [{**m, "createdAt": T1} for m in conversation(sid)],
        },
    ),
    MutationCase(
        "UpdateMessage",
        MESSAGE,
        lambda sid: {
            "sessionId": sid,
            "agentId": "a",
            "message": {
                "messageId": 0,
                "message": user("edited"),
                "redactMessage": user("[r]"),
                "updatedAt": T2,
            },
        },
    ),
    MutationCase(
        "CreateMultiAgent",
        SESSION,
        lambda sid: {
            "sessionId": sid,
            "multiAgent": {"multiAgentId": "m", "state": {"n": ["x"]}, "createdAt": T1},
        },
    ),
    MutationCase(
        "UpdateMultiAgent",
        MULTI_AGENT,
        lambda sid: {
            "sessionId": sid,
            "multiAgent": {"multiAgentId": "m", "state": {"n": []}, "updatedAt": T2},
        },
    ),
    MutationCase(
        "WriteStorageObject",
        NOTHING,
        lambda sid: {"key": f"obj/{sid}/ü.json", "data": base64.b64encode('{"a": "ü"}'.encode()).decode()},
    ),
    MutationCase("WriteStorageObject", NOTHING, lambda sid: {"key": f"obj/{sid}", "data": "not base64!"}),
    MutationCase("DeleteStorageObject", OBJECT, lambda sid: {"key": f"obj/{sid}"}),
    MutationCase(
        "RestoreSession",
        NOTHING,
        lambda sid: {"session": {"sessionId": sid, "createdAt": T0, "updatedAt": T1, "title": "restored"}},
    ),
    MutationCase("RestoreAgent", SESSION, lambda sid: {"sessionId": sid, "agent": agent_input(createdAt=T0)}),
    MutationCase(
        "RestoreMultiAgent",
        SESSION,
        lambda sid: {"sessionId": sid, "multiAgent": {"multiAgentId": "m", "state": {}, "createdAt": T0}},
    ),
    MutationCase(
        "RestoreSessionLabels", SESSION, lambda sid: {"sessionId": sid, "labels": {"a": "b"}, "title": None}
    ),
    MutationCase(
        "RestoreSessionTimes",
        AGENT,
        lambda sid: {
            "sessionId": sid,
            "updatedAt": T2,
            "lastActivityAt": T2,
            "agents": [{"agentId": "a", "lastActivityAt": T2}],
        },
    ),
)


def prepare(pair: Pair, client: httpx.Client, tenant: str | None, needs: str, sid: str) -> None:
    """Writes what a mutation case needs under ``sid``, with given times only."""
    if needs == OBJECT:
        pair.setup(client, tenant, WRITE_OBJECT, {"k": f"obj/{sid}", "d": base64.b64encode(b"{}").decode()})
        return
    if needs == NOTHING:
        return
    pair.setup(client, tenant, CREATE_SESSION, {"s": {"sessionId": sid, "createdAt": T0, "updatedAt": T0}})
    if needs in (AGENT, MESSAGE):
        pair.setup(
            client, tenant, CREATE_AGENT, {"sid": sid, "agent": agent_input(createdAt=T0, updatedAt=T0)}
        )
    if needs == MESSAGE:
        message = {"messageId": 0, "message": user("first"), "createdAt": T0, "updatedAt": T0}
        pair.setup(client, tenant, APPEND, {"sid": sid, "aid": "a", "messages": [message]})
    if needs == MULTI_AGENT:
        multi = {"multiAgentId": "m", "state": {}, "createdAt": T0, "updatedAt": T0}
        pair.setup(client, tenant, CREATE_MULTI_AGENT, {"sid": sid, "multi": multi})


def test_the_clients_mutations_answer_the_same_for_every_role_and_tenant(pair: Pair) -> None:
    """Each side runs the mutation on rows of its own, made the same way under its own ids."""
    outcomes: dict[str, int] = {}
    # Every role in two tenants, and the tenantless admin: the third tenant adds time, not cases.
    writers = [c for c in pair.credentials if not c.name.startswith(TENANTS[2])]
    for number, (credential, case) in enumerate(
        (credential, case) for credential in writers for case in MUTATION_CASES
    ):
        tenant = tenant_of(credential)
        operation = OPERATIONS[case.operation]
        answers = []
        for side, client in (("fast", pair.fast), ("plain", pair.plain)):
            sid = f"mut{number:04d}-{side}"
            prepare(pair, client, tenant, case.needs, sid)
            request = {
                "query": operation.query,
                "variables": case.variables(sid),
                "operationName": case.operation,
            }
            answers.append(pair.send(client, credential, json.dumps(request).encode()))
        fast, plain = answers
        fast_sid, plain_sid = f"mut{number:04d}-fast".encode(), f"mut{number:04d}-plain".encode()
        assert fast_sid not in plain.body and plain_sid not in fast.body
        normalised = Answer(fast.status, fast.content_type, fast.body.replace(fast_sid, plain_sid))
        assert normalised == plain, (
            f"{credential.name} {case.operation} ({case.needs}):\n"
            f"fast:  {fast.describe()}\nplain: {plain.describe()}"
        )
        pair.tally.count(plain)
        decoded = json.loads(plain.body)
        code = (decoded.get("errors") or [{}])[0].get("extensions", {}).get("code", "ok")
        outcomes[code] = outcomes.get(code, 0) + 1
    # Readers are refused every write, writers the admins' ones; the rest went through or failed as asked.
    assert {"ok", "FORBIDDEN", "ALREADY_EXISTS", "NOT_FOUND", "CONFLICT", "BAD_USER_INPUT"} <= set(
        outcomes
    ), outcomes


# --- requests refused, whole or in part ---


def nested(levels: int) -> str:
    """``levels`` object fields each inside the other (session, agent, session, ...), on seeded rows."""
    fields = ['session(sessionId: "s-1")'] + [
        'agent(agentId: "a-1")' if level % 2 == 0 else "session" for level in range(levels - 1)
    ]
    inner = "sessionId title"
    for name in reversed(fields):
        inner = f"{name} {{ {inner} }}"
    return "{ " + inner + " }"


BIG_MESSAGE = 'message(sessionId: "big", agentId: "a-1", messageId: 0) { message }'
REFUSALS: list[tuple[str, bytes, dict[str, str]]] = [
    ("parse error", json.dumps({"query": "{"}).encode(), {}),
    ("unknown field", json.dumps({"query": "{ nope session { x } }"}).encode(), {}),
    ("not JSON", b"{", {}),
    ("empty body", b"", {}),
    ("query not a string", b'{"query": 5}', {}),
    ("no query", b"{}", {}),
    ("variables not an object", b'{"query": "{ __typename }", "variables": [1]}', {}),
    ("a batch", b'[{"query": "{ __typename }"}]', {}),
    ("text/plain", b'{"query": "{ __typename }"}', {"content_type": "text/plain"}),
    ("GET", b'{ session(sessionId: "s-1") { sessionId title } }', {"method": "GET"}),
    ("GET of a mutation", b'mutation { deleteSession(sessionId: "s-1") }', {"method": "GET"}),
    ("PUT", b'{"query": "{ __typename }"}', {"method": "PUT"}),
    (
        "graphql-response+json, invalid",
        json.dumps({"query": "{ nope }"}).encode(),
        {"accept": "application/graphql-response+json"},
    ),
    (
        "graphql-response+json, valid",
        json.dumps({"query": '{ session(sessionId: "s-1") { title labels } }'}).encode(),
        {"accept": "application/graphql-response+json"},
    ),
]


def refusal_documents() -> list[tuple[str, dict[str, Any]]]:
    """GraphQL requests each limit or argument check refuses, and a few that fail in part."""
    aliases = " ".join(f'a{n}: session(sessionId: "s-1") {{ sessionId }}' for n in range(60))
    costly = (
        "{ sessions(first: 1000) { nodes { agents(limit: 1000) { messages(limit: 1000) { message } } } } }"
    )
    return [
        ("too deep", {"query": nested(16)}),
        ("deep enough", {"query": nested(15)}),
        ("too many aliases", {"query": "{ " + aliases + " }"}),
        ("too many tokens", {"query": "{ " + " ".join(f"a{n}: __typename" for n in range(3400)) + " }"}),
        ("document too large", {"query": "# " + "x" * 100_001 + "\n{ __typename }"}),
        ("too costly", {"query": costly}),
        ("answer too large", {"query": "{ " + " ".join(f"m{n}: {BIG_MESSAGE}" for n in range(3)) + " }"}),
        ("answer within the budget", {"query": "{ " + BIG_MESSAGE + " }"}),
        ("page too large", {"query": "{ sessions(first: 1001) { totalCount } }"}),
        ("negative page", {"query": "{ sessions(first: -1) { totalCount } }"}),
        (
            "Int overflow",
            {"query": '{ message(sessionId: "s-1", agentId: "a-1", messageId: 2147483648) { role } }'},
        ),
        ("negative limit", {"query": '{ session(sessionId: "s-1") { agents(limit: -5) { agentId } } }'}),
        (
            "variable of the wrong type",
            {"query": "query($s: String!) { session(sessionId: $s) { sessionId } }", "variables": {"s": 5}},
        ),
        ("variable missing", {"query": "query($s: String!) { session(sessionId: $s) { sessionId } }"}),
        ("two operations, none named", {"query": "query A { __typename } query B { __typename }"}),
        ("unknown operation name", {"query": "query A { __typename }", "operationName": "B"}),
        (
            "named operation",
            {"query": "query A { __typename } query B { apiKeys { role } }", "operationName": "B"},
        ),
        (
            "partly failing",
            {
                "query": '{ a: session(sessionId: "s-1") { sessionId messageCount } '
                'b: message(sessionId: "s-1", agentId: "a-1", messageId: -1) { messageId } '
                'c: agent(sessionId: "s-1", agentId: "a-1") { messages(limit: 100000) { messageId } } '
                'd: sessions(first: 2, after: "garbage") { totalCount } }'
            },
        ),
        ("unknown ids, nested", {"query": '{ session(sessionId: "nope") { agents { agentId } } }'}),
        (
            "admins' fields",
            {
                "query": "{ apiKeys { label role tenant createdAt createdBy revokedAt } "
                "retentionRules { tenant } auditEvents { nodes { action tenant actor } } }"
            },
        ),
        (
            "a whole session",
            {
                "query": '{ session(sessionId: "s-1") { sessionId tenant labels title lastActivityAt '
                "messageCount "
                "totals { __typename } agents { agentId state messageCount lastMessage { messageId } "
                "messages { messageId role message redactMessage createdAt updatedAt } } "
                "multiAgents { multiAgentId state } } }"
            },
        ),
        ("introspection", {"query": graphql.get_introspection_query()}),
        ("a mutation refused in part", {"query": 'mutation { a: deleteSession(sessionId: "nope") }'}),
    ]


def test_refusals_and_partial_failures_answer_the_same_for_every_role_and_tenant(pair: Pair) -> None:
    # A wrong key costs the server a hash check each time: a few requests say enough.
    wrong = Credential("a wrong key", "sgq_0123456789abcdef_" + "A" * 43)
    for _, content, how in REFUSALS[:3]:
        assert pair.compare(wrong, content, **how).status == 401
    for credential in [*pair.credentials, Credential("no key", None)]:
        # Refusals of the HTTP request come before any executor: one tenant's roles are enough.
        if credential.name.startswith(TENANTS[0]) or credential.key is None:
            for _, content, how in REFUSALS:
                pair.compare(credential, content, **how)
        for _, request in refusal_documents():
            pair.compare(credential, json.dumps(request).encode())
    codes = set(pair.tally.codes)
    expected = {
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "BAD_REQUEST",
        "BAD_USER_INPUT",
        "QUERY_TOO_DEEP",
        "TOO_MANY_ALIASES",
        "TOO_MANY_TOKENS",
        "DOCUMENT_TOO_LARGE",
        "QUERY_TOO_COSTLY",
        "RESPONSE_TOO_LARGE",
        "FORBIDDEN",
        "UNAUTHENTICATED",
    }
    assert expected <= codes, sorted(codes)


# --- generated documents ---

QUERY_FIELDS = tuple(graphql.build_schema(SCHEMA).query_type.fields)  # type: ignore[union-attr]
TIME_VALUES = st.one_of(
    DATETIME_VALUES,
    st.integers(0, 2**41).map(nodes.Int),
    st.integers(0, 2**41).map(lambda millis: nodes.String(str(millis))),
)
SCALARS = {**CUSTOM_SCALARS, "Time": TIME_VALUES}


def compare_generated(pair: Pair, mode: Mode, examples: int) -> int:
    """Sends ``examples`` generated queries (within ``BUDGET_SECONDS``), each with a credential drawn
    from every role and tenant, to both servers; returns how many were compared."""
    compared = 0
    failed: list[str] = []
    deadline = time.monotonic() + BUDGET_SECONDS

    @sending_settings(examples)
    @given(document=documents(mode, fields=QUERY_FIELDS, custom_scalars=SCALARS), data=st.data())
    def send(document: graphql.DocumentNode, data: st.DataObject) -> None:
        nonlocal compared
        text = graphql.print_ast(graphql.visit(document, SteerIds(data, STEERED, MESSAGE_IDS)))
        credential = data.draw(st.sampled_from(pair.credentials))
        # Past the budget only a failure found earlier is still being shrunk: that must go on sending.
        if time.monotonic() > deadline and not failed:
            return
        try:
            pair.compare(credential, json.dumps({"query": text}).encode())
        except AssertionError:
            failed.append(text)
            raise
        compared += 1

    send()
    return compared


def test_generated_queries_answer_the_same_for_every_role_and_tenant(pair: Pair) -> None:
    compared = compare_generated(pair, Mode.POSITIVE, QUERY_EXAMPLES)
    assert compared >= 50
    # The comparisons reached the resolvers, not only the checks in front of them.
    assert pair.tally.with_data >= compared // 5, pair.tally


def test_generated_invalid_queries_answer_the_same_for_every_role_and_tenant(pair: Pair) -> None:
    compared = compare_generated(pair, Mode.NEGATIVE, INVALID_EXAMPLES)
    assert compared >= 30
    assert pair.tally.codes.get("GRAPHQL_VALIDATION_FAILED", 0) >= compared // 2, pair.tally
