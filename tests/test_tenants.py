"""Tenants: credentials of tenant A can neither see nor touch tenant B's data, through any root field.

The same session id in two tenants is two sessions. Every root field of the schema has a case
here (``test_every_root_field_is_tried_across_tenants`` fails when one is added without one).
"""

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from graphql_api.schema import schema
from tests.api_calls import assert_error, data_of
from tests.secured import Secured, secured_server

A, B = "acme", "globex"
MESSAGE = {"role": "user", "content": [{"text": "b's secret words"}]}

SEED = """
mutation($state: JSON!, $message: JSON!) {
  shared: createSession(session: {sessionId: "shared"}) { sessionId }
  only: createSession(session: {sessionId: "b-only"}) { sessionId }
  a1: createAgent(sessionId: "b-only", agent: {agentId: "bot", state: $state, conversationManagerState: {}}) {
    agentId
  }
  a2: createAgent(sessionId: "shared", agent: {agentId: "bot", state: $state, conversationManagerState: {}}) {
    agentId
  }
  m1: appendMessages(sessionId: "b-only", agentId: "bot", messages: [{messageId: 0, message: $message}]) {
    messageId
  }
  m2: appendMessages(sessionId: "shared", agentId: "bot", messages: [
    {messageId: 0, message: $message}
    {messageId: 1, message: $message}
  ]) { messageId }
  g: createMultiAgent(sessionId: "b-only", multiAgent: {multiAgentId: "graph", state: $state}) {
    multiAgentId
  }
}
"""
B_STATE = {"owner": "globex"}
B_OBJECT_KEY = "notes/b.json"
B_OBJECT = base64.b64encode(b'{"note": "secret words"}').decode()
WRITE_OBJECT = "mutation($k: String!, $d: Base64!) { writeStorageObject(key: $k, data: $d) { key } }"


