"""Property-based fuzzing of /graphql: generated queries and mutations, valid and invalid, against a real
server, never answer 5xx, an undocumented code, a masked internal error or a traceback, and never reach
data outside the fuzzing credentials' tenant.

The fuzzer holds an admin key bound to tenant "fuzz" (so deletes and key commands run too); the known
data lives in tenant "known" under the same ids the fuzzed documents are steered to, so a tenant leak
would show as changed known data. Runs derandomized: the same documents every run.
"""

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_graphql import Mode, nodes

from graphql_api.errors import ErrorCode
from graphql_api.settings import Limits, Settings
from tests.generated_documents import SteerIds, documents, sending_settings
from tests.secured import Secured, secured_server

DOCUMENTED_CODES = frozenset(code.value for code in ErrorCode)
# Codes that only a server fault (or a database outage, which this test does not cause) produces.
FAULT_CODES = frozenset({ErrorCode.INTERNAL_SERVER_ERROR.value, ErrorCode.SERVICE_UNAVAILABLE.value})
LEAKS = ("Traceback", '.py"', 'File "/')
REPRS = ("datetime.", "Invalid isoformat", " object at 0x", "<class '", "Error(")
"""Python's own reprs in an error message: internals, not words for the caller."""

# The ids fuzzed documents are steered to, present in both tenants.
SESSION_IDS = ("s-1", "s-2")
AGENT_IDS = ("a-1", "a-2")
MULTI_AGENT_IDS = ("m-1",)
MESSAGE_IDS = (0, 1, 2)
FUZZ_KEY_LABEL = "fuzzer-9c41e7d2"
"""Nothing generated names it, so fuzzed revokeApiKey calls cannot take the fuzzer's own key away."""

EXAMPLES = 500
INVALID_EXAMPLES = 400
LARGE_EXAMPLES = 150
"""Generating a valid document costs hypothesis-graphql about 40 ms, three times sending it, and
examples past the budget are still generated, unsent: so counts that 2 shared cores send well
within the budget (about 700 valid documents fitted in it), the same documents on every machine."""
BUDGET_SECONDS = 35.0
"""Each fuzz test stops sending after this long, whatever the machine's speed."""


STEERED_STRINGS = {"sessionId": SESSION_IDS, "agentId": AGENT_IDS, "multiAgentId": MULTI_AGENT_IDS}


class _SteerIds(SteerIds):
    def __init__(self, data: st.DataObject) -> None:
        super().__init__(data, STEERED_STRINGS, MESSAGE_IDS)


# --- the servers' answers ---


@dataclass
class Tally:
    """What the fuzzer saw, so a run that only ever hit one refusal does not pass unnoticed."""

    sent: int = 0
    answered_with_data: int = 0
    codes: Counter[str] = field(default_factory=Counter)


def check_response(response: httpx.Response, document: str, tally: Tally) -> None:
    text = response.text
    context = f"document:\n{document}\nanswer ({response.status_code}):\n{text[:2000]}"
    assert response.status_code < 500, context
    for leak in LEAKS:
        assert leak not in text, context
    body = response.json()
    assert isinstance(body, dict), context
    errors = body.get("errors") or []
    for error in errors:
        code = (error.get("extensions") or {}).get("code")
        assert code in DOCUMENTED_CODES, context
        assert code not in FAULT_CODES, context
        message = error.get("message", "")
        assert "maximum recursion depth" not in message, context
        assert not any(python_text in message for python_text in REPRS), context
        tally.codes[code] += 1
    if not errors and body.get("data"):
        tally.answered_with_data += 1
    tally.sent += 1


# --- known data, in a tenant the fuzzer cannot reach ---

CREATE_AGENT = """
mutation($sid: String!, $agent: AgentInput!) { createAgent(sessionId: $sid, agent: $agent) { agentId } }
"""
APPEND = """
mutation($sid: String!, $aid: String!, $messages: [MessageInput!]!) {
  appendMessages(sessionId: $sid, agentId: $aid, messages: $messages) { messageId }
}
"""
CREATE_SESSION = "mutation($s: SessionInput!) { createSession(session: $s) { sessionId } }"
CREATE_MULTI_AGENT = """
mutation($sid: String!, $multi: MultiAgentInput!) {
  createMultiAgent(sessionId: $sid, multiAgent: $multi) { multiAgentId }
}
"""
READ_SESSION = """
query($sid: String!) {
  session(sessionId: $sid) {
    sessionId tenant sessionType createdAt updatedAt
    agents {
      agentId state conversationManagerState internalState createdAt updatedAt messageCount
      messages { messageId role message redactMessage createdAt updatedAt }
    }
    multiAgents { multiAgentId state createdAt updatedAt }
  }
}
"""


