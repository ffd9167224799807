"""What one answer may hold and what one request may hold up: the answer's byte budget
(``RESPONSE_TOO_LARGE``), values in JSON inputs (``JSON_TOO_LARGE``), statistics keys and buckets,
nested lists at their bound, and a caller's heavy requests at once (``RATE_LIMITED``).

Budgets small enough to reach with a few kilobytes run on private servers; the numbers of the
issue's reproductions (gigabytes) are in tests/test_hostile_reads.py, against a server process.
"""

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from db.conversations.reads import _windows_statement, key_values
from db.engine import Database, create_engine
from graphql_api.auth.rate_limits import HeavyRequests
from graphql_api.errors import ErrorCode, LimitError
from graphql_api.settings import Limits
from tests.api_calls import (
    GraphQLCall,
    NewId,
    append_messages,
    create_agent,
    create_session,
    data_of,
    message_input,
    new_agent,
    user_message,
)
from tests.conftest import RunningServer
from tests.test_limits import limited_server, post, refused

BUDGET = 64 * 1024
KILOBYTE_TEXT = "x" * 1000


@pytest.fixture(scope="module")
def small_answers(database_url: str) -> Iterator[RunningServer]:
    with limited_server(database_url, max_response_bytes=BUDGET, rate_per_second=0) as running:
        yield running


def agent_with_messages(graphql: GraphQLCall, new_id: NewId, count: int, text: str) -> tuple[str, str]:
    session_id, agent_id = new_agent(graphql, new_id)
    messages = [{"messageId": n, "message": user_message(f"{n} {text}")} for n in range(count)]
    for start in range(0, count, 500):
        append_messages(graphql, session_id, agent_id, messages[start : start + 500])
    return session_id, agent_id


def aliases(count: int, field: str) -> str:
    return "query($s: String!, $a: String!) { " + " ".join(f"x{i}: {field}" for i in range(count)) + " }"


def count_reads(server: RunningServer, table: str) -> Any:
    """Rows PostgreSQL sent for statements reading ``table``, while the block runs (a list)."""
    fetched: list[int] = []

    def rows_fetched(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if table in statement and statement.lstrip().upper().startswith("SELECT"):
            fetched.append(cursor.rowcount)

    class Counting:
        def __enter__(self) -> list[int]:
            event.listen(server.database.engine.sync_engine, "after_cursor_execute", rows_fetched)
            return fetched

        def __exit__(self, *exc: object) -> None:
            event.remove(server.database.engine.sync_engine, "after_cursor_execute", rows_fetched)

    return Counting()


# --- the answer's bytes ---


def test_an_answer_within_the_budget_is_served_whole(
    graphql: GraphQLCall, new_id: NewId, small_answers: RunningServer
) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, 40, KILOBYTE_TEXT)  # about 42 KB

    body = post(
        small_answers,
        aliases(1, "agent(sessionId: $s, agentId: $a) { messages { message } }"),
        {"s": session_id, "a": agent_id},
    )

    assert len(data_of(body)["x0"]["messages"]) == 40


def test_aliases_of_one_shared_row_are_each_charged_and_the_answer_refused_whole(
    graphql: GraphQLCall, new_id: NewId, small_answers: RunningServer
) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, 1, "y" * 20_000)
    field = "message(sessionId: $s, agentId: $a, messageId: 0) { message }"

    served = post(small_answers, aliases(3, field), {"s": session_id, "a": agent_id})  # 3 x 20 KB
    body = post(small_answers, aliases(4, field), {"s": session_id, "a": agent_id})  # 4 x 20 KB

    assert len(data_of(served)) == 3
    error = refused(body, "RESPONSE_TOO_LARGE")
    assert body["data"] is None and len(body["errors"]) == 1
    assert f"over {BUDGET} bytes" in error["message"]
    assert "SESSION_GRAPHQL_MAX_RESPONSE_BYTES" in error["message"]


async def test_documents_that_would_not_fit_are_not_sent_by_the_database(
    graphql: GraphQLCall, new_id: NewId, small_answers: RunningServer, database_url: str
) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, 500, KILOBYTE_TEXT)  # 500 KB stored
    query = aliases(1, "agent(sessionId: $s, agentId: $a) { messages { messageId message } }")

    refused(post(small_answers, query, {"s": session_id, "a": agent_id}), "RESPONSE_TOO_LARGE")

    # The statement the restore runs, within 64 KB: the rows past it come without their documents.
    database = Database(create_engine(database_url))
    try:
        window = ("default", session_id, agent_id, 0, 500, True)
        rows = await database.run(
            lambda conn: conn.execute(
                _windows_statement(True, True, False),
                {
                    **key_values([window], "tenant", "session_id", "agent_id", "off", "lim"),
                    "most_bytes": BUDGET,
                },
            )
        )
        found = list(rows)
    finally:
        await database.dispose()
    sent = [row for row in found if row.message is not None]
    assert len(found) == 500
    assert 55 < len(sent) < 70, len(sent)  # 64 KB of ~1 KB messages
    assert found[-1][-1] > BUDGET  # and the running sum says the rest would not fit


