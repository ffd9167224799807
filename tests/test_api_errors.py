"""Errors: invalid input is BAD_USER_INPUT naming the field, GraphQL-level mistakes get their own
codes, every error carries a documented code, and unexpected errors are masked and logged."""

import logging
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from db.analytics import listings
from db.conversations import reads, writes
from tests.api_calls import (
    APPEND_MESSAGES,
    CREATE_AGENT,
    CREATE_MESSAGE,
    CREATE_MULTI_AGENT,
    CREATE_SESSION,
    DELETE_AGENT,
    DELETE_MESSAGE,
    DELETE_MULTI_AGENT,
    DELETE_SESSION,
    GET_AGENT,
    GET_MESSAGE,
    GET_MULTI_AGENT,
    GET_SESSION,
    UPDATE_AGENT,
    UPDATE_MESSAGE,
    UPDATE_MULTI_AGENT,
    GraphQLCall,
    NewId,
    agent_input,
    assert_error,
    create_agent,
    create_message,
    create_multi_agent,
    create_session,
    data_of,
    message_input,
    new_agent,
    post_lenient_json,
    stored_message_ids,
)

Variables = Callable[[Any], dict[str, Any]]

SESSION_AGENT = """
query($sessionId: String!, $agentId: String!) {
  session(sessionId: $sessionId) { agent(agentId: $agentId) { agentId } }
}
"""
SESSION_MULTI_AGENT = """
query($sessionId: String!, $multiAgentId: String!) {
  session(sessionId: $sessionId) { multiAgent(multiAgentId: $multiAgentId) { multiAgentId } }
}
"""

# An existing session, so that nested fields resolve far enough to check their own arguments.
KNOWN_SESSION = f"known-{uuid.uuid4().hex[:12]}"

# Each operation that takes an id, with the variables that put a given value in that id and the
# field the error must name.
ID_ARGUMENTS: dict[str, tuple[str, Variables, str]] = {
    "createSession": (CREATE_SESSION, lambda v: {"session": {"sessionId": v}}, "session.sessionId"),
    "deleteSession": (DELETE_SESSION, lambda v: {"sessionId": v}, "sessionId"),
    "session": (GET_SESSION, lambda v: {"sessionId": v}, "sessionId"),
    "createAgent.sessionId": (
        CREATE_AGENT,
        lambda v: {"sessionId": v, "agent": agent_input("a")},
        "sessionId",
    ),
    "createAgent.agentId": (
        CREATE_AGENT,
        lambda v: {"sessionId": "s", "agent": agent_input(v)},
        "agent.agentId",
    ),
    "updateAgent.sessionId": (
        UPDATE_AGENT,
        lambda v: {"sessionId": v, "agent": agent_input("a")},
        "sessionId",
    ),
    "updateAgent.agentId": (
        UPDATE_AGENT,
        lambda v: {"sessionId": "s", "agent": agent_input(v)},
        "agent.agentId",
    ),
    "deleteAgent": (DELETE_AGENT, lambda v: {"sessionId": "s", "agentId": v}, "agentId"),
    "agent.sessionId": (GET_AGENT, lambda v: {"sessionId": v, "agentId": "a"}, "sessionId"),
    "agent.agentId": (GET_AGENT, lambda v: {"sessionId": "s", "agentId": v}, "agentId"),
    "Session.agent": (SESSION_AGENT, lambda v: {"sessionId": KNOWN_SESSION, "agentId": v}, "agentId"),
    "createMessage": (
        CREATE_MESSAGE,
        lambda v: {"sessionId": "s", "agentId": v, "message": message_input(0)},
        "agentId",
    ),
    "appendMessages": (
        APPEND_MESSAGES,
        lambda v: {"sessionId": v, "agentId": "a", "messages": [message_input(0)]},
        "sessionId",
    ),
    "updateMessage": (
        UPDATE_MESSAGE,
        lambda v: {"sessionId": "s", "agentId": v, "message": message_input(0)},
        "agentId",
    ),
    "deleteMessage": (DELETE_MESSAGE, lambda v: {"sessionId": "s", "agentId": v, "messageId": 0}, "agentId"),
    "message": (GET_MESSAGE, lambda v: {"sessionId": v, "agentId": "a", "messageId": 0}, "sessionId"),
    "createMultiAgent": (
        CREATE_MULTI_AGENT,
        lambda v: {"sessionId": "s", "multiAgent": {"multiAgentId": v, "state": {}}},
        "multiAgent.multiAgentId",
    ),
    "updateMultiAgent": (
        UPDATE_MULTI_AGENT,
        lambda v: {"sessionId": "s", "multiAgent": {"multiAgentId": v, "state": {}}},
        "multiAgent.multiAgentId",
    ),
    "deleteMultiAgent": (DELETE_MULTI_AGENT, lambda v: {"sessionId": "s", "multiAgentId": v}, "multiAgentId"),
    "multiAgent": (GET_MULTI_AGENT, lambda v: {"sessionId": "s", "multiAgentId": v}, "multiAgentId"),
    "Session.multiAgent": (
        SESSION_MULTI_AGENT,
        lambda v: {"sessionId": KNOWN_SESSION, "multiAgentId": v},
        "multiAgentId",
    ),
}

