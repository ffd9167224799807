"""Regressions for what fuzzing /graphql found: requests that stalled the server for everyone, built
huge answers, or got errors without a code. Each is now refused quickly with its own code, never with
an HTTP 5xx or a traceback, while another client goes on being answered.
"""

import asyncio
import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from graphql_api.types.scalars import EARLIEST, LATEST
from tests.api_calls import (
    APPEND_MESSAGES,
    CREATE_MESSAGE,
    CREATE_SESSION,
    GET_SESSION,
    GraphQLCall,
    NewId,
    append_messages,
    create_agent,
    create_session,
    data_of,
    message_input,
    new_agent,
    stored_message_ids,
)
from tests.conftest import RunningServer
from tests.test_limits import limited_server, refused, request_head, send_raw

LEAKS = ("Traceback", "maximum recursion depth", "RecursionError", '.py"')
# Bounds for a shared 2-core machine: each stall they guard against took 8 to 58 seconds.
QUICK = 3.0
OTHER_CLIENT_WAIT = 2.0


def answered(response: httpx.Response) -> dict[str, Any]:
    """The decoded body of an answer that is the client's fault at worst, and shows no internals."""
    assert response.status_code < 500, response.text[:2000]
    for leak in LEAKS:
        assert leak not in response.text, response.text[:2000]
    body: dict[str, Any] = response.json()
    return body


def post_content(url: str, content: bytes) -> tuple[httpx.Response, float]:
    """POSTs an already encoded body on a connection of its own; returns the answer and its seconds."""
    with httpx.Client(timeout=60) as client:
        started = time.monotonic()
        response = client.post(url, content=content, headers={"content-type": "application/json"})
        return response, time.monotonic() - started