def write_tree(secured: Secured, key: str, marker: str) -> None:
    """Sessions, agents, messages and multi-agents under the steered ids, contents saying ``marker``."""

    def ok(query: str, variables: dict[str, Any]) -> None:
        body = secured.graphql(query, variables, key=key)
        assert "errors" not in body, body

    for session_id in SESSION_IDS:
        ok(CREATE_SESSION, {"s": {"sessionId": session_id, "createdAt": "2026-01-02T03:04:05.123456+00:00"}})
        for agent_id in AGENT_IDS:
            agent = {
                "agentId": agent_id,
                "state": {"owner": marker, "nested": [1, 2.5, None, {"deep": True}]},
                "conversationManagerState": {"removed": 0},
                "internalState": {"interrupts": []},
            }
            ok(CREATE_AGENT, {"sid": session_id, "agent": agent})
            messages = [
                {
                    "messageId": message_id,
                    "message": {"role": "user", "content": [{"text": f"{marker} {message_id} 😀\u0000"}]},
                    "redactMessage": {"role": "user", "content": [{"text": "[redacted]"}]}
                    if message_id == 1
                    else None,
                }
                for message_id in MESSAGE_IDS
            ]
            ok(APPEND, {"sid": session_id, "aid": agent_id, "messages": messages})
        for multi_agent_id in MULTI_AGENT_IDS:
            multi = {"multiAgentId": multi_agent_id, "state": {"owner": marker, "nodes": ["x", "y"]}}
            ok(CREATE_MULTI_AGENT, {"sid": session_id, "multi": multi})


LIST_SESSIONS = "{ sessions(first: 1000) { nodes { sessionId } } }"


def read_tree(secured: Secured, key: str) -> dict[str, Any]:
    """Everything the key's tenant holds: its listing too, so rows written into it from outside show."""
    listing = secured.graphql(LIST_SESSIONS, key=key)
    assert "errors" not in listing, listing
    tree: dict[str, Any] = {
        "listing": sorted(node["sessionId"] for node in listing["data"]["sessions"]["nodes"])
    }
    for session_id in SESSION_IDS:
        body = secured.graphql(READ_SESSION, {"sid": session_id}, key=key)
        assert "errors" not in body, body
        tree[session_id] = body["data"]["session"]
    return tree


@dataclass
class FuzzTarget:
    secured: Secured
    fuzz_key: str
    known_key: str
    known: dict[str, Any]


@pytest.fixture(scope="module")
def target(database_url: str) -> Iterator[FuzzTarget]:
    # No rate limit: the fuzzer sends far more than a key's default 50 requests a second.
    chosen = Settings(limits=replace(Limits(), rate_per_second=0))
    with secured_server(database_url, chosen) as secured:
        known_key = secured.key("writer", tenant="known", label="known-writer")
        fuzz_key = secured.key("admin", tenant="fuzz", label=FUZZ_KEY_LABEL)
        write_tree(secured, known_key, "known")
        write_tree(secured, fuzz_key, "fuzz")
        known = read_tree(secured, known_key)
        assert known["listing"] == sorted(SESSION_IDS)
        yield FuzzTarget(secured, fuzz_key, known_key, known)


def fuzz(target: FuzzTarget, mode: Mode, examples: int) -> Tally:
    """Sends ``examples`` generated documents (within ``BUDGET_SECONDS``) and checks every answer."""
    tally = Tally()
    failed: list[str] = []
    deadline = time.monotonic() + BUDGET_SECONDS
    headers = {"Authorization": f"Bearer {target.fuzz_key}", "content-type": "application/json"}
    http = target.secured.http

    @sending_settings(examples)
    @given(document=documents(mode), data=st.data())
    def send(document: graphql.DocumentNode, data: st.DataObject) -> None:
        text = graphql.print_ast(graphql.visit(document, _SteerIds(data)))
        # Past the budget only a failure found earlier is still being shrunk: that must go on sending.
        if time.monotonic() > deadline and not failed:
            return
        content = json.dumps({"query": text}, ensure_ascii=True)
        response = http.post("/graphql", content=content, headers=headers)
        try:
            check_response(response, text, tally)
        except AssertionError:
            failed.append(text)
            raise

    send()
    return tally


def assert_known_data_intact(target: FuzzTarget) -> None:
    assert read_tree(target.secured, target.known_key) == target.known