@pytest.mark.parametrize(
    "field",
    [
        "messagesConnection(first: 500) { nodes { message } }",
        "lastMessage { message }",
        "messages(limit: 500) { effectiveMessage }",
    ],
)
def test_every_way_to_read_messages_is_bounded(
    graphql: GraphQLCall, new_id: NewId, small_answers: RunningServer, field: str
) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, 100, "z" * 5_000)
    wide = aliases(20, f"agent(sessionId: $s, agentId: $a) {{ {field} }}")

    refused(post(small_answers, wide, {"s": session_id, "a": agent_id}), "RESPONSE_TOO_LARGE")


def test_listings_and_search_stop_at_the_budget(
    graphql: GraphQLCall, new_id: NewId, small_answers: RunningServer
) -> None:
    word = f"budgetword{uuid.uuid4().hex[:8]}"
    session_id, _ = agent_with_messages(graphql, new_id, 120, f"{word} {KILOBYTE_TEXT}")
    listing = "query($s: String!) { messages(first: 200, filter: {sessionId: $s}) { nodes { message } } }"
    search = (
        "query($q: String!) { searchMessages(query: $q, first: 200, orderBy: NEWEST) "
        "{ edges { node { message } } } }"
    )

    refused(post(small_answers, listing, {"s": session_id}), "RESPONSE_TOO_LARGE")
    refused(post(small_answers, search, {"q": word}), "RESPONSE_TOO_LARGE")
    assert (
        len(
            data_of(post(small_answers, listing.replace("200", "20"), {"s": session_id}))["messages"]["nodes"]
        )
        == 20
    )


def test_agent_states_count_toward_the_budget(
    graphql: GraphQLCall, new_id: NewId, small_answers: RunningServer
) -> None:
    session_id = new_id("session")
    create_session(graphql, session_id)
    for i in range(5):
        create_agent(graphql, session_id, f"agent-{i}", state={"notes": "s" * 20_000})

    body = post(
        small_answers, "query($s: String!) { session(sessionId: $s) { agents { state } } }", {"s": session_id}
    )

    refused(body, "RESPONSE_TOO_LARGE")


def test_storage_object_aliases_read_one_at_a_time_and_stop_at_the_budget(
    graphql: GraphQLCall, new_id: NewId, small_answers: RunningServer
) -> None:
    key = f"other/{new_id('blob')}.bin"
    data = bytes(range(256)) * 80  # 20 KB, 27 KB in base64
    write = "mutation($k: String!, $d: Base64!) { writeStorageObject(key: $k, data: $d) { size } }"
    data_of(graphql(write, {"k": key, "d": base64.b64encode(data).decode()}))
    read = "query($k: String!) { " + " ".join(f"x{i}: storageObject(key: $k)" for i in range(20)) + " }"

    with count_reads(small_answers, "storage_objects") as fetched:
        body = post(small_answers, read, {"k": key})
    once = post(small_answers, "query($k: String!) { storageObject(key: $k) }", {"k": key})

    refused(body, "RESPONSE_TOO_LARGE")
    # Two fit in 64 KB; the third is found too large by its size, without its bytes; then nothing.
    assert fetched.count(1) <= 3, fetched
    assert base64.b64decode(data_of(once)["storageObject"]) == data


def test_a_mutation_whose_answer_is_too_large_says_what_was_stored(
    graphql: GraphQLCall, new_id: NewId, small_answers: RunningServer
) -> None:
    session_id, _ = agent_with_messages(graphql, new_id, 100, KILOBYTE_TEXT)
    first, second = new_id("fork"), new_id("fork")
    answer = "{ agents { messages(limit: 100) { message } } }"
    document = (
        f'mutation($s: String!) {{ a: forkSession(sourceSessionId: $s, newSessionId: "{first}") {answer} '
        f'b: forkSession(sourceSessionId: $s, newSessionId: "{second}") {answer} }}'
    )

    body = post(small_answers, document, {"s": session_id})

    error = refused(body, "RESPONSE_TOO_LARGE")
    assert "later ones did not run" in error["message"]
    found = data_of(
        graphql(
            "query($a: String!, $b: String!) { a: session(sessionId: $a) { sessionId } "
            "b: session(sessionId: $b) { sessionId } }",
            {"a": first, "b": second},
        )
    )
    assert found == {"a": {"sessionId": first}, "b": None}