BAD_IDS = {
    "empty": "",
    "256 characters": "x" * 256,
    "slash": "a/b",
    "backslash": "a\\b",
    "NUL": "a\x00b",
    "newline": "a\nb",
    "tab": "a\tb",
    "DEL": "a\x7fb",
    "C1 control": "a\x85b",
}


@pytest.fixture(scope="module")
def known_session(graphql: GraphQLCall) -> None:
    create_session(graphql, KNOWN_SESSION)


@pytest.mark.usefixtures("known_session")
@pytest.mark.parametrize("bad_id", BAD_IDS.values(), ids=BAD_IDS.keys())
@pytest.mark.parametrize("operation", ID_ARGUMENTS)
def test_invalid_id_is_bad_user_input_naming_the_field(
    graphql: GraphQLCall, operation: str, bad_id: str
) -> None:
    document, variables, field = ID_ARGUMENTS[operation]

    assert_error(graphql(document, variables(bad_id)), "BAD_USER_INPUT", field=field)


def test_ids_of_255_characters_are_accepted(graphql: GraphQLCall, new_id: NewId) -> None:
    unique = new_id("session")
    session_id = unique + "😀" * (255 - len(unique))
    agent_id, multi_agent_id = "🤖" * 255, "g" * 255

    create_session(graphql, session_id)
    create_agent(graphql, session_id, agent_id)
    create_multi_agent(graphql, session_id, multi_agent_id)

    variables = {"sessionId": session_id, "agentId": agent_id}
    assert data_of(graphql(GET_AGENT, variables))["agent"]["sessionId"] == session_id
    variables = {"sessionId": session_id, "multiAgentId": multi_agent_id}
    assert data_of(graphql(GET_MULTI_AGENT, variables))["multiAgent"]["multiAgentId"] == multi_agent_id


# --- message ids ---

NEGATIVE_MESSAGE_ID: dict[str, tuple[str, dict[str, Any], str]] = {
    "createMessage": (CREATE_MESSAGE, {"message": message_input(-1)}, "message.messageId"),
    "appendMessages": (
        APPEND_MESSAGES,
        {"messages": [message_input(0), message_input(-1)]},
        "messages[1].messageId",
    ),
    "updateMessage": (UPDATE_MESSAGE, {"message": message_input(-1)}, "message.messageId"),
    "deleteMessage": (DELETE_MESSAGE, {"messageId": -1}, "messageId"),
    "message": (GET_MESSAGE, {"messageId": -1}, "messageId"),
}


