"""Request limits: each setting of ``Limits`` refuses what is past it with its own code, at its boundary,
before the work it guards is done, and stores nothing.

The shared open server has the default limits; limits whose defaults would make a test slow (a body
of 16 MB, a statement of 10 s) are checked on private servers with small ones, on the same database.
"""

import ast
import asyncio
import base64
import gc
import json
import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import graphql
import httpx
import psutil
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import graphql_api.errors
from client.operations import document_text
from db.conversations.reads import MessageWindowKey
from db.engine import Database, create_engine
from graphql_api.context import Context
from graphql_api.errors import ErrorCode
from graphql_api.graphiql.page import load_examples
from graphql_api.guards import documents as document_limits
from graphql_api.guards.documents import MAX_OVERLAP_WORK, DocumentCache
from graphql_api.schema import create_schema
from graphql_api.settings import Limits, Settings
from tests.api_calls import (
    APPEND_MESSAGES,
    CREATE_MESSAGE,
    GET_AGENT,
    GET_MESSAGE,
    GET_MULTI_AGENT,
    UPDATE_AGENT,
    UPDATE_MESSAGE,
    GraphQLCall,
    NewId,
    agent_input,
    append_messages,
    create_agent,
    create_message,
    create_session,
    data_of,
    message_input,
    new_agent,
    same_json,
    stored_message_ids,
    user_message,
)
from tests.conftest import RunningServer

CODES = frozenset(code.value for code in ErrorCode)
DEFAULTS = Limits()


# --- shared helpers (tests/test_hostile_input.py uses them too) ---


def refused(body: dict[str, Any], code: str, field: str | None = None) -> dict[str, Any]:
    """Checks the answer failed with ``code`` (naming ``field`` when given) and every error has a
    documented code; returns the first error."""
    errors: list[dict[str, Any]] = body.get("errors") or []
    assert errors, f"expected {code}, got {body}"
    for error in errors:
        assert (error.get("extensions") or {}).get("code") in CODES, error
    error = errors[0]
    assert error["extensions"]["code"] == code, errors
    if field is not None:
        assert error["extensions"].get("field") == field, error
    return error