class Tenants:
    def __init__(self, secured: Secured) -> None:
        self.secured = secured
        self.keys = {
            (tenant, role): secured.key(role, tenant=tenant, label=f"{role}")
            for tenant in (A, B)
            for role in ("reader", "writer", "admin")
        }
        self.root = secured.key("admin", label="root")

    def call(
        self, tenant: str, role: str, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.secured.graphql(query, variables, key=self.keys[(tenant, role)])

    def b_snapshot(self) -> dict[str, Any]:
        """Everything tenant B holds, as B itself reads it."""
        query = """{
          sessions(first: 100) { nodes { sessionId tenant agents { agentId state messageCount
            messages(limit: 10) { messageId message } } multiAgents { multiAgentId state } } }
          apiKeys { label role }
          storageKeys { keys }
          storageObject(key: "notes/b.json")
        }"""
        return data_of(self.call(B, "admin", query))


@pytest.fixture(scope="module")
def tenants(database_url: str) -> Iterator[Tenants]:
    with secured_server(database_url) as secured:
        both = Tenants(secured)
        data_of(both.call(B, "writer", SEED, {"state": B_STATE, "message": MESSAGE}))
        a_seed = 'mutation { createSession(session: {sessionId: "shared"}) { sessionId } }'
        data_of(both.call(A, "writer", a_seed))
        data_of(
            both.call(B, "admin", 'mutation { createApiKey(role: READER, label: "b-dashboard") { key } }')
        )
        data_of(both.call(B, "writer", WRITE_OBJECT, {"k": B_OBJECT_KEY, "d": B_OBJECT}))
        yield both


@pytest.fixture
def b_unchanged(tenants: Tenants) -> Iterator[None]:
    before = tenants.b_snapshot()
    yield
    assert tenants.b_snapshot() == before


def not_found_message(body: dict[str, Any], own_id: str) -> str:
    """The NOT_FOUND message with the id asked for taken out, to compare with one for a made-up id."""
    return str(assert_error(body, "NOT_FOUND")["message"]).replace(own_id, "<id>")


# Each case: (root field, what tenant A's credentials try, and what must come of it).
def _session(t: Tenants) -> None:
    assert data_of(t.call(A, "reader", '{ session(sessionId: "b-only") { sessionId } }'))["session"] is None
    shared = data_of(t.call(A, "reader", '{ session(sessionId: "shared") { tenant agents { agentId } } }'))
    assert shared["session"] == {"tenant": A, "agents": []}


def _sessions(t: Tenants) -> None:
    listed = data_of(t.call(A, "reader", "{ sessions(first: 100) { nodes { sessionId tenant } } }"))
    assert listed["sessions"]["nodes"] == [{"sessionId": "shared", "tenant": A}]
    # A cursor from B's listing only says where A's own listing resumes.
    b_page = data_of(t.call(B, "reader", "{ sessions(first: 1) { pageInfo { endCursor } } }"))
    cursor = b_page["sessions"]["pageInfo"]["endCursor"]
    after = t.call(
        A,
        "reader",
        "query($c: String) { sessions(first: 100, after: $c) { nodes { tenant } } }",
        {"c": cursor},
    )
    assert {node["tenant"] for node in data_of(after)["sessions"]["nodes"]} <= {A}


def _agent(t: Tenants) -> None:
    query = """{
      agent(sessionId: "b-only", agentId: "bot") { state }
      s: agent(sessionId: "shared", agentId: "bot") { state }
    }"""
    assert data_of(t.call(A, "reader", query)) == {"agent": None, "s": None}


def _message(t: Tenants) -> None:
    query = '{ message(sessionId: "b-only", agentId: "bot", messageId: 0) { message } }'
    assert data_of(t.call(A, "reader", query))["message"] is None


def _multi_agent(t: Tenants) -> None:
    query = '{ multiAgent(sessionId: "b-only", multiAgentId: "graph") { state } }'
    assert data_of(t.call(A, "reader", query))["multiAgent"] is None


def _audit_events(t: Tenants) -> None:
    events = data_of(t.call(A, "admin", "{ auditEvents(first: 100) { nodes { tenant target } } }"))
    assert {event["tenant"] for event in events["auditEvents"]["nodes"]} == {A}


def _api_keys(t: Tenants) -> None:
    listed = data_of(t.call(A, "admin", "{ apiKeys(includeRevoked: true) { tenant } }"))["apiKeys"]
    assert listed and {key["tenant"] for key in listed} == {A}


def _create_session(t: Tenants) -> None:
    # B holds "b-only": for A it is a free id, so the answer (and its timing) says nothing of B.
    create = 'mutation { createSession(session: {sessionId: "b-only"}) { sessionId tenant } }'
    assert data_of(t.call(A, "writer", create))["createSession"] == {"sessionId": "b-only", "tenant": A}
    data_of(t.call(A, "admin", 'mutation { deleteSession(sessionId: "b-only") }'))


def _not_found_like_a_made_up_id(t: Tenants, role: str, template: str) -> None:
    theirs = t.call(A, role, template.replace("SID", "b-only"))
    made_up = t.call(A, role, template.replace("SID", "no-such-session"))
    assert not_found_message(theirs, "b-only") == not_found_message(made_up, "no-such-session")


def _writes(field: str, role: str, template: str) -> Callable[[Tenants], None]:
    def attempt(t: Tenants) -> None:
        _not_found_like_a_made_up_id(t, role, template)

    attempt.__name__ = f"_{field}"
    return attempt


AGENT = '{agentId: "bot", state: {owner: "acme"}, conversationManagerState: {}}'
MSG = '{messageId: 0, message: {role: "user", content: []}}'
CASES: dict[str, Callable[[Tenants], None]] = {
    "session": _session,
    "sessions": _sessions,
    "agent": _agent,
    "message": _message,
    "multiAgent": _multi_agent,
    "auditEvents": _audit_events,
    "apiKeys": _api_keys,
    "createSession": _create_session,
    "deleteSession": _writes("deleteSession", "admin", 'mutation { deleteSession(sessionId: "SID") }'),
    "createAgent": _writes(
        "createAgent", "writer", f'mutation {{ createAgent(sessionId: "SID", agent: {AGENT}) {{ agentId }} }}'
    ),
    "updateAgent": _writes(
        "updateAgent", "writer", f'mutation {{ updateAgent(sessionId: "SID", agent: {AGENT}) {{ agentId }} }}'
    ),
    "deleteAgent": _writes(
        "deleteAgent", "admin", 'mutation { deleteAgent(sessionId: "SID", agentId: "bot") }'
    ),
    "createMessage": _writes(
        "createMessage",
        "writer",
        f'mutation {{ createMessage(sessionId: "SID", agentId: "bot", message: {MSG}) {{ messageId }} }}',
    ),
    "appendMessages": _writes(
        "appendMessages",
        "writer",
        f'mutation {{ appendMessages(sessionId: "SID", agentId: "bot", messages: [{MSG}]) {{ messageId }} }}',
    ),
    "updateMessage": _writes(
        "updateMessage",
        "writer",
        f'mutation {{ updateMessage(sessionId: "SID", agentId: "bot", message: {MSG}) {{ messageId }} }}',
    ),
    "deleteMessage": _writes(
        "deleteMessage", "admin", 'mutation { deleteMessage(sessionId: "SID", agentId: "bot", messageId: 0) }'
    ),
    "createMultiAgent": _writes(
        "createMultiAgent",
        "writer",
        'mutation { createMultiAgent(sessionId: "SID", multiAgent: {multiAgentId: "graph", state: {}}) '
        "{ multiAgentId } }",
    ),
    "updateMultiAgent": _writes(
        "updateMultiAgent",
        "writer",
        'mutation { updateMultiAgent(sessionId: "SID", multiAgent: {multiAgentId: "graph", state: {}}) '
        "{ multiAgentId } }",
    ),
    "deleteMultiAgent": _writes(
        "deleteMultiAgent", "admin", 'mutation { deleteMultiAgent(sessionId: "SID", multiAgentId: "graph") }'
    ),
}


def _create_api_key(t: Tenants) -> None:
    body = t.call(A, "admin", f'mutation {{ createApiKey(role: ADMIN, tenant: "{B}") {{ key }} }}')
    assert_error(body, "FORBIDDEN")


def _revoke_api_key(t: Tenants) -> None:
    # B has a key labelled "reader"; so does A. A's admin revoking "reader" in B's name is refused,
    # and revoking a label only B has is NOT_FOUND exactly as for a label nobody has.
    assert_error(
        t.call(A, "admin", f'mutation {{ revokeApiKey(label: "reader", tenant: "{B}") {{ label }} }}'),
        "FORBIDDEN",
    )
    theirs = t.call(A, "admin", 'mutation { revokeApiKey(label: "b-dashboard") { label } }')
    nobody = t.call(A, "admin", 'mutation { revokeApiKey(label: "nobodys-label") { label } }')
    assert not_found_message(theirs, "b-dashboard") == not_found_message(nobody, "nobodys-label")


def _agents(t: Tenants) -> None:
    listed = data_of(t.call(A, "reader", "{ agents(first: 100) { totalCount nodes { sessionId } } }"))[
        "agents"
    ]
    assert listed == {"totalCount": 0, "nodes": []}  # A's "shared" session has no agents


def _messages(t: Tenants) -> None:
    listed = data_of(t.call(A, "reader", "{ messages(first: 100) { totalCount nodes { text } } }"))[
        "messages"
    ]
    assert listed == {"totalCount": 0, "nodes": []}


def _search_messages(t: Tenants) -> None:
    for order in ("RELEVANCE", "NEWEST"):
        query = f'{{ searchMessages(query: "secret words", orderBy: {order}) {{ edges {{ snippet }} }} }}'
        found = data_of(t.call(A, "reader", query))
        assert found["searchMessages"]["edges"] == [], order
        assert data_of(t.call(B, "reader", query))["searchMessages"]["edges"], "the search itself works"


def _conversation_stats(t: Tenants) -> None:
    query = """{
      conversationStats(bucket: DAY, groupBy: SESSION) { totals { messages sessions } keyTotals { key } }
    }"""

    stats = data_of(t.call(A, "reader", query))["conversationStats"]
    assert stats == {"totals": {"messages": 0, "sessions": 0}, "keyTotals": []}


def _tool_stats(t: Tenants) -> None:
    assert data_of(t.call(A, "reader", "{ toolStats { name } }"))["toolStats"] == []


def _update_session(t: Tenants) -> None:
    theirs = t.call(
        A, "writer", 'mutation { updateSession(sessionId: "b-only", title: "mine now") { title } }'
    )
    made_up = t.call(
        A, "writer", 'mutation { updateSession(sessionId: "no-such-session", title: "x") { title } }'
    )
    assert not_found_message(theirs, "b-only") == not_found_message(made_up, "no-such-session")


def _storage_object(t: Tenants) -> None:
    query = f'{{ storageObject(key: "{B_OBJECT_KEY}") }}'
    assert data_of(t.call(A, "reader", query)) == {"storageObject": None}
    assert data_of(t.call(B, "reader", query)) == {"storageObject": B_OBJECT}


def _storage_keys(t: Tenants) -> None:
    listed = data_of(t.call(A, "reader", '{ storageKeys(prefix: "") { keys } }'))["storageKeys"]["keys"]
    assert B_OBJECT_KEY not in listed


def _search_storage(t: Tenants) -> None:
    query = '{ searchStorage(query: "secret words") { key } }'
    assert data_of(t.call(A, "reader", query))["searchStorage"] == []
    assert data_of(t.call(B, "reader", query))["searchStorage"] == [{"key": B_OBJECT_KEY}]


def _write_storage_object(t: Tenants) -> None:
    mine = base64.b64encode(b"acme's own").decode()
    assert data_of(t.call(A, "writer", WRITE_OBJECT, {"k": B_OBJECT_KEY, "d": mine}))
    assert data_of(t.call(A, "reader", f'{{ storageObject(key: "{B_OBJECT_KEY}") }}')) == {
        "storageObject": mine
    }
    deleted = t.call(A, "admin", f'mutation {{ deleteStorageObject(key: "{B_OBJECT_KEY}") }}')
    assert data_of(deleted) == {"deleteStorageObject": True}


def _delete_storage_object(t: Tenants) -> None:
    deleted = t.call(A, "admin", f'mutation {{ deleteStorageObject(key: "{B_OBJECT_KEY}") }}')
    assert data_of(deleted) == {"deleteStorageObject": False}


def _fork_session(t: Tenants) -> None:
    theirs = t.call(
        A, "writer", 'mutation { forkSession(sourceSessionId: "b-only", newSessionId: "copy") { sessionId } }'
    )
    made_up = t.call(
        A,
        "writer",
        'mutation { forkSession(sourceSessionId: "no-such", newSessionId: "copy") { sessionId } }',
    )
    assert not_found_message(theirs, "b-only") == not_found_message(made_up, "no-such")
    assert data_of(t.call(A, "reader", '{ session(sessionId: "copy") { sessionId } }')) == {"session": None}


CASES["storageObject"] = _storage_object
CASES["storageKeys"] = _storage_keys
CASES["searchStorage"] = _search_storage
CASES["writeStorageObject"] = _write_storage_object
CASES["deleteStorageObject"] = _delete_storage_object
CASES["forkSession"] = _fork_session
CASES["createApiKey"] = _create_api_key
CASES["revokeApiKey"] = _revoke_api_key
CASES["agents"] = _agents
CASES["messages"] = _messages
CASES["searchMessages"] = _search_messages
CASES["conversationStats"] = _conversation_stats
CASES["toolStats"] = _tool_stats
CASES["updateSession"] = _update_session


def _delete_sessions(t: Tenants) -> None:
    # B's sessions match by id; A's erasure counts and deletes only A's own (none of them).
    for dry in ("true", "false"):
        query = (
            f'mutation {{ deleteSessions(filter: {{sessionIdPrefix: "b-"}}, dryRun: {dry}) {{ sessions }} }}'
        )
        assert data_of(t.call(A, "admin", query)) == {"deleteSessions": {"sessions": 0}}
    assert data_of(t.call(B, "reader", '{ session(sessionId: "b-only") { sessionId } }'))["session"]


def _retention_rules(t: Tenants) -> None:
    assert_error(t.call(A, "admin", f'{{ retentionRules(tenant: "{B}") {{ tenant }} }}'), "FORBIDDEN")
    listed = data_of(t.call(A, "admin", "{ retentionRules { tenant } }"))["retentionRules"]
    assert listed == [{"tenant": A}]


def _set_retention_rule(t: Tenants) -> None:
    query = f'mutation {{ setRetentionRule(keepDays: 1, tenant: "{B}") {{ tenant }} }}'
    assert_error(t.call(A, "admin", query), "FORBIDDEN")
    assert data_of(t.call(B, "admin", "{ retentionRules { tenant own } }"))["retentionRules"] == [
        {"tenant": B, "own": False}
    ]


def _remove_retention_rule(t: Tenants) -> None:
    assert_error(t.call(A, "admin", f'mutation {{ removeRetentionRule(tenant: "{B}") }}'), "FORBIDDEN")


def _restore_session_times(t: Tenants) -> None:
    # A's admin sets times back on B's session as on one that does not exist (b_unchanged checks B's).
    def restore(session_id: str) -> dict[str, Any]:
        return t.call(
            A,
            "admin",
            f'mutation {{ restoreSessionTimes(sessionId: "{session_id}", updatedAt: "2020-01-01T00:00:00Z", '
            'lastActivityAt: "2020-01-01T00:00:00Z", agents: [{agentId: "agent", '
            'lastActivityAt: "2020-01-01T00:00:00Z"}]) { sessionId } }',
        )

    assert not_found_message(restore("b-only"), "b-only") == not_found_message(restore("no-such"), "no-such")


CASES["restoreSessionTimes"] = _restore_session_times
CASES["deleteSessions"] = _delete_sessions
CASES["retentionRules"] = _retention_rules
CASES["setRetentionRule"] = _set_retention_rule
CASES["removeRetentionRule"] = _remove_retention_rule


def test_every_root_field_is_tried_across_tenants() -> None:
    graphql_schema = schema._schema
    assert graphql_schema.query_type is not None and graphql_schema.mutation_type is not None
    assert set(CASES) == set(graphql_schema.query_type.fields) | set(graphql_schema.mutation_type.fields)


@pytest.mark.parametrize("field", sorted(CASES))
def test_tenant_a_cannot_reach_tenant_b_through(tenants: Tenants, b_unchanged: None, field: str) -> None:
    CASES[field](tenants)


def test_tenant_b_still_sees_all_it_wrote(tenants: Tenants) -> None:
    snapshot = tenants.b_snapshot()
    by_id = {s["sessionId"]: s for s in snapshot["sessions"]["nodes"]}
    assert set(by_id) == {"shared", "b-only"}
    assert by_id["shared"]["agents"][0]["messageCount"] == 2
    assert by_id["b-only"]["agents"][0]["state"] == B_STATE
    assert by_id["b-only"]["multiAgents"] == [{"multiAgentId": "graph", "state": B_STATE}]


def test_a_tenant_key_naming_another_tenant_is_refused(tenants: Tenants) -> None:
    response = tenants.secured.post("{ __typename }", key=tenants.keys[(A, "reader")], tenant=B)

    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_tenantless_admin_lists_every_tenant_and_each_row_keeps_its_tenant(tenants: Tenants) -> None:
    query = "{ sessions(first: 100) { nodes { sessionId tenant agents { messageCount } } } }"
    nodes = data_of(tenants.secured.graphql(query, key=tenants.root))["sessions"]["nodes"]

    shared = {node["tenant"]: node for node in nodes if node["sessionId"] == "shared"}
    assert set(shared) == {A, B}
    # What hangs from a listed row comes from that row's tenant.
    assert shared[B]["agents"] == [{"messageCount": 2}]
    assert shared[A]["agents"] == []


def test_a_tenantless_admin_acts_in_the_tenant_it_names(tenants: Tenants) -> None:
    read = '{ session(sessionId: "b-only") { tenant } sessions(first: 100) { nodes { tenant } } }'

    in_b = data_of(tenants.secured.graphql(read, key=tenants.root, tenant=B))
    in_default = data_of(tenants.secured.graphql(read, key=tenants.root))

    assert in_b["session"] == {"tenant": B}
    assert {node["tenant"] for node in in_b["sessions"]["nodes"]} == {B}
    assert in_default["session"] is None  # look-ups without X-Tenant address the default tenant


def test_an_invalid_tenant_header_is_a_bad_request(tenants: Tenants) -> None:
    response = tenants.secured.post("{ __typename }", key=tenants.root, tenant="no/slashes")

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