def test_fuzzed_valid_operations_get_coded_answers_and_leave_other_tenants_alone(target: FuzzTarget) -> None:
    tally = fuzz(target, Mode.POSITIVE, EXAMPLES)

    assert_known_data_intact(target)
    # The run reached the resolvers, not only the checks in front of them: most generated documents
    # carry an argument the resolvers refuse, and the derandomized 500 of today answer 24 with data.
    assert tally.sent >= 100
    assert tally.answered_with_data >= tally.sent // 25, tally


def test_fuzzed_invalid_operations_get_coded_answers_and_leave_other_tenants_alone(
    target: FuzzTarget,
) -> None:
    tally = fuzz(target, Mode.NEGATIVE, INVALID_EXAMPLES)

    assert_known_data_intact(target)
    assert tally.sent >= 50
    assert tally.codes[ErrorCode.GRAPHQL_VALIDATION_FAILED.value] >= tally.sent // 2, tally


# --- the largest fields, multiplied by aliases ---

LARGE_KEY = "other/large.bin"
LARGE_BUDGET = 4 * 1024 * 1024
ALIASES = 50


class _MultiplyRootFields(_SteerIds):
    """Also points storage keys at a large object, and repeats each root field under aliases, up to
    the alias limit: a page of large rows copied fifty times is the cheapest way to a huge answer."""

    def _steer(self, name: str, value: graphql.ValueNode) -> graphql.ValueNode | None:
        if name == "key" and isinstance(value, graphql.StringValueNode):
            return nodes.String(LARGE_KEY)
        return super()._steer(name, value)

    def enter_operation_definition(
        self, node: graphql.OperationDefinitionNode, *_: Any
    ) -> graphql.OperationDefinitionNode:
        fields = [s for s in node.selection_set.selections if isinstance(s, graphql.FieldNode)]
        if not fields:
            return node
        copies = self.data.draw(st.integers(2, max(2, ALIASES // len(fields))))
        repeated = [
            graphql.FieldNode(
                alias=graphql.NameNode(value=f"x{number}_{copy}"),
                name=field.name,
                arguments=field.arguments,
                directives=field.directives,
                selection_set=field.selection_set,
            )
            for number, field in enumerate(fields)
            for copy in range(copies)
        ]
        return graphql.OperationDefinitionNode(
            operation=node.operation,
            name=node.name,
            variable_definitions=node.variable_definitions,
            directives=node.directives,
            selection_set=graphql.SelectionSetNode(selections=tuple(repeated)),
        )


@pytest.fixture(scope="module")
def large_target(database_url: str) -> Iterator[FuzzTarget]:
    """A server with a small answer budget, and large rows where the fuzzer's ids lead."""
    chosen = Settings(limits=replace(Limits(), rate_per_second=0, max_response_bytes=LARGE_BUDGET))
    with secured_server(database_url, chosen) as secured:
        fuzz_key = secured.key("admin", tenant="fuzz-large", label=FUZZ_KEY_LABEL)
        write_tree(secured, fuzz_key, "large " + "x" * 300_000)
        large = base64.b64encode(bytes(range(256)) * 4096).decode()  # 1 MiB
        write = "mutation($k: String!, $d: Base64!) { writeStorageObject(key: $k, data: $d) { size } }"
        assert "errors" not in secured.graphql(write, {"k": LARGE_KEY, "d": large}, key=fuzz_key)
        yield FuzzTarget(secured, fuzz_key, fuzz_key, {})


def test_fuzzed_documents_repeating_the_largest_fields_get_coded_answers_within_the_budget(
    large_target: FuzzTarget,
) -> None:
    tally = Tally()
    deadline = time.monotonic() + BUDGET_SECONDS / 2
    headers = {"Authorization": f"Bearer {large_target.fuzz_key}", "content-type": "application/json"}
    http = large_target.secured.http
    largest = 0

    @sending_settings(LARGE_EXAMPLES)
    @given(document=documents(Mode.POSITIVE), data=st.data())
    def send(document: graphql.DocumentNode, data: st.DataObject) -> None:
        nonlocal largest
        # Drawn before the deadline is looked at, so that every example draws the same way.
        text = graphql.print_ast(graphql.visit(document, _MultiplyRootFields(data)))
        if time.monotonic() > deadline:
            return
        response = http.post("/graphql", content=json.dumps({"query": text}), headers=headers)
        check_response(response, text, tally)
        largest = max(largest, len(response.content))

    send()

    assert tally.sent >= 50, tally
    # Answers stay within the budget; the rest were refused whole.
    assert largest <= LARGE_BUDGET, largest