@contextmanager
def limited_server(database_url: str, **limits: Any) -> Iterator[RunningServer]:
    """A server of its own with ``limits`` changed from the defaults, on the shared database."""
    running = RunningServer(Settings(database_url=database_url, limits=replace(Limits(), **limits)))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def post(server: RunningServer, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of an answer HTTP accepted (200)."""
    response = httpx.post(server.url, json={"query": query, "variables": variables or {}}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@dataclass
class RawAnswer:
    status: int
    body: dict[str, Any]
    seconds: float
    """From the first byte sent to the whole answer received."""
    closed: bool
    """The server closed the connection after answering."""


def _answer_length(received: bytes) -> int | None:
    head, separator, _ = received.partition(b"\r\n\r\n")
    if not separator:
        return None
    match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    assert match is not None, head
    return len(head) + 4 + int(match.group(1))


def send_raw(
    port: int, head: bytes, body: bytes = b"", *, every: float = 0.0, wait: float = 5.0, linger: float = 0.0
) -> RawAnswer:
    """Sends ``head`` (request line and headers), then ``body`` one byte each ``every`` seconds (at once
    when 0) until the server answers; returns the answer and whether the server hung up within
    ``linger`` seconds after it."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        started = time.monotonic()
        sock.sendall(head)
        if body and not every:
            sock.sendall(body)
            body = b""
        received = b""
        deadline = started + wait
        while (length := _answer_length(received)) is None or len(received) < length:
            assert time.monotonic() < deadline, f"no answer within {wait} s: {received!r}"
            readable, _, _ = select.select([sock], [], [], every if body else deadline - time.monotonic())
            if readable:
                chunk = sock.recv(65536)
                assert chunk, f"the server hung up without answering: {received!r}"
                received += chunk
            elif body:
                sock.sendall(body[:1])
                body = body[1:]
        seconds = time.monotonic() - started
        closed = False
        if linger:
            sock.settimeout(linger)
            try:
                closed = sock.recv(1) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True
    head_bytes, _, body_bytes = received.partition(b"\r\n\r\n")
    return RawAnswer(int(head_bytes.split()[1]), json.loads(body_bytes), seconds, closed)


def request_head(content_length: int) -> bytes:
    """The request line and headers of a POST to /graphql announcing ``content_length`` bytes."""
    lines = ["POST /graphql HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    return ("\r\n".join([*lines, f"Content-Length: {content_length}"]) + "\r\n\r\n").encode()


def graphql_literal(value: Any) -> str:
    """``value`` as a GraphQL input literal (object keys unquoted)."""
    if isinstance(value, dict):
        return "{" + " ".join(f"{key}: {graphql_literal(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + " ".join(graphql_literal(item) for item in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def nested_document(depth: int, leaf: Any = "leaf") -> dict[str, Any]:
    """A Strands message nesting lists and objects exactly ``depth`` deep (the message itself is 1)."""
    value: Any = leaf
    for _ in range(depth - 1):
        value = [value]
    return {"role": "user", "content": value}


def stored_size(value: Any) -> int:
    """Bytes of ``value`` as the server stores it: compact JSON in UTF-8."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def message_of_size(size: int) -> dict[str, Any]:
    message = user_message("")
    message["content"][0]["text"] = "x" * (size - stored_size(message))
    assert stored_size(message) == size
    return message


# --- the body: its size and how long it takes to arrive ---


@pytest.fixture(scope="module")
def small_bodies(database_url: str) -> Iterator[RunningServer]:
    with limited_server(database_url, max_body_bytes=4096, body_timeout_seconds=0.5) as running:
        yield running


def typename_body(size: int) -> bytes:
    """A valid request of exactly ``size`` bytes (padded with a GraphQL comment)."""
    start, end = b'{"query": "{ __typename } #', b'"}'
    return start + b"x" * (size - len(start) - len(end)) + end


def test_declared_body_over_the_limit_is_refused_before_it_is_read(small_bodies: RunningServer) -> None:
    # No body follows the headers: a server that waited for it would answer 408 after 0.5 s instead.
    answer = send_raw(small_bodies.port, request_head(4097), linger=2.0)

    assert answer.status == 413
    refused(answer.body, "PAYLOAD_TOO_LARGE")
    assert "4096" in answer.body["errors"][0]["message"]
    assert answer.seconds < 1.0  # reading the 4 KB body it never sent would wait for ever
    # Closing spares the server reading and discarding the rest of a body it refused.
    assert answer.closed


def test_body_of_exactly_the_limit_is_read(small_bodies: RunningServer) -> None:
    answer = send_raw(small_bodies.port, request_head(4096), typename_body(4096))

    assert answer.status == 200
    assert answer.body == {"data": {"__typename": "Query"}}


def test_chunked_body_that_grows_past_the_limit_is_refused(small_bodies: RunningServer) -> None:
    def chunks() -> Iterator[bytes]:
        # No Content-Length: the size is only known as the chunks arrive.
        for _ in range(8):
            yield b"x" * 1024

    response = httpx.post(small_bodies.url, content=chunks(), headers={"content-type": "application/json"})

    assert response.status_code == 413
    refused(response.json(), "PAYLOAD_TOO_LARGE")
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"


def test_chunked_body_under_the_limit_is_read(small_bodies: RunningServer) -> None:
    body = typename_body(4000)

    response = httpx.post(
        small_bodies.url,
        content=iter([body[:2000], body[2000:]]),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


def test_body_arriving_slower_than_the_timeout_is_refused_with_408(small_bodies: RunningServer) -> None:
    body = typename_body(200)

    # A byte every 0.1 s: each arrives well within any per-read timeout, the whole takes 20 s.
    answer = send_raw(small_bodies.port, request_head(len(body)), body, every=0.1, linger=2.0)

    assert answer.status == 408
    refused(answer.body, "REQUEST_TIMEOUT")
    assert "0.5 seconds" in answer.body["errors"][0]["message"]
    assert 0.45 <= answer.seconds < 3.0
    assert answer.closed


# --- the document: size, tokens, depth, aliases ---


def padded_document(size: int, padding: str = "x") -> str:
    """``{ __typename }`` followed by a comment, ``size`` bytes in UTF-8."""
    start = "{ __typename }\n#"
    count, remainder = divmod(size - len(start), len(padding.encode()))
    return start + padding * count + "x" * remainder


def test_document_of_exactly_the_maximum_size_is_answered(graphql: GraphQLCall) -> None:
    document = padded_document(DEFAULTS.max_document_bytes)

    assert graphql(document) == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("padding", ["x", "é"], ids=["ascii", "two-byte characters"])
def test_document_over_the_maximum_size_is_document_too_large(graphql: GraphQLCall, padding: str) -> None:
    # With two-byte characters the document has fewer characters than the limit, but more bytes.
    document = padded_document(DEFAULTS.max_document_bytes + 1, padding)

    error = refused(graphql(document), "DOCUMENT_TOO_LARGE")
    assert str(DEFAULTS.max_document_bytes) in error["message"]


def names(count: int) -> str:
    """A selection of ``count`` fields: ``count + 2`` tokens with the braces."""
    return "{" + " a" * count + " }"


def test_document_of_exactly_the_maximum_tokens_is_parsed(graphql: GraphQLCall) -> None:
    # Parsed, then refused before validation for its 9,998 fields in one selection set: the token
    # limit let it through.
    error = refused(graphql(names(DEFAULTS.max_tokens - 2)), "DOCUMENT_TOO_LARGE")
    assert "selection set" in error["message"]


def test_a_selection_set_of_the_widest_allowed_is_validated(graphql: GraphQLCall) -> None:
    refused(graphql(names(200)), "GRAPHQL_VALIDATION_FAILED")  # unknown fields, but validated


def test_document_over_the_maximum_tokens_is_too_many_tokens(graphql: GraphQLCall) -> None:
    error = refused(graphql(names(DEFAULTS.max_tokens - 1)), "TOO_MANY_TOKENS")
    assert f"more than {DEFAULTS.max_tokens} tokens" in error["message"]


def spread(times: int, fields: int) -> str:
    """A fragment of ``fields`` fields spread ``times`` times: ``times * fields`` fields spread out."""
    selection = " ".join(["__typename"] * fields)
    return "{ " + " ".join(["...F"] * times) + f" }} fragment F on Query {{ {selection} }}"


def test_fragments_spreading_out_to_the_maximum_tokens_are_answered(graphql: GraphQLCall) -> None:
    assert DEFAULTS.max_tokens == 100 * 100

    assert graphql(spread(100, 100)) == {"data": {"__typename": "Query"}}


def test_fragments_spreading_out_past_the_maximum_tokens_are_document_too_large(graphql: GraphQLCall) -> None:
    # 1.6 KB of text: what is walked is the document with its fragments spread out.
    error = refused(graphql(spread(101, 100)), "DOCUMENT_TOO_LARGE")
    assert f"more than {DEFAULTS.max_tokens} fields" in error["message"]


def nested_selection(levels: int) -> str:
    """``levels`` object fields each inside the other (session, agent, session, ...)."""
    fields = ['session(sessionId: "x")'] + [
        'agent(agentId: "a")' if level % 2 == 0 else "session" for level in range(levels - 1)
    ]
    inner = "sessionId"
    for name in reversed(fields):
        inner = f"{name} {{ {inner} }}"
    return "{ " + inner + " }"


def test_query_of_the_maximum_depth_is_answered(graphql: GraphQLCall) -> None:
    assert data_of(graphql(nested_selection(DEFAULTS.max_depth))) == {"session": None}


def test_query_over_the_maximum_depth_is_query_too_deep(graphql: GraphQLCall) -> None:
    error = refused(graphql(nested_selection(DEFAULTS.max_depth + 1)), "QUERY_TOO_DEEP")
    assert f"maximum operation depth of {DEFAULTS.max_depth}" in error["message"]


def aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: __typename" for i in range(count)) + " }"


def test_document_with_the_maximum_aliases_is_answered(graphql: GraphQLCall) -> None:
    assert len(data_of(graphql(aliases(DEFAULTS.max_aliases)))) == DEFAULTS.max_aliases


def test_document_over_the_maximum_aliases_is_too_many_aliases(graphql: GraphQLCall) -> None:
    error = refused(graphql(aliases(DEFAULTS.max_aliases + 1)), "TOO_MANY_ALIASES")
    assert f"Allowed: {DEFAULTS.max_aliases}" in error["message"]


def test_aliases_inside_fragments_count_too(graphql: GraphQLCall) -> None:
    half = DEFAULTS.max_aliases // 2 + 1
    fragment = " ".join(f"f{i}: __typename" for i in range(half))
    document = (
        f"{{ ...F b: __typename ...G }} fragment F on Query {{ {fragment} }} fragment G on Query {{ ...F }}"
    )

    refused(graphql(document), "TOO_MANY_ALIASES")


# --- repeated fields: the work of checking that they merge ---


# The documents: 7 to 9 kB, valid, each validated in 0.2 to 0.8 s by graphql-core's rule that
# same-named fields merge, and each distinct, so that no cache helps.
def repeated(number: int) -> str:
    return f'session(sessionId: "x{number}") {{ agents {{ messages {{ message }} }} }}'


def repeated_fields(number: int) -> str:
    return "{ " + " ".join([repeated(number)] * 200) + " }"


def repeated_through_inline_fragments(number: int) -> str:
    inline = "... on Query { " + " ".join([repeated(number)] * 50) + " }"
    return "{ " + " ".join([inline] * 4) + " }"


def repeated_through_fragments(number: int) -> str:
    fragments = "".join(f"fragment F{i} on Query {{ {repeated(number)} }} " for i in range(100))
    return "{ " + " ".join(f"...F{i}" for i in range(100)) + " } " + fragments


def repeated_inside_repeats(number: int) -> str:
    inner = " ".join(["agents { agentId }"] * 20)
    return "{ " + " ".join([f'session(sessionId: "x{number}") {{ {inner} }}'] * 20) + " }"


def fragments_spread_together(number: int) -> str:
    fragments = "".join(f"fragment F{i}x{number} on Query {{ __typename }} " for i in range(200))
    return "{ " + " ".join(f"...F{i}x{number}" for i in range(200)) + " } " + fragments


REPEATS = {
    "200 repeats of a field": repeated_fields,
    "repeats through inline fragments": repeated_through_inline_fragments,
    "repeats through fragments": repeated_through_fragments,
    "repeats inside repeats": repeated_inside_repeats,
    "200 fragments spread together": fragments_spread_together,
}


@pytest.mark.parametrize("shape", REPEATS)
def test_distinct_documents_repeating_fields_are_refused_before_validation_quickly(
    http: httpx.Client, shape: str
) -> None:
    make = REPEATS[shape]
    started = time.monotonic()
    answers = [http.post("/graphql", json={"query": make(number)}).json() for number in range(20)]
    seconds = time.monotonic() - started

    for answer in answers:
        error = refused(answer, "DOCUMENT_TOO_LARGE")
        assert "select each field once per selection set" in error["message"]
    # Validated, these took 4 to 16 s; refused, under half a second.
    assert seconds < 2.0, f"{seconds:.2f} s for 20 documents"


def test_fields_repeated_a_few_times_and_merged_from_fragments_are_answered(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    document = """
    query($s: String!) {
      session(sessionId: $s) { sessionId agents { agentId } ...Agents ... on Session { agents { agentId } } }
      again: session(sessionId: $s) { sessionId sessionId }
      session(sessionId: $s) { ...Agents }
    }
    fragment Agents on Session { sessionId agents { agentId createdAt } agents { agentId } }
    """

    data = data_of(graphql(document, {"s": session_id}))

    assert data["session"]["sessionId"] == session_id
    assert [agent["agentId"] for agent in data["session"]["agents"]] == [agent_id]
    assert set(data["session"]["agents"][0]) == {"agentId", "createdAt"}
    assert data["again"] == {"sessionId": session_id}


def test_the_clients_and_graphiqls_documents_are_far_within_the_work_of_merging_fields() -> None:
    texts = [document_text(), *load_examples()]

    costs = [document_limits.overlap_work(graphql.parse(text), MAX_OVERLAP_WORK) for text in texts]

    assert max(costs) < MAX_OVERLAP_WORK // 20, costs


def largest_within_the_work(make: Callable[[int], str]) -> str:
    size = 1
    while document_limits.overlap_work(graphql.parse(make(size + 1)), MAX_OVERLAP_WORK) <= MAX_OVERLAP_WORK:
        size += 1
    return make(size)


def repeated_fields_of(times: int, field: str) -> str:
    return "{ " + " ".join([field] * times) + " }"


WITHIN = {
    "a field with arguments and fields below it": lambda size: repeated_fields_of(size, repeated(0)),
    "a leaf with an argument": lambda size: repeated_fields_of(size, 'storageObject(key: "x")'),
    "repeats inside repeats": lambda size: repeated_fields_of(
        size, 'session(sessionId: "x") { ' + " ".join(["agents { messages { message } }"] * size) + " }"
    ),
    "fragments selecting one field": lambda size: (
        "{ "
        + " ".join(f"...F{i}" for i in range(size))
        + " } "
        + "".join(
            f'fragment F{i} on Query {{ session(sessionId: "x") {{ sessionId }} }} ' for i in range(size)
        )
    ),
}


@pytest.mark.parametrize("shape", WITHIN)
def test_the_costliest_documents_within_the_work_of_merging_fields_validate_quickly(shape: str) -> None:
    document = graphql.parse(largest_within_the_work(WITHIN[shape]))
    schema = create_schema()._schema

    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        errors = graphql.validate(schema, document)
        seconds.append(time.perf_counter() - started)

    assert errors == []
    # About 20 ms on a shared 2-core machine; the bound is for noise.
    assert min(seconds) < 0.1, f"{min(seconds) * 1000:.0f} ms"


# --- cost: estimated from page sizes before running, and counted while running ---


def test_estimated_cost_follows_page_sizes_and_list_sizes(graphql: GraphQLCall) -> None:
    # 1 connection + 1000 sessions x (1 + 20 agents, what a listed session is assumed to hold, x (1 + 10,000
    # messages, the list maximum)).
    expected = 1 + 1000 * (1 + DEFAULTS.assumed_nested_list * (1 + DEFAULTS.max_list_size))

    body = graphql("{ sessions(first: 1000) { nodes { agents { messages { message } } } } }")

    error = refused(body, "QUERY_TOO_COSTLY")
    assert f"about {expected} rows" in error["message"]
    assert body.get("data") is None


def test_a_connection_without_first_or_last_costs_its_default_page(graphql: GraphQLCall) -> None:
    # 1 connection + 20 sessions x (1 + 20 agents x (1 connection + 50 messages)): served, not refused
    # as if each messagesConnection returned the list maximum.
    document = "{ sessions(first: 20) { nodes { agents { messagesConnection { nodes { messageId } } } } } }"
    assert "errors" not in graphql(document)

    pages = "messagesConnection(last: 40) { nodes { messageId } }"
    body = graphql(f"{{ sessions(first: 1000) {{ nodes {{ agents {{ {pages} }} }} }} }}")
    error = refused(body, "QUERY_TOO_COSTLY")
    assert f"about {1 + 1000 * (1 + DEFAULTS.assumed_nested_list * (1 + 1 + 40))} rows" in error["message"]


def ten_listings_of(page: int) -> str:
    """Ten listings, each 1 connection + 1 agent + ``page`` messages."""
    one = "agents(first: 1) {{ nodes {{ messages(limit: {page}) {{ messageId }} }} }}"
    return "{ " + " ".join(f"a{i}: " + one.format(page=page) for i in range(10)) + " }"


def test_document_costing_exactly_the_maximum_is_answered(graphql: GraphQLCall) -> None:
    assert DEFAULTS.max_cost == 10 * (2 + 9_998)

    assert "errors" not in graphql(ten_listings_of(9_998))


def test_document_costing_over_the_maximum_is_query_too_costly(graphql: GraphQLCall) -> None:
    error = refused(graphql(ten_listings_of(9_999)), "QUERY_TOO_COSTLY")
    assert f"about {10 * 10_001} rows" in error["message"]


def test_costly_mutation_is_refused_before_anything_runs(graphql: GraphQLCall, new_id: NewId) -> None:
    first, second = new_id("session"), new_id("session")
    # Each creates one session, but asks for up to 1 + 20 x (1 + 10,000) rows back.
    answer = "{ agents { messages { message } } }"
    document = f"""mutation {{
      a: createSession(session: {{sessionId: "{first}"}}) {answer}
      b: createSession(session: {{sessionId: "{second}"}}) {answer}
    }}"""

    refused(graphql(document), "QUERY_TOO_COSTLY")

    found = data_of(
        graphql(
            "query($a: String!, $b: String!) { a: session(sessionId: $a) { sessionId } "
            "b: session(sessionId: $b) { sessionId } }",
            {"a": first, "b": second},
        )
    )
    assert found == {"a": None, "b": None}


@pytest.fixture(scope="module")
def small_cost(database_url: str) -> Iterator[RunningServer]:
    with limited_server(database_url, max_cost=25) as running:
        yield running


SESSION_AGENTS = "query($s: String!) { session(sessionId: $s) { agents { agentId } } }"


def session_with_agents(graphql: GraphQLCall, new_id: NewId, count: int) -> str:
    session_id = new_id("session")
    create_session(graphql, session_id)
    document = (
        "mutation($s: String!) { "
        + " ".join(
            f'a{i}: createAgent(sessionId: $s, agent: {{agentId: "agent-{i:02d}", state: {{}}, '
            "conversationManagerState: {}}) { agentId }"
            for i in range(count)
        )
        + " }"
    )
    data_of(graphql(document, {"s": session_id}))
    return session_id


def test_session_with_few_agents_fits_the_estimate_and_the_rows(
    graphql: GraphQLCall, new_id: NewId, small_cost: RunningServer
) -> None:
    # Estimated at 1 + 20 agents (the nested list maximum): within 25.
    session_id = session_with_agents(graphql, new_id, 3)

    session = data_of(post(small_cost, SESSION_AGENTS, {"s": session_id}))["session"]

    assert len(session["agents"]) == 3


def test_listed_sessions_agents_are_estimated_at_the_most_a_session_returns(
    graphql: GraphQLCall, small_cost: RunningServer
) -> None:
    body = post(small_cost, "{ sessions(first: 2) { nodes { agents { agentId } } } }")

    error = refused(body, "QUERY_TOO_COSTLY")
    assert f"about {1 + 2 * (1 + DEFAULTS.assumed_nested_list)} rows" in error["message"]


def test_a_session_looked_up_by_id_is_estimated_at_what_it_holds(graphql: GraphQLCall, new_id: NewId) -> None:
    """At the largest bounds a session's agents with all their messages are 1 + 20 x 10,001 rows,
    over the limit; looked up by id, the session's three agents of four messages are 16."""
    session_id = session_with_agents(graphql, new_id, 3)
    for i in range(3):
        append_messages(graphql, session_id, f"agent-{i:02d}", [message_input(n) for n in range(4)])
    tree = "query($s: String!) { session(sessionId: $s) { agents { messages { messageId } } } }"
    two = (
        "query($s: String!) { a: session(sessionId: $s) { agents { messages { messageId } } } "
        'b: session(sessionId: "nobody") { agents { messages { messageId } } } }'
    )

    session = data_of(graphql(tree, {"s": session_id}))["session"]
    both = data_of(graphql(two, {"s": session_id}))

    assert [len(agent["messages"]) for agent in session["agents"]] == [4, 4, 4]
    assert both["b"] is None and both["a"] == session
    listed = "{ sessions(first: 1) { nodes { agents { messages { messageId } } } } }"
    refused(graphql(listed), "QUERY_TOO_COSTLY")


def test_a_sessions_agents_are_all_returned_and_page_with_offset_and_limit(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    count = DEFAULTS.assumed_nested_list + 5  # more than the estimate assumes for a listed session
    session_id = session_with_agents(graphql, new_id, count)
    paged = (
        "query($s: String!, $o: Int!, $l: Int) "
        "{ session(sessionId: $s) { agents(offset: $o, limit: $l) { agentId } } }"
    )

    everything = data_of(graphql(SESSION_AGENTS, {"s": session_id}))["session"]["agents"]
    first = data_of(graphql(paged, {"s": session_id, "o": 0, "l": 20}))["session"]["agents"]
    rest = data_of(graphql(paged, {"s": session_id, "o": 20, "l": None}))["session"]["agents"]

    ids = [f"agent-{i:02d}" for i in range(count)]
    assert [a["agentId"] for a in everything] == ids
    assert [a["agentId"] for a in first + rest] == ids
    refused(graphql(paged, {"s": session_id, "o": -1, "l": None}), "BAD_USER_INPUT", "offset")
    limit = DEFAULTS.max_list_size + 1
    refused(graphql(paged, {"s": session_id, "o": 0, "l": limit}), "BAD_USER_INPUT", "limit")


async def test_a_batch_that_would_overrun_the_row_budget_stops_in_the_database(
    graphql: GraphQLCall, new_id: NewId, database_url: str
) -> None:
    """The row budget is a LIMIT on the batch itself, the backstop behind the estimate: a loader
    asked for more than is left never makes the server load all of it only to refuse it."""
    session_id = session_with_agents(graphql, new_id, 20)
    for i in range(20):
        append_messages(graphql, session_id, f"agent-{i:02d}", [message_input(n) for n in range(3)])
    database = Database(create_engine(database_url))
    context = Context(db=database, limits=replace(Limits(), max_cost=60))
    context.rows.spend([object()] * 21)  # a session and its 20 agents, read before
    fetched: list[int] = []

    def rows_fetched(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "session_messages" in statement:
            fetched.append(cursor.rowcount)

    event.listen(database.engine.sync_engine, "after_cursor_execute", rows_fetched)
    try:
        windows = [MessageWindowKey("default", session_id, f"agent-{i:02d}", 0, 3, True) for i in range(20)]
        with pytest.raises(graphql_api.errors.LimitError) as refusal:
            await context.loaders.message_window.load_many(windows)
    finally:
        await database.dispose()

    assert refusal.value.code is ErrorCode.QUERY_TOO_COSTLY
    # 21 rows spent on the session and its agents left 39: the batch fetched 40, not all 60.
    assert fetched == [40]


# --- page and list sizes ---


@pytest.fixture(scope="module")
def known_agent(graphql: GraphQLCall) -> tuple[str, str]:
    session_id, agent_id = f"limits-{time.time_ns()}", "agent"
    create_session(graphql, session_id)
    create_agent(graphql, session_id, agent_id)
    create_message(graphql, session_id, agent_id, 0)
    return session_id, agent_id


PAGE_ARGUMENTS = {
    "sessions.first": (
        "query { sessions(first: %d) { nodes { sessionId } } }",
        "first",
        DEFAULTS.max_page_size,
    ),
    "messagesConnection.first": (
        'query($s: String!) { agent(sessionId: $s, agentId: "agent") { '
        "messagesConnection(first: %d) { nodes { messageId } } } }",
        "first",
        DEFAULTS.max_page_size,
    ),
    "messages.limit": (
        'query($s: String!) { agent(sessionId: $s, agentId: "agent") { messages(limit: %d) { messageId } } }',
        "limit",
        DEFAULTS.max_list_size,
    ),
}


def page_variables(document: str, known_agent: tuple[str, str]) -> dict[str, Any]:
    return {"s": known_agent[0]} if "$s" in document else {}


@pytest.mark.parametrize("argument", PAGE_ARGUMENTS)
def test_page_of_the_maximum_size_is_answered(
    graphql: GraphQLCall, known_agent: tuple[str, str], argument: str
) -> None:
    document, _, maximum = PAGE_ARGUMENTS[argument]

    data_of(graphql(document % maximum, page_variables(document, known_agent)))


@pytest.mark.parametrize("argument", PAGE_ARGUMENTS)
def test_page_over_the_maximum_size_is_bad_user_input_naming_the_maximum(
    graphql: GraphQLCall, known_agent: tuple[str, str], argument: str
) -> None:
    document, field, maximum = PAGE_ARGUMENTS[argument]

    body = graphql(document % (maximum + 1), page_variables(document, known_agent))

    error = refused(body, "BAD_USER_INPUT", field=field)
    assert f"between 0 and {maximum}" in error["message"]


@pytest.fixture(scope="module")
def small_lists(database_url: str) -> Iterator[RunningServer]:
    with limited_server(database_url, max_list_size=5) as running:
        yield running


ALL_MESSAGES = """
query($s: String!, $a: String!) { agent(sessionId: $s, agentId: $a) { messages { messageId } } }
"""


def agent_with_messages(graphql: GraphQLCall, new_id: NewId, count: int) -> dict[str, str]:
    session_id, agent_id = new_agent(graphql, new_id)
    append_messages(graphql, session_id, agent_id, [message_input(i) for i in range(count)])
    return {"s": session_id, "a": agent_id}


def test_messages_without_limit_up_to_the_list_maximum_are_all_returned(
    graphql: GraphQLCall, new_id: NewId, small_lists: RunningServer
) -> None:
    body = post(small_lists, ALL_MESSAGES, agent_with_messages(graphql, new_id, 5))

    assert [m["messageId"] for m in data_of(body)["agent"]["messages"]] == [0, 1, 2, 3, 4]


def test_messages_without_limit_past_the_list_maximum_are_refused_telling_to_page(
    graphql: GraphQLCall, new_id: NewId, small_lists: RunningServer
) -> None:
    body = post(small_lists, ALL_MESSAGES, agent_with_messages(graphql, new_id, 6))

    # Cutting the list short instead would silently lose messages for a client restoring an agent.
    error = refused(body, "BAD_USER_INPUT", field="limit")
    assert "pages of at most 5" in error["message"]


# --- batches ---


def test_batch_over_the_maximum_as_a_variable_is_refused_and_stores_nothing(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    messages = [message_input(i) for i in range(DEFAULTS.max_batch + 1)]

    started = time.monotonic()
    body = graphql(APPEND_MESSAGES, {"sessionId": session_id, "agentId": agent_id, "messages": messages})

    assert time.monotonic() - started < 1.0
    error = refused(body, "BATCH_TOO_LARGE", field="messages")
    assert f"at most {DEFAULTS.max_batch}" in error["message"]
    assert stored_message_ids(graphql, session_id, agent_id) == []


@pytest.fixture(scope="module")
def small_batches(database_url: str) -> Iterator[RunningServer]:
    with limited_server(database_url, max_batch=3) as running:
        yield running


def test_batch_is_counted_before_its_values_are_coerced(
    graphql: GraphQLCall, new_id: NewId, small_batches: RunningServer
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    # Coercing would find the bad messageId (BAD_USER_INPUT); counting comes first.
    messages = [message_input(0), message_input(1), message_input(2), {"messageId": "x", "message": {}}]

    body = post(
        small_batches, APPEND_MESSAGES, {"sessionId": session_id, "agentId": agent_id, "messages": messages}
    )

    refused(body, "BATCH_TOO_LARGE", field="messages")


def literal_append(session_id: str, agent_id: str, count: int) -> str:
    messages = " ".join(
        f'{{messageId: {i}, message: {{role: "user", content: [{{text: "m{i}"}}]}}}}' for i in range(count)
    )
    return (
        f'mutation {{ appendMessages(sessionId: "{session_id}", agentId: "{agent_id}", '
        f"messages: [{messages}]) {{ messageId }} }}"
    )


def test_literal_batch_of_the_maximum_size_is_stored(
    graphql: GraphQLCall, new_id: NewId, small_batches: RunningServer
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)

    data_of(post(small_batches, literal_append(session_id, agent_id, 3)))

    assert stored_message_ids(graphql, session_id, agent_id) == [0, 1, 2]


def test_literal_batch_over_the_maximum_is_refused_and_stores_nothing(
    graphql: GraphQLCall, new_id: NewId, small_batches: RunningServer
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)

    body = post(small_batches, literal_append(session_id, agent_id, 4))

    refused(body, "BATCH_TOO_LARGE", field="messages")
    assert stored_message_ids(graphql, session_id, agent_id) == []


# --- message size ---

MESSAGE_LIMIT = 1000


@pytest.fixture(scope="module")
def small_messages(database_url: str) -> Iterator[RunningServer]:
    with limited_server(database_url, max_message_bytes=MESSAGE_LIMIT) as running:
        yield running


def write_message(
    server: RunningServer, operation: str, session_id: str, agent_id: str, message: dict[str, Any]
) -> dict[str, Any]:
    variables: dict[str, Any] = {"sessionId": session_id, "agentId": agent_id}
    if operation == "appendMessages":
        return post(server, APPEND_MESSAGES, {**variables, "messages": [message_input(5), message]})
    document = CREATE_MESSAGE if operation == "createMessage" else UPDATE_MESSAGE
    return post(server, document, {**variables, "message": message})


MESSAGE_FIELDS = {"createMessage": "message", "appendMessages": "messages[1]", "updateMessage": "message"}


@pytest.mark.parametrize("operation", MESSAGE_FIELDS)
def test_message_over_the_maximum_size_is_refused_and_changes_nothing(
    graphql: GraphQLCall, new_id: NewId, small_messages: RunningServer, operation: str
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    if operation == "updateMessage":
        create_message(graphql, session_id, agent_id, 0)
    before = data_of(graphql(GET_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "messageId": 0}))

    body = write_message(
        small_messages,
        operation,
        session_id,
        agent_id,
        {"messageId": 0, "message": message_of_size(MESSAGE_LIMIT + 1)},
    )

    error = refused(body, "MESSAGE_TOO_LARGE", field=MESSAGE_FIELDS[operation])
    assert f"{MESSAGE_LIMIT + 1} bytes" in error["message"]
    after = data_of(graphql(GET_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "messageId": 0}))
    assert after == before
    expected_ids = [0] if operation == "updateMessage" else []
    assert stored_message_ids(graphql, session_id, agent_id) == expected_ids


@pytest.mark.parametrize("operation", MESSAGE_FIELDS)
def test_message_of_exactly_the_maximum_size_is_stored(
    graphql: GraphQLCall, new_id: NewId, small_messages: RunningServer, operation: str
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    if operation == "updateMessage":
        create_message(graphql, session_id, agent_id, 0)
    message = message_of_size(MESSAGE_LIMIT)

    data_of(
        write_message(small_messages, operation, session_id, agent_id, {"messageId": 0, "message": message})
    )

    stored = data_of(graphql(GET_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "messageId": 0}))
    assert same_json(stored["message"]["message"], message)


def test_redaction_counts_towards_the_message_size(
    graphql: GraphQLCall, new_id: NewId, small_messages: RunningServer
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    message, redaction = message_of_size(600), message_of_size(401)

    body = write_message(
        small_messages,
        "createMessage",
        session_id,
        agent_id,
        {"messageId": 0, "message": message, "redactMessage": redaction},
    )

    refused(body, "MESSAGE_TOO_LARGE", field="message")
    assert stored_message_ids(graphql, session_id, agent_id) == []


def test_literal_message_that_grows_past_the_maximum_when_stored_is_refused(
    graphql: GraphQLCall, new_id: NewId, small_messages: RunningServer
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    content = " ".join(["1e15"] * 150)  # 750 bytes here, 2,700 stored
    document = (
        f'mutation {{ createMessage(sessionId: "{session_id}", agentId: "{agent_id}", '
        f'message: {{messageId: 0, message: {{role: "user", content: [{content}]}}}}) {{ messageId }} }}'
    )
    assert len(json.dumps({"query": document, "variables": {}})) < MESSAGE_LIMIT

    refused(post(small_messages, document), "MESSAGE_TOO_LARGE", field="message")
    assert stored_message_ids(graphql, session_id, agent_id) == []


def test_a_storage_object_over_the_maximum_is_refused_and_nothing_is_stored(
    database_url: str, new_id: NewId
) -> None:
    key = f"{new_id('objects')}/big.bin"
    with limited_server(database_url, max_object_bytes=1000) as running:
        write = "mutation($k: String!, $d: Base64!) { writeStorageObject(key: $k, data: $d) { size } }"

        def post_object(size: int) -> dict[str, Any]:
            data = base64.b64encode(b"x" * size).decode()
            answer: dict[str, Any] = httpx.post(
                running.url, json={"query": write, "variables": {"k": key, "d": data}}
            ).json()
            return answer

        refused(post_object(1001), "OBJECT_TOO_LARGE", field="data")
        read = httpx.post(
            running.url,
            json={"query": "query($k: String!) { storageObject(key: $k) }", "variables": {"k": key}},
        )
        assert read.json() == {"data": {"storageObject": None}}
        assert post_object(1000) == {"data": {"writeStorageObject": {"size": 1000}}}


# --- JSON depth ---


@dataclass(frozen=True)
class JsonPlace:
    """One stored document a mutation writes, given as a variable or as a literal."""

    mutation: str
    argument: str
    input_type: str
    make_input: Callable[[Any], dict[str, Any]]
    field: str
    """The name the error gives the document."""
    read: Callable[[GraphQLCall, str], Any]

    def write(self, graphql: GraphQLCall, session_id: str, value: Any, literal: bool) -> dict[str, Any]:
        given = self.make_input(value)
        agent = 'agentId: "a", ' if self.mutation.endswith("Message") else ""
        call = f"{self.mutation}(sessionId: $s, {agent}{self.argument}: "
        if literal:
            return graphql(
                f"mutation($s: String!) {{ {call}{graphql_literal(given)}) {{ __typename }} }}",
                {"s": session_id},
            )
        document = f"mutation($s: String!, $v: {self.input_type}!) {{ {call}$v) {{ __typename }} }}"
        return graphql(document, {"s": session_id, "v": given})


def _read_message(field: str) -> Callable[[GraphQLCall, str], Any]:
    def read(graphql: GraphQLCall, session_id: str) -> Any:
        variables = {"sessionId": session_id, "agentId": "a", "messageId": 0}
        found = data_of(graphql(GET_MESSAGE, variables))["message"]
        return None if found is None else found[field]

    return read


def _read_agent_state(agent_id: str) -> Callable[[GraphQLCall, str], Any]:
    def read(graphql: GraphQLCall, session_id: str) -> Any:
        found = data_of(graphql(GET_AGENT, {"sessionId": session_id, "agentId": agent_id}))["agent"]
        return None if found is None else found["state"]

    return read


def _read_multi_agent_state(graphql: GraphQLCall, session_id: str) -> Any:
    found = data_of(graphql(GET_MULTI_AGENT, {"sessionId": session_id, "multiAgentId": "m"}))["multiAgent"]
    return None if found is None else found["state"]


JSON_PLACES = {
    "createMessage.message": JsonPlace(
        "createMessage",
        "message",
        "MessageInput",
        lambda value: {"messageId": 0, "message": value},
        "message.message",
        _read_message("message"),
    ),
    "createMessage.redactMessage": JsonPlace(
        "createMessage",
        "message",
        "MessageInput",
        lambda value: {"messageId": 0, "message": user_message("hi"), "redactMessage": value},
        "message.redactMessage",
        _read_message("redactMessage"),
    ),
    "createAgent.state": JsonPlace(
        "createAgent",
        "agent",
        "AgentInput",
        lambda value: agent_input("b", state=value),
        "agent.state",
        _read_agent_state("b"),
    ),
    "updateAgent.state": JsonPlace(
        "updateAgent",
        "agent",
        "AgentInput",
        lambda value: agent_input("a", state=value),
        "agent.state",
        _read_agent_state("a"),
    ),
    "createMultiAgent.state": JsonPlace(
        "createMultiAgent",
        "multiAgent",
        "MultiAgentInput",
        lambda value: {"multiAgentId": "m", "state": value},
        "multiAgent.state",
        _read_multi_agent_state,
    ),
}


def session_for_json(graphql: GraphQLCall, new_id: NewId) -> str:
    session_id = new_id("session")
    create_session(graphql, session_id)
    create_agent(graphql, session_id, "a", state={"before": True})
    return session_id


@pytest.mark.parametrize("literal", [False, True], ids=["variable", "literal"])
@pytest.mark.parametrize("place", JSON_PLACES)
def test_json_of_the_maximum_depth_is_stored_and_reads_back_equal(
    graphql: GraphQLCall, new_id: NewId, place: str, literal: bool
) -> None:
    where = JSON_PLACES[place]
    session_id = session_for_json(graphql, new_id)
    document = nested_document(DEFAULTS.max_json_depth)

    data_of(where.write(graphql, session_id, document, literal))

    assert same_json(where.read(graphql, session_id), document)


@pytest.mark.parametrize("literal", [False, True], ids=["variable", "literal"])
@pytest.mark.parametrize("place", JSON_PLACES)
def test_json_over_the_maximum_depth_is_json_too_deep_and_stores_nothing(
    graphql: GraphQLCall, new_id: NewId, place: str, literal: bool
) -> None:
    where = JSON_PLACES[place]
    session_id = session_for_json(graphql, new_id)
    before = where.read(graphql, session_id)

    body = where.write(graphql, session_id, nested_document(DEFAULTS.max_json_depth + 1), literal)

    error = refused(body, "JSON_TOO_DEEP", field=where.field)
    assert f"more than {DEFAULTS.max_json_depth} deep" in error["message"]
    assert where.read(graphql, session_id) == before


def test_variable_nested_far_past_the_maximum_is_refused_before_coercion(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = session_for_json(graphql, new_id)
    message = {"messageId": 0, "message": nested_document(150)}

    body = graphql(CREATE_MESSAGE, {"sessionId": session_id, "agentId": "a", "message": message})

    # Named by the variable: refused before graphql-core walked it, not by the resolver.
    refused(body, "JSON_TOO_DEEP", field="message")
    assert stored_message_ids(graphql, session_id, "a") == []


# --- statement timeout ---


@pytest.fixture(scope="module")
def short_statements(database_url: str) -> Iterator[RunningServer]:
    with limited_server(database_url, statement_timeout_ms=300) as running:
        yield running


async def test_statement_waiting_past_the_timeout_is_statement_timeout(
    graphql: GraphQLCall, new_id: NewId, short_statements: RunningServer, database_url: str
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    variables = {"sessionId": session_id, "agent": agent_input(agent_id, state={"after": "lock"})}
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as holder:
            transaction = await holder.begin()
            await holder.execute(
                text("SELECT 1 FROM session_agents WHERE session_id = :s AND agent_id = :a FOR UPDATE"),
                {"s": session_id, "a": agent_id},
            )
            started = time.monotonic()
            body = await asyncio.to_thread(post, short_statements, UPDATE_AGENT, variables)
            waited = time.monotonic() - started
            await transaction.rollback()
    finally:
        await engine.dispose()

    error = refused(body, "STATEMENT_TIMEOUT")
    assert "longer than the server allows" in error["message"]
    assert 0.25 <= waited < 1.5
    # The lock is gone, so the same update now goes through.
    updated = await asyncio.to_thread(post, short_statements, UPDATE_AGENT, variables)
    assert data_of(updated)["updateAgent"]["state"] == {"after": "lock"}


# --- the parsed-document cache ---


def test_cache_keeps_small_documents_and_never_large_ones() -> None:
    cache = DocumentCache()
    small = "{ __typename }"
    large = "{ __typename }" + " " * document_limits.CACHED_DOCUMENT_CHARACTERS

    cache.put(small, graphql.parse(small))
    cache.put(large, graphql.parse(large))

    assert cache.get(small) is not None
    assert cache.get(large) is None


def test_cache_evicts_the_least_recently_used_past_its_budget() -> None:
    cache = DocumentCache()
    size = document_limits.CACHED_DOCUMENT_CHARACTERS
    parsed = graphql.parse("{ __typename }")
    fit = document_limits.CACHE_BUDGET_CHARACTERS // size
    documents = [f"{{ __typename }} #{i:08d}".ljust(size) for i in range(fit + fit // 2)]

    for i, document in enumerate(documents):
        cache.put(document, parsed)
        if i == fit - 1:
            cache.get(documents[0])  # used again: the newest, so kept longer

    kept = [i for i, document in enumerate(documents) if cache.get(document) is not None]
    assert len(kept) == fit
    assert kept[0] == 0
    assert kept[1:] == list(range(len(documents) - fit + 1, len(documents)))


def distinct_invalid_document(number: int) -> str:
    """About 8 KB of unknown fields, small enough to cache: invalid, and about 280 bytes of syntax
    tree per character."""
    return "{" + " a" * 4000 + f" }} #{number}"


def memory_grown_by(http: httpx.Client, make: Callable[[int], str], count: int, code: str) -> int:
    """How much this process (the test server runs in it) grows while answering ``count`` distinct
    documents, each refused with ``code``; a few first warm the parser up."""
    process = psutil.Process()
    for number in range(3):
        http.post("/graphql", json={"query": make(10_000 + number)})
    gc.collect()
    before = process.memory_info().rss
    for number in range(count):
        response = http.post("/graphql", json={"query": make(number)})
        assert response.status_code == 200
        refused(response.json(), code)
    gc.collect()
    return process.memory_info().rss - before


def test_documents_that_fail_validation_are_not_kept(http: httpx.Client) -> None:
    # 60 of these kept would hold about 130 MB.
    grown = memory_grown_by(http, distinct_invalid_document, 60, "DOCUMENT_TOO_LARGE")

    assert grown < 60 * 2**20, f"grew by {grown / 2**20:.0f} MB"


def distinct_large_document(number: int) -> str:
    """About 90 KB and 9,900 tokens, within the document limits; its parse is a few MB."""
    items = ",".join(str(10_000_000 * (number + 1) + i) for i in range(9_900))
    return f"query Q{number}($v: [Int] = [{items}]) {{ __typename }}"


def test_distinct_large_documents_do_not_grow_the_servers_memory(http: httpx.Client) -> None:
    # Caching these 20 documents' parses would hold about 90 MB; without caching, memory only rises
    # to what parsing one needs (about 12 MB). $v is never used, so each is invalid.
    grown = memory_grown_by(http, distinct_large_document, 20, "GRAPHQL_VALIDATION_FAILED")

    assert grown < 40 * 2**20, f"grew by {grown / 2**20:.0f} MB"


# --- every limit has its test ---


def documented_limit_codes() -> set[str]:
    """The codes errors.py lists under "Request limits"."""
    docstring = graphql_api.errors.__doc__ or ""
    section = docstring.split("Request limits", 1)[1].split("\n- ", 1)[0]
    return set(re.findall(r"``([A-Z_]+)``", section))


def test_every_documented_limit_code_is_checked_by_a_test() -> None:
    codes = documented_limit_codes()
    assert len(codes) >= 11 and codes <= CODES
    asserted: set[str] = set()
    for name in ("test_limits.py", "test_hostile_input.py", "test_answer_limits.py"):
        tree = ast.parse((Path(__file__).parent / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            is_check = isinstance(node, ast.Call) and getattr(node.func, "id", None) == "refused"
            if is_check:
                asserted.update(arg.value for arg in node.args if isinstance(arg, ast.Constant))

    assert codes - asserted == set()