@pytest.mark.parametrize("operation", NEGATIVE_MESSAGE_ID)
def test_negative_message_id_is_bad_user_input_naming_the_field(
    graphql: GraphQLCall, new_id: NewId, operation: str
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    document, variables, field = NEGATIVE_MESSAGE_ID[operation]

    body = graphql(document, {"sessionId": session_id, "agentId": agent_id, **variables})

    assert_error(body, "BAD_USER_INPUT", field=field)
    assert stored_message_ids(graphql, session_id, agent_id) == []


def test_message_id_beyond_int_range_is_bad_user_input(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)

    body = graphql(
        CREATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": message_input(2**31)}
    )

    error = assert_error(body, "BAD_USER_INPUT")
    assert "messageId" in error["message"]


# --- JSON objects ---

NOT_OBJECTS = {"list": [1, 2], "string": "text", "number": 3, "boolean": True}

# Each JSON argument that must be an object: (document, variables putting the value there, field).
OBJECT_ARGUMENTS: dict[str, tuple[str, Variables, str]] = {
    "createAgent.state": (
        CREATE_AGENT,
        lambda v: {"agent": agent_input("a", state=v)},
        "agent.state",
    ),
    "createAgent.conversationManagerState": (
        CREATE_AGENT,
        lambda v: {"agent": agent_input("a", conversationManagerState=v)},
        "agent.conversationManagerState",
    ),
    "createAgent.internalState": (
        CREATE_AGENT,
        lambda v: {"agent": agent_input("a", internalState=v)},
        "agent.internalState",
    ),
    "updateAgent.state": (UPDATE_AGENT, lambda v: {"agent": agent_input("a", state=v)}, "agent.state"),
    "createMultiAgent.state": (
        CREATE_MULTI_AGENT,
        lambda v: {"multiAgent": {"multiAgentId": "m", "state": v}},
        "multiAgent.state",
    ),
    "updateMultiAgent.state": (
        UPDATE_MULTI_AGENT,
        lambda v: {"multiAgent": {"multiAgentId": "m", "state": v}},
        "multiAgent.state",
    ),
    "createMessage.message": (
        CREATE_MESSAGE,
        lambda v: {"agentId": "a", "message": {"messageId": 0, "message": v}},
        "message.message",
    ),
    "createMessage.redactMessage": (
        CREATE_MESSAGE,
        lambda v: {"agentId": "a", "message": message_input(0, redactMessage=v)},
        "message.redactMessage",
    ),
    "appendMessages.message": (
        APPEND_MESSAGES,
        lambda v: {"agentId": "a", "messages": [{"messageId": 0, "message": v}]},
        "messages[0].message",
    ),
    "updateMessage.message": (
        UPDATE_MESSAGE,
        lambda v: {"agentId": "a", "message": {"messageId": 0, "message": v}},
        "message.message",
    ),
}


@pytest.mark.parametrize("value", NOT_OBJECTS.values(), ids=NOT_OBJECTS.keys())
@pytest.mark.parametrize("argument", OBJECT_ARGUMENTS)
def test_non_object_where_object_required_is_bad_user_input(
    graphql: GraphQLCall, new_id: NewId, argument: str, value: Any
) -> None:
    session_id = new_id("session")
    create_session(graphql, session_id)
    create_agent(graphql, session_id, "a")
    create_multi_agent(graphql, session_id, "m")
    create_message(graphql, session_id, "a", 0)
    document, variables, field = OBJECT_ARGUMENTS[argument]

    assert_error(
        graphql(document, {"sessionId": session_id, **variables(value)}), "BAD_USER_INPUT", field=field
    )


@pytest.mark.parametrize(
    "message",
    [
        {"content": []},
        {"role": 5, "content": []},
        {"role": "", "content": []},
        {"role": None},
        {"role": "us\u0000er", "content": []},
    ],
    ids=["no role", "number role", "empty role", "null role", "NUL in role"],
)
def test_message_without_string_role_is_bad_user_input(
    graphql: GraphQLCall, new_id: NewId, message: dict[str, Any]
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    variables = {
        "sessionId": session_id,
        "agentId": agent_id,
        "message": {"messageId": 0, "message": message},
    }

    assert_error(graphql(CREATE_MESSAGE, variables), "BAD_USER_INPUT", field="message.message.role")
    assert stored_message_ids(graphql, session_id, agent_id) == []


def test_null_for_required_json_is_bad_user_input(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = new_id("session")
    create_session(graphql, session_id)

    body = graphql(CREATE_AGENT, {"sessionId": session_id, "agent": agent_input("a", state=None)})

    error = assert_error(body, "BAD_USER_INPUT")
    assert "state" in error["message"]


# --- values storage cannot hold ---

UNSTORABLE = {
    "lone surrogate": "\ud800",
    "lone surrogate in a key": {"\udfff": 1},
    "NaN": float("nan"),
    "Infinity": float("inf"),
    "-Infinity": float("-inf"),
}


@pytest.mark.parametrize("value", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_unstorable_json_in_message_is_bad_user_input_and_stores_nothing(
    graphql: GraphQLCall, http: httpx.Client, new_id: NewId, value: Any
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    message = {"messageId": 0, "message": {"role": "user", "content": [{"text": value}]}}

    body = post_lenient_json(
        http, CREATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": message}
    )

    assert_error(body, "BAD_USER_INPUT")
    assert stored_message_ids(graphql, session_id, agent_id) == []


def test_unstorable_text_error_says_what_is_wrong_without_echoing_the_value(
    graphql: GraphQLCall, http: httpx.Client, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    text = "\ud800" + "private words " * 100
    message = {"messageId": 0, "message": {"role": "user", "content": [{"text": text}]}}

    body = post_lenient_json(
        http, CREATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": message}
    )

    error = assert_error(body, "BAD_USER_INPUT")
    assert "unpaired surrogate" in error["message"]
    assert "private" not in error["message"] and '"text"' not in error["message"]


@pytest.mark.parametrize("value", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_unstorable_json_in_state_is_bad_user_input_and_changes_nothing(
    graphql: GraphQLCall, http: httpx.Client, new_id: NewId, value: Any
) -> None:
    session_id, agent_id = new_id("session"), new_id("agent")
    create_session(graphql, session_id)
    stored = create_agent(graphql, session_id, agent_id, state={"kept": True})

    created = post_lenient_json(
        http,
        CREATE_AGENT,
        {"sessionId": session_id, "agent": agent_input(new_id("agent"), state={"v": value})},
    )
    updated = post_lenient_json(
        http, UPDATE_AGENT, {"sessionId": session_id, "agent": agent_input(agent_id, state={"v": value})}
    )
    multi = post_lenient_json(
        http,
        CREATE_MULTI_AGENT,
        {"sessionId": session_id, "multiAgent": {"multiAgentId": "m", "state": [value]}},
    )

    assert_error(created, "BAD_USER_INPUT")
    assert_error(updated, "BAD_USER_INPUT")
    assert_error(multi, "BAD_USER_INPUT")
    children = (
        "query($s: String!) { session(sessionId: $s) { agents { agentId state } multiAgents { state } } }"
    )
    session = data_of(graphql(children, {"s": session_id}))["session"]
    assert session == {"agents": [{"agentId": agent_id, "state": stored["state"]}], "multiAgents": []}


@pytest.mark.parametrize("operation", ["session", "deleteSession", "agent.agentId"])
def test_id_with_lone_surrogate_is_bad_user_input(http: httpx.Client, operation: str) -> None:
    document, variables, field = ID_ARGUMENTS[operation]

    assert_error(post_lenient_json(http, document, variables("a\ud800b")), "BAD_USER_INPUT", field=field)


@pytest.mark.parametrize("operation", ["createSession", "createAgent.agentId", "createMultiAgent"])
def test_create_with_lone_surrogate_in_id_is_bad_user_input(http: httpx.Client, operation: str) -> None:
    document, variables, _ = ID_ARGUMENTS[operation]

    assert_error(post_lenient_json(http, document, variables("a\ud800b")), "BAD_USER_INPUT")


# --- timestamps ---

TIMESTAMP_ARGUMENTS: dict[str, tuple[str, Variables]] = {
    "session.createdAt": (CREATE_SESSION, lambda t: {"session": {"sessionId": "s", "createdAt": t}}),
    "agent.updatedAt": (CREATE_AGENT, lambda t: {"sessionId": "s", "agent": agent_input("a", updatedAt=t)}),
    "message.createdAt": (
        CREATE_MESSAGE,
        lambda t: {"sessionId": "s", "agentId": "a", "message": message_input(0, createdAt=t)},
    ),
    "multiAgent.updatedAt": (
        UPDATE_MULTI_AGENT,
        lambda t: {"sessionId": "s", "multiAgent": {"multiAgentId": "m", "state": {}, "updatedAt": t}},
    ),
}

BAD_TIMESTAMPS = {
    "no UTC offset": "2026-01-02T03:04:05.123456",
    "date only": "2026-01-02",
    "not a date": "yesterday",
    "month 13": "2026-13-01T00:00:00+00:00",
    "number": 1767322800,
}


@pytest.mark.parametrize("timestamp", BAD_TIMESTAMPS.values(), ids=BAD_TIMESTAMPS.keys())
@pytest.mark.parametrize("argument", TIMESTAMP_ARGUMENTS)
def test_invalid_timestamp_is_bad_user_input(graphql: GraphQLCall, argument: str, timestamp: Any) -> None:
    document, variables = TIMESTAMP_ARGUMENTS[argument]

    error = assert_error(graphql(document, variables(timestamp)), "BAD_USER_INPUT")
    assert argument.split(".")[1] in error["message"]


def test_timestamp_literal_without_offset_is_refused_as_bad_input(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    document = f"""
    mutation {{
      createSession(session: {{sessionId: "{session_id}", createdAt: "2026-01-02T03:04:05"}}) {{ sessionId }}
    }}
    """

    body = graphql(document)

    # Written into the document rather than sent as a variable, graphql-core reports it while
    # validating the document; either code tells the client the request, not the server, is wrong.
    assert body["errors"][0]["extensions"]["code"] in {"BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"}
    assert "UTC offset" in body["errors"][0]["message"]
    assert data_of(graphql(GET_SESSION, {"sessionId": session_id}))["session"] is None


# --- GraphQL-level mistakes ---


def test_syntax_error_is_graphql_parse_failed(graphql: GraphQLCall) -> None:
    assert_error(graphql('{ session(sessionId: "x") { sessionId '), "GRAPHQL_PARSE_FAILED")


@pytest.mark.parametrize(
    "document",
    [
        '{ session(sessionId: "x") { nope } }',
        '{ session(sessionId: "x", extra: 1) { sessionId } }',
        "{ session { sessionId } }",
        '{ message(sessionId: "x", agentId: "y", messageId: "seven") { messageId } }',
        '{ session(sessionId: "x") }',
        'mutation { deleteSession(sessionId: "x") { sessionId } }',
        '{ session(sessionId: "x") { sessionId } } query { sessions { nodes { sessionId } } }',
    ],
    ids=[
        "unknown field",
        "unknown argument",
        "missing argument",
        "literal of wrong type",
        "object without selection",
        "scalar with selection",
        "two anonymous operations",
    ],
)
def test_invalid_document_is_graphql_validation_failed(graphql: GraphQLCall, document: str) -> None:
    assert_error(graphql(document), "GRAPHQL_VALIDATION_FAILED")


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        ("{ session(sessionId: $s) { sessionId } }", {"s": "x"}),
        ("query($s: String!) { sessions { nodes { sessionId } } }", {"s": "x"}),
        ("query($s: String) { session(sessionId: $s) { sessionId } }", {"s": "x"}),
        ("query($s: Session) { sessions { nodes { sessionId } } }", {}),
    ],
    ids=["undefined variable", "unused variable", "nullable variable in non-null position", "output type"],
)
def test_invalid_variable_definitions_are_graphql_validation_failed(
    graphql: GraphQLCall, document: str, variables: dict[str, Any]
) -> None:
    assert_error(graphql(document, variables), "GRAPHQL_VALIDATION_FAILED")


def test_huge_int_literal_is_graphql_validation_failed(graphql: GraphQLCall) -> None:
    document = '{ message(sessionId: "s", agentId: "a", messageId: %s) { messageId } }' % ("9" * 5000)

    assert_error(graphql(document), "GRAPHQL_VALIDATION_FAILED")


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        ("query($s: String!) { session(sessionId: $s) { sessionId } }", {"s": 5}),
        ("query($s: String!) { session(sessionId: $s) { sessionId } }", {}),
        ("query($s: String!) { session(sessionId: $s) { sessionId } }", {"s": None}),
        ("query($first: Int!) { sessions(first: $first) { nodes { sessionId } } }", {"first": "ten"}),
        (CREATE_SESSION, {"session": {"sessionId": "s", "sessionType": "SWARM"}}),
        (CREATE_SESSION, {"session": {"sessionId": "s", "unknownField": 1}}),
        (CREATE_SESSION, {"session": "s"}),
    ],
    ids=[
        "number for string",
        "missing variable",
        "null for non-null",
        "string for int",
        "unknown enum value",
        "unknown input field",
        "string for input object",
    ],
)
def test_wrong_variable_value_is_bad_user_input(
    graphql: GraphQLCall, document: str, variables: dict[str, Any]
) -> None:
    assert_error(graphql(document, variables), "BAD_USER_INPUT")


def assert_bad_request(response: httpx.Response) -> None:
    """A 400 with a GraphQL error body coded BAD_REQUEST: a client error, never a 500."""
    assert response.status_code == 400, response.text
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"variables": {}}', "application/json"),
        (b'{"query": 5}', "application/json"),
        (b'{"query": "{ sessions { nodes { sessionId } } }", "variables": [1]}', "application/json"),
        (b"[]", "application/json"),
        (b"query=1", "text/plain"),
    ],
    ids=[
        "broken JSON",
        "no query",
        "query not a string",
        "variables not an object",
        "JSON array",
        "not JSON",
    ],
)
def test_malformed_http_request_is_bad_request(http: httpx.Client, content: bytes, content_type: str) -> None:
    assert_bad_request(http.post("/graphql", content=content, headers={"content-type": content_type}))


def test_mutation_over_get_is_bad_request(http: httpx.Client) -> None:
    assert_bad_request(http.get("/graphql", params={"query": 'mutation { deleteSession(sessionId: "x") }'}))


@pytest.mark.parametrize(
    "content",
    [
        b'{"query": "{ sessions { nodes { sessionId } } }", "variables": {"v": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}}",
        b'{"query": "{ sessions { nodes { sessionId } } }", "variables": {"v": ' + b"9" * 5000 + b"}}",
        b'{"query": "{ session(sessionId: \\"\xff\\") { sessionId } }"}',
        b"\xff\xfe{",
    ],
    ids=["nested 100000 deep", "5000-digit number", "invalid UTF-8 in a string", "not UTF-8"],
)
def test_pathological_json_body_is_bad_request(http: httpx.Client, content: bytes) -> None:
    # A client of its own: a server that fails this by dropping the connection must not take the
    # shared client, and so the next test, down with it.
    with httpx.Client(base_url=http.base_url, timeout=30) as client:
        response = client.post("/graphql", content=content, headers={"content-type": "application/json"})

    assert_bad_request(response)


def test_get_request_with_query_is_answered(http: httpx.Client, new_id: NewId) -> None:
    response = http.get(
        "/graphql", params={"query": f'{{ session(sessionId: "{new_id("s")}") {{ sessionId }} }}'}
    )

    assert response.status_code == 200
    assert response.json() == {"data": {"session": None}}


# --- unexpected errors ---


def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("secret detail: password=hunter2")


@pytest.mark.parametrize(
    ("module", "function", "document", "make_variables"),
    [
        (reads, "get_agents", GET_AGENT, lambda new_id: {"sessionId": new_id("s"), "agentId": "a"}),
        (listings, "list_sessions", "{ sessions { nodes { sessionId } } }", lambda new_id: {}),
        (writes, "create_session", CREATE_SESSION, lambda new_id: {"session": {"sessionId": new_id("s")}}),
    ],
    ids=["loader", "query", "mutation"],
)
def test_unexpected_error_is_masked_for_the_client_and_logged(
    graphql: GraphQLCall,
    new_id: NewId,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    module: Any,
    function: str,
    document: str,
    make_variables: Callable[[NewId], dict[str, Any]],
) -> None:
    caplog.set_level(logging.ERROR, logger="graphql_api.errors")
    monkeypatch.setattr(module, function, boom)

    body = graphql(document, make_variables(new_id))

    error = assert_error(body, "INTERNAL_SERVER_ERROR")
    assert set(error["extensions"]) == {"code", "requestId"}
    text = str(body)
    for leak in ("secret", "hunter2", "RuntimeError", "Traceback", ".py"):
        assert leak not in text
    logged = [r for r in caplog.records if r.name == "graphql_api.errors" and r.levelno == logging.ERROR]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], RuntimeError)
    assert "Traceback" in caplog.text
    assert "hunter2" in caplog.text
    # The operator finds the failure by the id the client was given.
    assert f"request {error['extensions']['requestId']} " in logged[0].getMessage()