@contextmanager
def another_client(url: str) -> Iterator[list[float]]:
    """Another client asking ``{ __typename }`` again and again while the block runs; yields how long
    each of its answers took (the list fills in as they come)."""
    latencies: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def ask() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    response = client.post(url, json={"query": "{ __typename }"})
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                    return
                latencies.append(time.monotonic() - started)
                if response.json() != {"data": {"__typename": "Query"}}:
                    failures.append(response.text)
                stop.wait(0.01)

    thread = threading.Thread(target=ask, name="another-client", daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not latencies and not failures and time.monotonic() < deadline:
        time.sleep(0.005)  # connected and answered once: what follows measures the server alone
    assert latencies, failures
    try:
        yield latencies
    finally:
        time.sleep(0.05)  # an answer after the hostile one, in case it was the one held up
        stop.set()
        thread.join(timeout=30)
    assert failures == []


# --- aliases multiplying a large answer ---


@pytest.fixture(scope="module")
def thousand_messages(graphql: GraphQLCall) -> tuple[str, str]:
    session_id, agent_id = f"aliases-{uuid.uuid4().hex[:12]}", "agent"
    create_session(graphql, session_id)
    create_agent(graphql, session_id, agent_id)
    append_messages(graphql, session_id, agent_id, [message_input(i) for i in range(1000)])
    return session_id, agent_id


def aliased_agents(count: int) -> str:
    fields = " ".join(
        f"a{i}: agent(sessionId: $s, agentId: $a) {{ messages {{ message }} }}" for i in range(count)
    )
    return f"query($s: String!, $a: String!) {{ {fields} }}"


@pytest.fixture(scope="module")
def many_tokens(database_url: str) -> Iterator[RunningServer]:
    # Enough tokens for the 800 aliases, so that the alias limit is what refuses them.
    with limited_server(database_url, max_tokens=100_000) as running:
        yield running


def test_800_aliases_of_a_large_agent_are_refused_before_building_the_answer(
    many_tokens: RunningServer, thousand_messages: tuple[str, str]
) -> None:
    # Run, this would have built 800 x 1,000 messages into one answer.
    session_id, agent_id = thousand_messages
    content = json.dumps({"query": aliased_agents(800), "variables": {"s": session_id, "a": agent_id}})

    response, seconds = post_content(many_tokens.url, content.encode())

    error = refused(answered(response), "TOO_MANY_ALIASES")
    assert "800 aliases" in error["message"]
    assert seconds < QUICK
    assert len(response.content) < 2000


def test_800_aliases_are_refused_by_the_token_limit_first_with_default_limits(
    server: RunningServer, thousand_messages: tuple[str, str]
) -> None:
    session_id, agent_id = thousand_messages
    content = json.dumps({"query": aliased_agents(800), "variables": {"s": session_id, "a": agent_id}})

    response, seconds = post_content(server.url, content.encode())

    refused(answered(response), "TOO_MANY_TOKENS")
    assert seconds < QUICK


# --- requests that stalled the server for every client ---


def hundred_thousand_messages() -> bytes:
    messages = [{"messageId": i, "message": {"role": "user", "content": []}} for i in range(100_000)]
    variables = {"sessionId": "hostile", "agentId": "batch", "messages": messages}
    return json.dumps({"query": APPEND_MESSAGES, "variables": variables}).encode()


def fifty_megabyte_literal() -> bytes:
    document = '{ session(sessionId: "' + "x" * 50_000_000 + '") { sessionId } }'
    return json.dumps({"query": document}).encode()


def hundred_thousand_operations() -> bytes:
    document = "\n".join(f"query q{i} {{ __typename }}" for i in range(100_000))
    return json.dumps({"query": document}).encode()


def fifty_thousand_aliases() -> bytes:
    document = "{ " + " ".join(f"a{i}: __typename" for i in range(50_000)) + " }"
    return json.dumps({"query": document}).encode()


def thousand_repeats_of_one_field() -> bytes:
    # Same-named fields must merge; graphql-core compares them pairwise (a second for a thousand).
    document = "{ " + " ".join(['session(sessionId: "s") { sessionId }'] * 1000) + " }"
    return json.dumps({"query": document}).encode()


STALLS = {
    "1,000 repeats of one field": (thousand_repeats_of_one_field, 200, "DOCUMENT_TOO_LARGE"),
    "100,000 messages as a variable": (hundred_thousand_messages, 200, "BATCH_TOO_LARGE"),
    "a 50 MB string literal": (fifty_megabyte_literal, 413, "PAYLOAD_TOO_LARGE"),
    "100,000 operations": (hundred_thousand_operations, 200, "DOCUMENT_TOO_LARGE"),
    "50,000 aliases": (fifty_thousand_aliases, 200, "DOCUMENT_TOO_LARGE"),
}


@pytest.mark.parametrize("request_kind", STALLS)
def test_huge_request_is_refused_quickly_while_others_are_answered(
    server: RunningServer, request_kind: str
) -> None:
    make, status, code = STALLS[request_kind]
    content = make()

    with another_client(server.url) as latencies:
        response, seconds = post_content(server.url, content)

    assert response.status_code == status
    refused(answered(response), code)
    assert seconds < (1.0 if "repeats" in request_kind else QUICK)
    assert max(latencies) < OTHER_CLIENT_WAIT, f"another client waited {max(latencies):.2f} s"


@pytest.fixture(scope="module")
def large_documents(database_url: str) -> Iterator[RunningServer]:
    # As an operator might configure it; then the token limit is what stops the parser early.
    with limited_server(database_url, max_body_bytes=64 * 2**20, max_document_bytes=64 * 2**20) as running:
        yield running


@pytest.mark.parametrize("make", [hundred_thousand_operations, fifty_thousand_aliases])
def test_huge_document_under_a_raised_size_limit_stops_at_the_token_limit(
    large_documents: RunningServer, make: Callable[[], bytes]
) -> None:
    content = make()

    with another_client(large_documents.url) as latencies:
        response, seconds = post_content(large_documents.url, content)

    refused(answered(response), "TOO_MANY_TOKENS")
    assert seconds < QUICK
    assert max(latencies) < OTHER_CLIENT_WAIT, f"another client waited {max(latencies):.2f} s"


def fragments_spreading_each_other(levels: int) -> bytes:
    """Each fragment spreads the next twice: 2 ** ``levels`` fields once spread out, in 40 bytes a level."""
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    document = "{ ...F0 } " + " ".join([*fragments, f"fragment F{levels} on Query {{ __typename }}"])
    return json.dumps({"query": document}).encode()


def test_fragments_spreading_each_other_twice_over_are_refused_before_they_are_walked(
    server: RunningServer,
) -> None:
    # 900 bytes, two million fields: the depth and alias rules took about 10 s to walk them.
    content = fragments_spreading_each_other(21)

    with another_client(server.url) as latencies:
        response, seconds = post_content(server.url, content)

    error = refused(answered(response), "DOCUMENT_TOO_LARGE")
    assert "once its fragments are spread out" in error["message"]
    assert seconds < QUICK
    assert max(latencies) < OTHER_CLIENT_WAIT, f"another client waited {max(latencies):.2f} s"


# --- values nested past what Python's recursion reaches ---


def nested_message_variable(session_id: str, agent_id: str, depth: int) -> bytes:
    """createMessage with a message ``depth`` lists deep, written out by hand: json.dumps itself
    would run out of stack on the way."""
    head = json.dumps({"query": CREATE_MESSAGE, "variables": {"sessionId": session_id, "agentId": agent_id}})
    message = (
        '{"messageId": 0, "message": {"role": "user", "content": '
        + "[" * depth
        + '"leaf"'
        + "]" * depth
        + "}}"
    )
    return (head[:-2] + ', "message": ' + message + "}}").encode()


def nested_message_literal(session_id: str, agent_id: str, depth: int) -> bytes:
    content = "[" * depth + '"leaf"' + "]" * depth
    document = (
        f'mutation {{ createMessage(sessionId: "{session_id}", agentId: "{agent_id}", '
        f'message: {{messageId: 0, message: {{role: "user", content: {content}}}}}) {{ messageId }} }}'
    )
    return json.dumps({"query": document}).encode()


@pytest.mark.parametrize("depth", [950, 960])
def test_message_nested_near_the_recursion_limit_as_a_variable_gets_a_code(
    graphql: GraphQLCall, server: RunningServer, new_id: NewId, depth: int
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)

    response, _ = post_content(server.url, nested_message_variable(session_id, agent_id, depth))

    # Python's json reads about this deep, depending on the stack in use: past it the body is not JSON.
    if response.status_code == 400:
        refused(answered(response), "BAD_REQUEST")
    else:
        refused(answered(response), "JSON_TOO_DEEP", field="message")
    assert stored_message_ids(graphql, session_id, agent_id) == []


@pytest.mark.parametrize("depth", [950, 960])
def test_message_nested_near_the_recursion_limit_as_a_literal_gets_a_code(
    graphql: GraphQLCall, server: RunningServer, new_id: NewId, depth: int
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)

    response, _ = post_content(server.url, nested_message_literal(session_id, agent_id, depth))

    # graphql-core stops parsing values nested over 200 deep, before anything recurses that far.
    error = refused(answered(response), "GRAPHQL_PARSE_FAILED")
    assert "nested too deeply" in error["message"]
    assert stored_message_ids(graphql, session_id, agent_id) == []


def test_literal_nested_deeper_than_stored_documents_but_parseable_is_json_too_deep(
    graphql: GraphQLCall, server: RunningServer, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)

    response, _ = post_content(server.url, nested_message_literal(session_id, agent_id, 150))

    refused(answered(response), "JSON_TOO_DEEP", field="message.message")
    assert stored_message_ids(graphql, session_id, agent_id) == []


# --- DateTime values ---

REPRS = ("datetime.", "timedelta(", "ValueError(", "Invalid isoformat", "'")


def create_session_at(http: httpx.Client, session_id: str, created_at: Any) -> dict[str, Any]:
    variables = {"session": {"sessionId": session_id, "createdAt": created_at}}
    return answered(http.post("/graphql", json={"query": CREATE_SESSION, "variables": variables}))


def assert_no_session(http: httpx.Client, session_id: str) -> None:
    body = answered(
        http.post("/graphql", json={"query": GET_SESSION, "variables": {"sessionId": session_id}})
    )
    assert data_of(body) == {"session": None}


@pytest.mark.parametrize(
    "instant",
    ["9999-12-31T23:59:59.999999+00:00", "0001-01-01T00:00:00+00:00", "9998-12-31T23:59:59.999999-00:01"],
    ids=["end of Python's range", "year 1", "past 9998 in UTC"],
)
def test_instant_outside_the_storable_years_is_bad_user_input(
    http: httpx.Client, new_id: NewId, instant: str
) -> None:
    # Stored, Python's extremes became PostgreSQL's infinities, which read back as no instant at all.
    session_id = new_id("session")

    error = refused(create_session_at(http, session_id, instant), "BAD_USER_INPUT")

    assert "outside the years 1900 to 9998" in error["message"]
    assert_no_session(http, session_id)


def test_datetime_with_a_nul_character_is_bad_user_input(http: httpx.Client, new_id: NewId) -> None:
    session_id = new_id("session")

    error = refused(create_session_at(http, session_id, "2026-01-01T00:00:00\x00+00:00"), "BAD_USER_INPUT")

    assert "NUL character" in error["message"]
    assert_no_session(http, session_id)


UNREADABLE_TIMES = {
    "month 13": ("2026-13-01T00:00:00+00:00", "month must be in 1..12"),
    "day 30 of February": ("2026-02-30T00:00:00+00:00", "day is out of range for month"),
    "offset of 25 hours": ("2026-01-01T00:00:00+25:00", "offset must be less than 24 hours"),
    "words": ("the day after tomorrow", "expected a form like 2026-01-02T03:04:05+00:00"),
    "10,000 characters": ("x" * 10_000, "expected a form like"),
}


@pytest.mark.parametrize("case", UNREADABLE_TIMES)
def test_unreadable_datetime_gets_a_readable_message(http: httpx.Client, new_id: NewId, case: str) -> None:
    value, reason = UNREADABLE_TIMES[case]
    session_id = new_id("session")

    error = refused(create_session_at(http, session_id, value), "BAD_USER_INPUT")

    assert reason in error["message"]
    for python_text in REPRS:
        assert python_text not in error["message"].replace("'$session'", "")
    assert len(error["message"]) < 300  # the value is quoted shortened, never in full
    assert_no_session(http, session_id)


SESSION_PAGE = """
query($after: String) {
  sessions(first: 1, after: $after) { nodes { sessionId createdAt } pageInfo { hasNextPage endCursor } }
}
"""


def test_listing_that_ends_on_the_newest_and_oldest_allowed_sessions_still_pages(
    server: RunningServer, new_id: NewId
) -> None:
    # A tenant of its own, so the listing holds these two sessions only; removed afterwards, as
    # year 9998 would sort before every other test's sessions.
    tenant = new_id("hostile")
    newest, oldest = new_id("newest"), new_id("oldest")
    times = {
        newest: (LATEST - timedelta(microseconds=1)).isoformat(),
        oldest: EARLIEST.isoformat(),
    }
    with httpx.Client(base_url=server.base_url, timeout=30, headers={"X-Tenant": tenant}) as http:
        try:
            for session_id, created_at in times.items():
                data_of(create_session_at(http, session_id, created_at))
            pages = []
            after = None
            for _ in range(3):
                body = answered(
                    http.post("/graphql", json={"query": SESSION_PAGE, "variables": {"after": after}})
                )
                page = data_of(body)["sessions"]
                pages.append([(node["sessionId"], node["createdAt"]) for node in page["nodes"]])
                after = page["pageInfo"]["endCursor"]
                if not page["pageInfo"]["hasNextPage"]:
                    break
        finally:
            for session_id in times:
                http.post(
                    "/graphql",
                    json={
                        "query": "mutation($s: String!) { deleteSession(sessionId: $s) }",
                        "variables": {"s": session_id},
                    },
                )

    assert pages == [[(newest, "9998-12-31T23:59:59.999999+00:00")], [(oldest, "1900-01-01T00:00:00+00:00")]]


# --- Time values: milliseconds since 1970 ---

STATS_FROM = "query($from: Time) { conversationStats(bucket: DAY, from: $from) { totals { messages } } }"
OUT_OF_RANGE = "is outside the years 1900 to 9998"
# Each value as the body's JSON writes it: Python's json and lenient encoders send NaN and Infinity.
TIMES_IN_MILLISECONDS = {
    "year 10000": ("253402300800000", OUT_OF_RANGE),
    "year 9999": ("253370764800000", OUT_OF_RANGE),
    "before 1900": ("-2208988800001", OUT_OF_RANGE),
    "1e30": ("1e30", OUT_OF_RANGE),
    "1e308": ("1e308", OUT_OF_RANGE),
    "-1e308": ("-1e308", OUT_OF_RANGE),
    "-10**20": (str(-(10**20)), OUT_OF_RANGE),
    "10**400": (str(10**400), OUT_OF_RANGE),
    "10**400 as digits": (f'"{10**400}"', OUT_OF_RANGE),
    "5,000 digits": (f'"{"9" * 5000}"', OUT_OF_RANGE),
    "minus 5,000 digits": (f'"-{"9" * 5000}"', OUT_OF_RANGE),
    "Infinity": ("Infinity", OUT_OF_RANGE),
    "-Infinity": ("-Infinity", OUT_OF_RANGE),
    "NaN": ("NaN", "is not a number"),
    "two minus signs": ('"--5"', "expected a form like"),
    "superscript digit": ('"\\u00b2"', "expected a form like"),
}


@pytest.mark.parametrize("case", TIMES_IN_MILLISECONDS)
def test_time_in_milliseconds_the_server_cannot_store_gets_a_readable_message(
    server: RunningServer, case: str
) -> None:
    value, reason = TIMES_IN_MILLISECONDS[case]
    body = f'{{"query": "{STATS_FROM}", "variables": {{"from": {value}}}}}'

    response, _ = post_content(server.url, body.encode())

    error = refused(answered(response), "BAD_USER_INPUT")
    assert reason in error["message"], error
    assert "milliseconds since 1970" in error["message"] or reason == "expected a form like", error
    for python_text in REPRS:
        assert python_text not in error["message"].replace("'$from'", ""), error
    assert len(error["message"]) < 300, error


@pytest.mark.parametrize(
    "literal",
    ["253402300800000", "-253402300800000", str(10**400), "1e308", "9" * 5000],
    ids=["year 10000", "before 1900", "10**400", "1e308", "5,000 digits"],
)
def test_time_literal_out_of_range_gets_a_readable_message(graphql: GraphQLCall, literal: str) -> None:
    document = f"{{ conversationStats(bucket: DAY, from: {literal}) {{ totals {{ messages }} }} }}"

    # Values written in the document are checked with the document, as any other argument is.
    error = refused(graphql(document), "GRAPHQL_VALIDATION_FAILED")

    assert OUT_OF_RANGE in error["message"], error
    assert len(error["message"]) < 300, error


STATS_RANGE = """
query($from: Time, $to: Time) { conversationStats(bucket: DAY, from: $from, to: $to) { totals { messages } } }
"""


def test_time_in_milliseconds_at_the_ends_of_the_range_is_read(graphql: GraphQLCall) -> None:
    first, last = int(EARLIEST.timestamp() * 1000), int(LATEST.timestamp() * 1000) - 1
    day = 24 * 3600 * 1000
    for start, end in ((first, first + day), (last - day, last)):
        for kind in (int, str, float):
            answer = graphql(STATS_RANGE, {"from": kind(start), "to": kind(end)})
            assert answer == {"data": {"conversationStats": {"totals": {"messages": 0}}}}, (kind, answer)


# --- bodies that never arrive ---


@pytest.fixture(scope="module")
def slow_bodies(database_url: str) -> Iterator[RunningServer]:
    with limited_server(database_url, body_timeout_seconds=0.5) as running:
        yield running


def test_request_whose_body_never_arrives_is_timed_out_and_hung_up_on(slow_bodies: RunningServer) -> None:
    answer = send_raw(slow_bodies.port, request_head(100), linger=2.0)

    assert answer.status == 408
    refused(answer.body, "REQUEST_TIMEOUT")
    assert 0.45 <= answer.seconds < QUICK
    # Left open, the connection would wait for the rest of the body for as long as the client likes.
    assert answer.closed


def test_many_clients_whose_bodies_never_arrive_do_not_hold_up_others(slow_bodies: RunningServer) -> None:
    with ExitStack() as stack, another_client(slow_bodies.url) as latencies:
        started = time.monotonic()
        stalled = []
        for _ in range(50):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", slow_bodies.port), timeout=5))
            sock.sendall(request_head(100))
            stalled.append(sock)
        answers = [sock.recv(65536) for sock in stalled]
        hung_up = [sock.recv(1) == b"" for sock in stalled]
        seconds = time.monotonic() - started

    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    assert all(hung_up)
    assert seconds < QUICK
    assert max(latencies) < OTHER_CLIENT_WAIT, f"another client waited {max(latencies):.2f} s"


async def write_rows(database_url: str, sql: str, **params: Any) -> None:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


def test_a_listing_pages_past_a_row_stored_as_infinity_before_times_were_checked(
    http: httpx.Client, database_url: str
) -> None:
    tenant = f"legacy-{uuid.uuid4().hex[:8]}"
    page = """query($after: String) {
      sessions(first: 1, after: $after) { nodes { sessionId } pageInfo { endCursor } }
    }"""
    try:
        asyncio.run(
            write_rows(
                database_url,
                "INSERT INTO sessions (session_id, tenant, session_type, created_at, updated_at) VALUES "
                "('forever', :t, 'AGENT', 'infinity', 'infinity'), ('recent', :t, 'AGENT', now(), now())",
                t=tenant,
            )
        )
        first = answered(http.post("/graphql", json={"query": page}, headers={"X-Tenant": tenant}))
        cursor = first["data"]["sessions"]["pageInfo"]["endCursor"]
        second = answered(
            http.post(
                "/graphql", json={"query": page, "variables": {"after": cursor}}, headers={"X-Tenant": tenant}
            )
        )
    finally:
        # Other tests list every tenant's sessions newest first, and 'infinity' has no time zone.
        asyncio.run(write_rows(database_url, "DELETE FROM sessions WHERE tenant = :t", t=tenant))

    assert [n["sessionId"] for n in first["data"]["sessions"]["nodes"]] == ["forever"]
    assert [n["sessionId"] for n in second["data"]["sessions"]["nodes"]] == ["recent"]


def test_a_newest_first_search_pages_past_a_message_stored_as_infinity(
    http: httpx.Client, database_url: str
) -> None:
    tenant = f"legacy-{uuid.uuid4().hex[:8]}"
    headers = {"X-Tenant": tenant}
    page = """query($after: String) {
      searchMessages(query: "tulip", orderBy: NEWEST, first: 1, after: $after) {
        edges { node { messageId } } pageInfo { endCursor }
      }
    }"""
    try:
        for sql in (
            "INSERT INTO sessions (session_id, tenant, session_type) VALUES ('old', :t, 'AGENT')",
            "INSERT INTO session_agents (session_id, tenant, agent_id, state, conversation_manager_state, "
            "internal_state) VALUES ('old', :t, 'a', '{}', '{}', '{}')",
            "INSERT INTO session_messages (session_id, tenant, agent_id, message_id, role, message, "
            "created_at, plain_text) VALUES "
            """('old', :t, 'a', 0, 'user', '{"role": "user", "content": []}', 'infinity', 'tulip'), """
            """('old', :t, 'a', 1, 'user', '{"role": "user", "content": []}', now(), 'tulip')""",
        ):
            asyncio.run(write_rows(database_url, sql, t=tenant))

        first = answered(http.post("/graphql", json={"query": page}, headers=headers))
        cursor = first["data"]["searchMessages"]["pageInfo"]["endCursor"]
        second = answered(
            http.post("/graphql", json={"query": page, "variables": {"after": cursor}}, headers=headers)
        )
    finally:
        # Other tests list every tenant's messages newest first.
        asyncio.run(write_rows(database_url, "DELETE FROM sessions WHERE tenant = :t", t=tenant))

    assert [e["node"]["messageId"] for e in first["data"]["searchMessages"]["edges"]] == [0]
    assert [e["node"]["messageId"] for e in second["data"]["searchMessages"]["edges"]] == [1]


# --- found in review: one value used many times, SQL in messages, a bad float in a large request ---


def amplifying(session_id: str, agent_id: str, uses: int, kind: str) -> str:
    refs = ",".join(["$x"] * uses)
    return (
        f'mutation($x: {kind}) {{ createMessage(sessionId: "{session_id}", agentId: "{agent_id}", '
        f'message: {{messageId: 1, message: {{role: "user", c: [{refs}]}}}}) {{ messageId }} }}'
    )


@pytest.mark.parametrize(
    ("uses", "kind", "value"),
    [(50, "String", "A" * 1_000_000), (200, "JSON", [0] * 200_000)],
    ids=["1 MB string 50 times", "200,000 numbers 200 times"],
)
def test_a_variable_used_many_times_inside_a_literal_is_refused_before_it_is_copied(
    graphql: GraphQLCall, new_id: NewId, server: RunningServer, uses: int, kind: str, value: Any
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    content = json.dumps({"query": amplifying(session_id, agent_id, uses, kind), "variables": {"x": value}})

    with another_client(server.url) as latencies:
        response, seconds = post_content(server.url, content.encode())

    error = refused(answered(response), "PAYLOAD_TOO_LARGE")
    assert "$x" in error["message"]
    assert seconds < QUICK
    assert max(latencies) < OTHER_CLIENT_WAIT
    assert stored_message_ids(graphql, session_id, agent_id) == []


def test_one_message_variable_appended_hundreds_of_times_is_refused(
    graphql: GraphQLCall, new_id: NewId, server: RunningServer
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    batch = ", ".join(f"{{messageId: {n}, message: $m}}" for n in range(300))
    document = (
        f'mutation($m: JSON!) {{ appendMessages(sessionId: "{session_id}", agentId: "{agent_id}", '
        f"messages: [{batch}]) {{ messageId }} }}"
    )
    message = {"role": "user", "content": [{"text": "x" * 1_000_000}]}

    response, _ = post_content(
        server.url, json.dumps({"query": document, "variables": {"m": message}}).encode()
    )

    refused(answered(response), "PAYLOAD_TOO_LARGE")
    assert stored_message_ids(graphql, session_id, agent_id) == []


def test_a_cursor_time_that_overflows_in_utc_is_refused_without_sql(http: httpx.Client) -> None:
    position = json.dumps(["9999-12-31T23:59:59-05:00", "x", "default"])
    cursor = base64.urlsafe_b64encode(f"session:{position}".encode()).decode().rstrip("=")
    query = "query($c: String) { sessions(after: $c) { nodes { sessionId } } }"

    body = answered(http.post("/graphql", json={"query": query, "variables": {"c": cursor}}))

    error = refused(body, "BAD_USER_INPUT")
    assert error["extensions"]["field"] == "after"
    assert "SELECT" not in json.dumps(body) and "sqlalchemy" not in json.dumps(body)


@pytest.mark.parametrize(
    "document",
    [
        'query { auditEvents(action: "a\\u0000b") { nodes { action } } }',
        'query { auditEvents(sessionId: "a\\u0000b") { nodes { action } } }',
        'mutation { revokeApiKey(label: "a\\u0000b") { label } }',
    ],
    ids=["audit action", "audit session id", "key label"],
)
def test_a_nul_in_an_admin_argument_is_bad_user_input_without_sql(http: httpx.Client, document: str) -> None:
    body = answered(http.post("/graphql", json={"query": document}))

    refused(body, "BAD_USER_INPUT")
    assert "SELECT" not in json.dumps(body) and "UPDATE" not in json.dumps(body)


def test_an_out_of_range_float_in_a_large_request_is_bad_user_input(
    graphql: GraphQLCall, new_id: NewId, server: RunningServer
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    document = (
        f'mutation($pad: String) {{ createMessage(sessionId: "{session_id}", agentId: "{agent_id}", '
        f'message: {{messageId: 0, message: {{role: "user", x: 1e400, p: $pad}}}}) {{ messageId }} }}'
    )
    content = json.dumps({"query": document, "variables": {"pad": "p" * 2_000_000}})

    response, _ = post_content(server.url, content.encode())

    refused(answered(response), "BAD_USER_INPUT")
    assert stored_message_ids(graphql, session_id, agent_id) == []


def test_a_failing_field_beside_an_alias_sharing_its_rows_leaves_that_alias_answered(
    http: httpx.Client, graphql: GraphQLCall, new_id: NewId
) -> None:
    """graphql-core cancels the fields beside one that fails; the DataLoader's shared future for the
    session was cancelled with them, for the other alias too, and the request ended in a bare 500."""
    session_id, agent_id = new_agent(graphql, new_id)
    document = (
        "query($s: String!, $a: String!) { "
        "a: agent(sessionId: $s, agentId: $a) { bad: messages(offset: -1) { messageId } "
        "session { sessionId } } "
        "b: agent(sessionId: $s, agentId: $a) { session { sessionId } } }"
    )

    for _ in range(10):
        response = http.post(
            "/graphql", json={"query": document, "variables": {"s": session_id, "a": agent_id}}
        )
        body = answered(response)
        assert body["data"] == {"a": None, "b": {"session": {"sessionId": session_id}}}
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