def test_the_default_budget_serves_a_restore_of_ten_thousand_messages_of_a_kilobyte(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, 10_000, KILOBYTE_TEXT)
    query = (
        "query($s: String!, $a: String!) { agent(sessionId: $s, agentId: $a) { "
        "messages(limit: 10000) { messageId message redactMessage createdAt updatedAt } } }"
    )

    messages = data_of(graphql(query, {"s": session_id, "a": agent_id}))["agent"]["messages"]

    assert [m["messageId"] for m in messages] == list(range(10_000))


def test_search_pages_count_once_per_alias_before_they_run(graphql: GraphQLCall) -> None:
    page = 'searchMessages(query: "message", first: 1000) { edges { node { messageId } } }'
    document = "{ " + " ".join(f"s{i}: {page}" for i in range(50)) + " }"

    error = refused(graphql(document), "QUERY_TOO_COSTLY")

    assert f"about {50 * (1 + 1000 * 2)} rows" in error["message"]


# --- JSON inputs ---


@pytest.fixture(scope="module")
def few_values(database_url: str) -> Iterator[RunningServer]:
    limits = {"max_json_nodes": 1000, "max_content_blocks": 10, "rate_per_second": 0}
    with limited_server(database_url, **limits) as running:
        yield running


def test_variables_holding_more_values_than_allowed_are_json_too_large(
    graphql: GraphQLCall, new_id: NewId, few_values: RunningServer
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    update = (
        "mutation($s: String!, $agent: AgentInput!) { updateAgent(sessionId: $s, agent: $agent) { state } }"
    )

    def state(values: int) -> dict[str, Any]:
        return {"agentId": agent_id, "state": {"x": [0] * values}, "conversationManagerState": {}}

    # The agent input, its state, x and the conversation manager state take 6 of the 1000.
    served = post(few_values, update, {"s": session_id, "agent": state(994)})
    body = post(few_values, update, {"s": session_id, "agent": state(995)})

    assert len(data_of(served)["updateAgent"]["state"]["x"]) == 994
    error = refused(body, "JSON_TOO_LARGE", "agent")
    assert "more than 1000 JSON values" in error["message"]


def test_the_values_of_all_variables_count_together(
    graphql: GraphQLCall, new_id: NewId, few_values: RunningServer
) -> None:
    document = (
        "query($a: JSON, $b: JSON) { a: sessions(filter: {labels: $a}) { nodes { sessionId } } "
        "b: sessions(filter: {labels: $b}) { nodes { sessionId } } }"
    )

    body = post(few_values, document, {"a": [0] * 600, "b": [0] * 600})

    refused(body, "JSON_TOO_LARGE", "b")


def test_a_message_with_more_content_blocks_than_allowed_is_json_too_large(
    graphql: GraphQLCall, new_id: NewId, few_values: RunningServer
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    create = (
        "mutation($s: String!, $a: String!, $m: MessageInput!) "
        "{ createMessage(sessionId: $s, agentId: $a, message: $m) { messageId } }"
    )

    def message(blocks: int) -> dict[str, Any]:
        return {"messageId": 0, "message": {"role": "user", "content": [{"text": "a"}] * blocks}}

    body = post(few_values, create, {"s": session_id, "a": agent_id, "m": message(11)})
    served = post(few_values, create, {"s": session_id, "a": agent_id, "m": message(10)})

    error = refused(body, "JSON_TOO_LARGE", "message.message.content")
    assert "at most 10 content blocks" in error["message"]
    assert data_of(served) == {"createMessage": {"messageId": 0}}


def test_five_million_zeros_are_refused_in_a_fraction_of_a_second(http: httpx.Client, new_id: NewId) -> None:
    update = (
        "mutation($s: String!, $agent: AgentInput!) { updateAgent(sessionId: $s, agent: $agent) { agentId } }"
    )
    agent = {"agentId": "a", "state": {"x": [0] * 5_000_000}, "conversationManagerState": {}}

    started = time.monotonic()
    response = http.post("/graphql", json={"query": update, "variables": {"s": new_id("s"), "agent": agent}})
    seconds = time.monotonic() - started

    refused(response.json(), "JSON_TOO_LARGE", "agent")
    assert seconds < 3.0, seconds  # the JSON is decoded and counted; before, it was walked and stored


# --- statistics ---


def stats_document(count: int, bucket: str, days: float, group_by: str) -> str:
    end = datetime(2026, 6, 1, tzinfo=UTC)
    start = end - timedelta(days=days)
    one = (
        f'conversationStats(bucket: {bucket}, from: "{start.isoformat()}", to: "{end.isoformat()}", '
        f"groupBy: {group_by}) {{ rows {{ bucketStart key messages }} }}"
    )
    return "{ " + " ".join(f"s{i}: {one}" for i in range(count)) + " }"


def test_statistics_are_estimated_as_buckets_times_the_most_keys_before_they_run(
    graphql: GraphQLCall,
) -> None:
    # 2 days of minutes grouped by session: 2,880 buckets x 50 keys, over the 100,000 rows; their
    # totals alone are 51 rows.
    body = graphql(stats_document(1, "MINUTE", 2, "SESSION"))
    totals = graphql(stats_document(1, "MINUTE", 2, "SESSION").replace("rows {", "keyTotals {"))

    error = refused(body, "QUERY_TOO_COSTLY")
    keys = Limits().max_stats_keys
    assert f"about {2880 * keys + keys + 1} rows" in error["message"]
    assert "errors" not in totals


def test_statistics_buckets_are_counted_across_aliases(graphql: GraphQLCall) -> None:
    served = graphql(stats_document(1, "HOUR", 200, "NONE"))  # 4,800 buckets
    body = graphql(stats_document(2, "HOUR", 150, "NONE"))  # 3,600 each, 7,200 in all

    assert "errors" not in served
    error = refused(body, "QUERY_TOO_COSTLY")
    assert "7200 statistics buckets" in error["message"]


@pytest.fixture(scope="module")
def few_keys(database_url: str) -> Iterator[RunningServer]:
    with limited_server(database_url, max_stats_keys=3, rate_per_second=0) as running:
        yield running


def test_a_grouping_with_more_keys_than_a_chart_may_have_is_refused(
    graphql: GraphQLCall, new_id: NewId, few_keys: RunningServer
) -> None:
    label = new_id("team")
    for i in range(4):
        session_id = new_id("session")
        create_session(graphql, session_id, labels={"team": label})
        create_agent(graphql, session_id, f"agent-{i}")
        append_messages(graphql, session_id, f"agent-{i}", [message_input(0)])
    document = (
        "query($l: JSON!) { conversationStats(groupBy: AGENT, bucket: DAY, filter: {labels: $l}) "
        "{ keyTotals { key messages } } }"
    )

    body = post(few_keys, document, {"l": {"team": label}})

    error = refused(body, "QUERY_TOO_COSTLY")
    assert "4 keys, over the 3" in error["message"]


# --- nested lists ---


def test_an_agents_checkpoints_and_a_sessions_multi_agents_page_with_offset_and_limit(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    create_session(graphql, session_id)
    create_multi = (
        "mutation($s: String!, $m: MultiAgentInput!) { createMultiAgent(sessionId: $s, multiAgent: $m) "
        "{ multiAgentId } }"
    )
    for i in range(3):
        data_of(graphql(create_multi, {"s": session_id, "m": {"multiAgentId": f"graph-{i}", "state": {}}}))
    paged = (
        "query($s: String!) { session(sessionId: $s) { multiAgents(offset: 1, limit: 1) { multiAgentId } "
        "agents(limit: 0) { agentId } } }"
    )

    session = data_of(graphql(paged, {"s": session_id}))["session"]

    assert session == {"multiAgents": [{"multiAgentId": "graph-1"}], "agents": []}
    negative = "query($s: String!) { session(sessionId: $s) { agents(offset: -1) { agentId } } }"
    refused(graphql(negative, {"s": session_id}), "BAD_USER_INPUT", "offset")


# --- heavy requests at once ---


async def test_a_callers_heavy_requests_past_its_slots_wait_then_are_rate_limited() -> None:
    heavy = HeavyRequests(most=2, wait_seconds=0.2)
    release = asyncio.Event()
    entered: list[str] = []

    async def hold(name: str) -> None:
        async with heavy.slot("key:dashboard"):
            entered.append(name)
            await release.wait()

    holders = [asyncio.create_task(hold("a")), asyncio.create_task(hold("b"))]
    await asyncio.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(LimitError) as refusal:
        async with heavy.slot("key:dashboard"):
            pass
    waited = time.monotonic() - started
    async with heavy.slot("key:other"):  # another caller has slots of its own
        entered.append("other")
    waiting = asyncio.create_task(hold("c"))
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(*holders, waiting)

    assert refusal.value.code is ErrorCode.RATE_LIMITED
    assert refusal.value.extensions == {"retryAfter": 1.0}
    assert 0.15 < waited < 1.0
    assert entered == ["a", "b", "other", "c"]


@pytest.fixture(scope="module")
def one_heavy_at_once(database_url: str) -> Iterator[RunningServer]:
    limits = {"max_heavy_requests": 1, "heavy_wait_seconds": 0.0, "rate_per_second": 0}
    with limited_server(database_url, **limits) as running:
        yield running


def test_heavy_requests_over_the_callers_slots_are_http_429_with_retry_after(
    one_heavy_at_once: RunningServer,
) -> None:
    search = {"query": '{ searchMessages(query: "message", first: 100) { edges { node { messageId } } } }'}
    statuses: list[httpx.Response] = []
    lock = threading.Lock()

    def ask() -> None:
        with httpx.Client(timeout=30) as client:
            response = client.post(one_heavy_at_once.url, json=search)
        with lock:
            statuses.append(response)

    for _ in range(5):  # at once, one of them must find the slot taken
        threads = [threading.Thread(target=ask) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if any(response.status_code == 429 for response in statuses):
            break

    limited = [response for response in statuses if response.status_code == 429]
    assert limited, [response.status_code for response in statuses]
    assert limited[0].headers["Retry-After"] == "1"
    refused(limited[0].json(), "RATE_LIMITED")
    assert all(response.status_code in (200, 429) for response in statuses)
    assert any("errors" not in response.json() for response in statuses)


def test_light_requests_are_not_held_by_heavy_ones(one_heavy_at_once: RunningServer) -> None:
    answers = [post(one_heavy_at_once, "{ __typename }") for _ in range(3)]

    assert answers == [{"data": {"__typename": "Query"}}] * 3


def test_limits_read_from_the_environment() -> None:
    limits = Limits.from_env(
        {
            "SESSION_GRAPHQL_MAX_RESPONSE_BYTES": "1048576",
            "SESSION_GRAPHQL_MAX_JSON_NODES": "5000",
            "SESSION_GRAPHQL_MAX_CONTENT_BLOCKS": "50",
            "SESSION_GRAPHQL_ASSUMED_NESTED_LIST": "7",
            "SESSION_GRAPHQL_MAX_STATS_KEYS": "9",
            "SESSION_GRAPHQL_MAX_STATS_BUCKETS": "400",
            "SESSION_GRAPHQL_MAX_HEAVY_REQUESTS": "2",
            "SESSION_GRAPHQL_HEAVY_WAIT_SECONDS": "0.5",
        }
    )

    assert limits == replace(
        Limits(),
        max_response_bytes=1048576,
        max_json_nodes=5000,
        max_content_blocks=50,
        assumed_nested_list=7,
        max_stats_keys=9,
        max_stats_buckets=400,
        max_heavy_requests=2,
        heavy_wait_seconds=0.5,
    )


def test_a_page_asking_nothing_of_the_stored_documents_does_not_read_them(
    graphql: GraphQLCall, new_id: NewId, small_answers: RunningServer
) -> None:
    """Ids and times of 100 messages of 5 KB fit in a 64 KB answer: the 500 KB of JSON is never read."""
    session_id, agent_id = agent_with_messages(graphql, new_id, 100, "w" * 5_000)
    variables = {"s": session_id, "a": agent_id}
    light = [
        "messages { messageId role createdAt }",
        "messagesConnection(first: 100) { nodes { messageId } pageInfo { hasNextPage } }",
        "lastMessage { messageId agent { agentId } }",
    ]

    for field in light:
        body = post(small_answers, aliases(1, f"agent(sessionId: $s, agentId: $a) {{ {field} }}"), variables)
        assert "errors" not in body, (field, body)
    listing = "query($s: String!) { messages(first: 100, filter: {sessionId: $s}) { nodes { messageId } } }"
    assert len(data_of(post(small_answers, listing, {"s": session_id}))["messages"]["nodes"]) == 100
    heavy = aliases(1, "agent(sessionId: $s, agentId: $a) { messages { messageId text } }")
    refused(post(small_answers, heavy, variables), "RESPONSE_TOO_LARGE")


def test_a_message_read_without_its_document_is_not_served_where_the_document_is_asked(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    """One request reads the page without documents, then looks one of its messages up whole."""
    session_id, agent_id = agent_with_messages(graphql, new_id, 3, "v")
    document = (
        "query($s: String!, $a: String!) { agent(sessionId: $s, agentId: $a) { messages { messageId } } "
        "message(sessionId: $s, agentId: $a, messageId: 1) { message text } }"
    )

    data = data_of(graphql(document, {"s": session_id, "a": agent_id}))

    assert data["message"] == {"message": user_message("1 v"), "text": "1 v"}