def test_expected_errors_are_not_logged_as_failures(
    graphql: GraphQLCall, new_id: NewId, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="graphql_api.errors")

    assert_error(graphql(DELETE_SESSION, {"sessionId": new_id("missing")}), "NOT_FOUND")
    assert_error(graphql(GET_SESSION, {"sessionId": ""}), "BAD_USER_INPUT", field="sessionId")

    assert [r for r in caplog.records if r.name == "graphql_api.errors"] == []


def test_each_error_of_a_response_carries_its_code(graphql: GraphQLCall) -> None:
    document = """
    {
      a: session(sessionId: "") { sessionId }
      b: agent(sessionId: "s", agentId: "a/b") { agentId }
      c: multiAgent(sessionId: "s", multiAgentId: "m\\u0000") { multiAgentId }
      d: session(sessionId: "fine") { sessionId }
    }
    """

    body = graphql(document)

    assert body["data"] == {"a": None, "b": None, "c": None, "d": None}
    found = {tuple(e["path"]): (e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]}
    assert found == {
        ("a",): ("BAD_USER_INPUT", "sessionId"),
        ("b",): ("BAD_USER_INPUT", "agentId"),
        ("c",): ("BAD_USER_INPUT", "multiAgentId"),
    }


@pytest.mark.parametrize("body", ["null", "1", "true", '"query"'])
def test_json_body_that_is_not_an_object_is_bad_request(http: httpx.Client, body: str) -> None:
    response = http.post("/graphql", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_unsupported_method_is_answered_with_a_graphql_error(http: httpx.Client) -> None:
    response = http.put("/graphql", json={"query": "{ __typename }"})

    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
