"""The root ``sessions``, ``agents`` and ``messages`` connections, and ``Agent.messagesConnection``:
every filter, every order, keyset pages both ways, cursors, page sizes and counts.

One module-wide conversation set of seven sessions, eight agents and fifteen messages (``SESSIONS``
below), confined by its own ``sessionIdPrefix``; tests that write make sets of their own.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.api_calls import (
    GraphQLCall,
    NewId,
    agent_input,
    append_messages,
    assert_error,
    create_agent,
    create_session,
    data_of,
)
from tests.conftest import RunningServer
from tests.strands_messages import ask, assistant, at, tool_results, user

PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
ARGUMENTS = "filter: $f, orderBy: $o, first: $first, after: $after, last: $last, before: $before"
VARIABLES = "$f: ConversationFilter, $first: Int, $after: String, $last: Int, $before: String"
SESSIONS = f"""
query({VARIABLES}, $o: ListOrder) {{
  sessions({ARGUMENTS}) {{ edges {{ cursor node {{ sessionId }} }} {PAGE_INFO} totalCount }}
}}
"""
AGENTS = f"""
query({VARIABLES}, $o: ListOrder) {{
  agents({ARGUMENTS}) {{ edges {{ cursor node {{ sessionId agentId }} }} {PAGE_INFO} totalCount }}
}}
"""
MESSAGES = f"""
query({VARIABLES}, $o: MessageOrder) {{
  messages({ARGUMENTS}) {{ edges {{ cursor node {{ sessionId agentId messageId }} }} {PAGE_INFO} totalCount }}
}}
"""
TOUCH_AGENT = """
mutation($sessionId: String!, $agent: AgentInput!) {
  updateAgent(sessionId: $sessionId, agent: $agent) { lastActivityAt }
}
"""
CONVERSATION = f"""
query($s: String!, $a: String!, {VARIABLES}) {{
  agent(sessionId: $s, agentId: $a) {{
    lastMessage {{ messageId }}
    messagesConnection(filter: $f, first: $first, after: $after, last: $last, before: $before) {{
      edges {{ cursor node {{ messageId role }} }} {PAGE_INFO} totalCount
    }}
  }}
}}
"""


@dataclass(frozen=True)
class Stored:
    """A session of the module's set: its day of March 2021, labels, and each agent's messages."""

    name: str
    day: int
    labels: dict[str, str]
    agents: dict[str, list[dict[str, Any]]]


def ai(tokens: int, **more: Any) -> dict[str, Any]:
    return assistant("an answer", usage=(tokens - 5, 5, tokens), **more)


STORED = [
    Stored(
        "c",
        1,
        {"user": "ana", "channel": "web"},
        {"support": [user("q"), ai(15, tools=[("c-1", "lookup", {})]), tool_results(("c-1", "success"))]},
    ),
    Stored("a", 2, {"user": "bo", "channel": "web"}, {"support": [user("q")]}),
    Stored(
        "f",
        3,
        {"user": "ana", "channel": "phone"},
        {
            "support": [user("q"), ai(40)],
            "billing": [user("q"), ai(15, tools=[("f-1", "refund", {})]), tool_results(("f-1", "error"))],
        },
    ),
    Stored("b", 4, {"user": "bo"}, {"support": [user("q"), ai(15)]}),
    Stored("g", 5, {}, {"support": []}),
    Stored("d", 6, {"user": "ana"}, {"support": [user("q"), ai(25), user("q")]}),
    Stored("e", 7, {"user": "cy", "channel": "web"}, {"billing": [user("q")]}),
]
"""Message counts c3 a1 f5 b2 g0 d3 e1; tokens c15 a0 f55 b15 g0 d25 e0; d's message 1 is redacted."""
TOUCHED = [("b", "support"), ("e", "billing"), ("f", "billing"), ("c", "support")]
TOUCHED += [("g", "support"), ("a", "support"), ("f", "support"), ("d", "support")]
"""The order agents are written in last, which orders their (and their sessions') last activity."""


def day(number: int, hours: int = 0, minutes: int = 0) -> datetime:
    return datetime(2021, 3, number, hours, minutes, tzinfo=UTC)


def ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


@dataclass(frozen=True)
class Conversations:
    prefix: str
    touched_at: dict[tuple[str, str], str]
    """When each agent (and its session) was written last, as the server said."""

    def session_id(self, name: str) -> str:
        return f"{self.prefix}-{name}"


@pytest.fixture(scope="module")
def stored(graphql: GraphQLCall) -> Conversations:
    prefix = f"listing-{uuid.uuid4().hex[:12]}"
    for session in STORED:
        session_id = f"{prefix}-{session.name}"
        created = day(session.day).isoformat()
        create_session(graphql, session_id, labels=session.labels, createdAt=created, updatedAt=created)
        for hour, (agent_id, messages) in enumerate(session.agents.items(), start=1):
            create_agent(graphql, session_id, agent_id, createdAt=day(session.day, hour).isoformat())
            inputs = [at(i, m, day(session.day, hour, i).isoformat()) for i, m in enumerate(messages)]
            if session.name == "d":
                inputs[1]["redactMessage"] = {"role": "assistant", "content": [{"text": "[redacted]"}]}
            if inputs:
                append_messages(graphql, session_id, agent_id, inputs)
    touched_at = {}
    for name, agent_id in TOUCHED:
        variables = {"sessionId": f"{prefix}-{name}", "agent": agent_input(agent_id, state={"seen": True})}
        touched_at[(name, agent_id)] = data_of(graphql(TOUCH_AGENT, variables))["updateAgent"][
            "lastActivityAt"
        ]
    return Conversations(prefix, touched_at)


def listing(graphql: GraphQLCall, document: str, root: str, prefix: str, **variables: Any) -> dict[str, Any]:
    f = {"sessionIdPrefix": prefix, **variables.pop("f", {})}
    connection: dict[str, Any] = ask(graphql, document, f=f, **variables)[root]
    return connection


def names(connection: dict[str, Any], prefix: str) -> list[str]:
    """Sessions by name (c), agents as name.agent (f.billing), messages as name, agent's initial and
    message id (f.b2: message 2 of f's billing agent)."""
    found = []
    for edge in connection["edges"]:
        node = edge["node"]
        name = node["sessionId"].removeprefix(f"{prefix}-")
        if "messageId" in node:
            name += f".{node['agentId'][0]}{node['messageId']}"
        elif "agentId" in node:
            name += f".{node['agentId']}"
        found.append(name)
    return found


# --- filters ---


def filter_names(cases: list[tuple[dict[str, Any], list[str]]]) -> list[str]:
    return ["+".join(given) or "none" for given, _ in cases]


SESSION_FILTERS: list[tuple[dict[str, Any], list[str]]] = [
    ({}, ["e", "d", "g", "b", "f", "a", "c"]),
    ({"sessionType": "AGENT"}, ["e", "d", "g", "b", "f", "a", "c"]),
    ({"labels": {"user": "ana"}}, ["d", "f", "c"]),
    ({"labels": {"user": "ana", "channel": "web"}}, ["c"]),
    ({"labels": {"channel": "web"}}, ["e", "a", "c"]),
    ({"labels": {}}, ["e", "d", "g", "b", "f", "a", "c"]),
    ({"agentId": "billing"}, ["e", "f"]),
    ({"role": "assistant"}, ["d", "b", "f", "c"]),
    ({"contentType": "TOOL_USE"}, ["f", "c"]),
    ({"contentType": "TOOL_RESULT"}, ["f", "c"]),
    ({"contentType": "TEXT"}, ["e", "d", "b", "f", "a", "c"]),
    ({"contentType": "IMAGE"}, []),
    ({"toolName": "refund"}, ["f"]),
    ({"toolName": "lookup"}, ["c"]),
    ({"toolStatus": "ERROR"}, ["f"]),
    ({"toolStatus": "SUCCESS"}, ["c"]),
    ({"redacted": True}, ["d"]),
    ({"redacted": False}, ["e", "d", "b", "f", "a", "c"]),
    ({"agentId": "billing", "toolName": "refund"}, ["f"]),
    ({"agentId": "support", "toolName": "refund"}, []),  # f calls refund, but from its billing agent
    ({"labels": {"user": "ana"}, "role": "assistant", "redacted": False}, ["f", "c"]),
    ({"created": {"start": ms(day(3)), "end": str(ms(day(6)))}}, ["g", "b", "f"]),
    ({"created": {"start": day(6).isoformat()}}, ["e", "d"]),
    ({"created": {"end": "2021-03-02T00:00:00.000001+00:00"}}, ["a", "c"]),
]


@pytest.mark.parametrize(("given", "expected"), SESSION_FILTERS, ids=filter_names(SESSION_FILTERS))
def test_sessions_filter(
    graphql: GraphQLCall, stored: Conversations, given: dict[str, Any], expected: list[str]
) -> None:
    found = listing(graphql, SESSIONS, "sessions", stored.prefix, f=given)

    assert names(found, stored.prefix) == expected
    assert found["totalCount"] == len(expected)


def test_sessions_filter_by_session_id_and_id_prefix(graphql: GraphQLCall, stored: Conversations) -> None:
    by_id = ask(graphql, SESSIONS, f={"sessionId": stored.session_id("f")})["sessions"]
    by_prefix = ask(graphql, SESSIONS, f={"sessionIdPrefix": stored.session_id("")})["sessions"]
    by_longer_prefix = ask(graphql, SESSIONS, f={"sessionIdPrefix": stored.session_id("f")})["sessions"]
    by_other_prefix = ask(graphql, SESSIONS, f={"sessionIdPrefix": stored.prefix + "%"})["sessions"]

    assert (names(by_id, stored.prefix), by_id["totalCount"]) == (["f"], 1)
    assert by_prefix["totalCount"] == 7
    assert names(by_longer_prefix, stored.prefix) == ["f"]
    assert by_other_prefix["totalCount"] == 0  # a prefix, not a LIKE pattern


def test_sessions_filter_by_activity_and_update_times(graphql: GraphQLCall, stored: Conversations) -> None:
    """Last touched: b, e, (f.billing), c, g, a, f, d; the range's end is left out."""
    touched = stored.touched_at
    active = {"start": touched[("c", "support")], "end": touched[("f", "support")]}
    updated = {"start": touched[("a", "support")]}

    by_activity = listing(graphql, SESSIONS, "sessions", stored.prefix, f={"lastActivity": active})
    by_update = listing(graphql, SESSIONS, "sessions", stored.prefix, f={"updated": updated})

    assert names(by_activity, stored.prefix) == ["g", "a", "c"]  # newest created first
    assert names(by_update, stored.prefix) == ["d", "f", "a"]


AGENT_FILTERS: list[tuple[dict[str, Any], list[str]]] = [
    (
        {},
        [
            "e.billing",
            "d.support",
            "g.support",
            "b.support",
            "f.billing",
            "f.support",
            "a.support",
            "c.support",
        ],
    ),
    ({"agentId": "billing"}, ["e.billing", "f.billing"]),
    ({"toolName": "refund"}, ["f.billing"]),
    ({"labels": {"user": "ana"}}, ["d.support", "f.billing", "f.support", "c.support"]),
    ({"role": "assistant"}, ["d.support", "b.support", "f.billing", "f.support", "c.support"]),
    ({"toolStatus": "ERROR", "labels": {"channel": "phone"}}, ["f.billing"]),
    (
        {"created": {"start": day(3, 2).isoformat(), "end": ms(day(5, 1, 1))}},
        ["g.support", "b.support", "f.billing"],
    ),
]


@pytest.mark.parametrize(("given", "expected"), AGENT_FILTERS, ids=filter_names(AGENT_FILTERS))
def test_agents_filter(
    graphql: GraphQLCall, stored: Conversations, given: dict[str, Any], expected: list[str]
) -> None:
    found = listing(graphql, AGENTS, "agents", stored.prefix, f=given)

    assert names(found, stored.prefix) == expected
    assert found["totalCount"] == len(expected)


MESSAGE_FILTERS: list[tuple[dict[str, Any], list[str]]] = [
    ({"role": "assistant"}, ["d.s1", "b.s1", "f.b1", "f.s1", "c.s1"]),
    ({"contentType": "TOOL_RESULT"}, ["f.b2", "c.s2"]),
    ({"toolStatus": "ERROR"}, ["f.b2"]),
    ({"toolName": "lookup"}, ["c.s1"]),
    ({"redacted": True}, ["d.s1"]),
    ({"labels": {"user": "bo"}}, ["b.s1", "b.s0", "a.s0"]),
    ({"agentId": "billing"}, ["e.b0", "f.b2", "f.b1", "f.b0"]),
    ({"agentId": "billing", "role": "user", "labels": {"channel": "phone"}}, ["f.b2", "f.b0"]),
    (
        {"created": {"start": day(3, 1, 1).isoformat(), "end": day(3, 2, 2).isoformat()}},
        ["f.b1", "f.b0", "f.s1"],
    ),
    ({"lastActivity": {"start": "2999-01-01T00:00:00Z"}}, []),
]


@pytest.mark.parametrize(("given", "expected"), MESSAGE_FILTERS, ids=filter_names(MESSAGE_FILTERS))
def test_messages_filter(
    graphql: GraphQLCall, stored: Conversations, given: dict[str, Any], expected: list[str]
) -> None:
    found = listing(graphql, MESSAGES, "messages", stored.prefix, f=given)

    assert names(found, stored.prefix) == expected
    assert found["totalCount"] == len(expected)


# --- orders, and keyset pages through them ---

SESSION_ORDERS = {
    "CREATED_AT": ["c", "a", "f", "b", "g", "d", "e"],
    "LAST_ACTIVITY_AT": ["b", "e", "c", "g", "a", "f", "d"],
    "MESSAGE_COUNT": ["g", "a", "e", "b", "c", "d", "f"],  # 0 1 1 2 3 3 5: ties by id
    "TOTAL_TOKENS": ["a", "e", "g", "b", "c", "d", "f"],  # 0 0 0 15 15 25 55
}
AGENT_ORDERS = {
    "CREATED_AT": [
        "c.support",
        "a.support",
        "f.support",
        "f.billing",
        "b.support",
        "g.support",
        "d.support",
        "e.billing",
    ],
    "LAST_ACTIVITY_AT": [f"{name}.{agent_id}" for name, agent_id in TOUCHED],
    # 0 1 1 2 2 3 3 3, ties by session id, then agent id
    "MESSAGE_COUNT": [
        "g.support",
        "a.support",
        "e.billing",
        "b.support",
        "f.support",
        "c.support",
        "d.support",
        "f.billing",
    ],
    # 0 0 0 15 15 15 25 40
    "TOTAL_TOKENS": [
        "a.support",
        "e.billing",
        "g.support",
        "b.support",
        "c.support",
        "f.billing",
        "d.support",
        "f.support",
    ],
}
MESSAGE_ORDERS = {
    "CREATED_AT": [
        *("c.s0", "c.s1", "c.s2", "a.s0", "f.s0", "f.s1", "f.b0", "f.b1"),
        *("f.b2", "b.s0", "b.s1", "d.s0", "d.s1", "d.s2", "e.b0"),
    ],
    # ten without tokens, by session, agent and message id; then 15 15 15 25 40
    "TOTAL_TOKENS": [
        *("a.s0", "b.s0", "c.s0", "c.s2", "d.s0", "d.s2", "e.b0", "f.b0", "f.b2", "f.s0"),
        *("b.s1", "c.s1", "f.b1", "d.s1", "f.s1"),
    ],
}
ORDERED = [
    pytest.param(document, root, field, ascending, size, id=f"{root}-{field}")
    for document, root, orders, size in (
        (SESSIONS, "sessions", SESSION_ORDERS, 3),
        (AGENTS, "agents", AGENT_ORDERS, 3),
        (MESSAGES, "messages", MESSAGE_ORDERS, 4),
    )
    for field, ascending in orders.items()
]


def pages(
    graphql: GraphQLCall, document: str, root: str, prefix: str, backwards: bool, **variables: Any
) -> Iterator[dict[str, Any]]:
    """Every page of a listing, following its cursors forwards (or backwards, nearest first)."""
    size = variables.pop("size")
    cursor = None
    for _ in range(20):
        if backwards:
            page = listing(graphql, document, root, prefix, last=size, before=cursor, **variables)
        else:
            page = listing(graphql, document, root, prefix, first=size, after=cursor, **variables)
        yield page
        info = page["pageInfo"]
        if not (info["hasPreviousPage"] if backwards else info["hasNextPage"]):
            return
        cursor = info["startCursor"] if backwards else info["endCursor"]
    raise AssertionError("the pages never ended")


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
@pytest.mark.parametrize(("document", "root", "field", "ascending", "size"), ORDERED)
def test_keyset_pages_visit_every_row_once_in_order_both_ways(
    graphql: GraphQLCall,
    stored: Conversations,
    document: str,
    root: str,
    field: str,
    ascending: list[str],
    size: int,
    direction: str,
) -> None:
    expected = ascending if direction == "ASC" else ascending[::-1]
    order = {"field": field, "direction": direction}

    forward = list(pages(graphql, document, root, stored.prefix, False, o=order, size=size))
    backward = list(pages(graphql, document, root, stored.prefix, True, o=order, size=size))

    assert [name for page in forward for name in names(page, stored.prefix)] == expected
    assert [name for page in reversed(backward) for name in names(page, stored.prefix)] == expected
    assert [len(page["edges"]) for page in forward] == [size] * (len(expected) // size) + [
        len(expected) % size
    ]
    for number, page in enumerate(forward):
        info, cursors = page["pageInfo"], [edge["cursor"] for edge in page["edges"]]
        assert (info["startCursor"], info["endCursor"]) == (cursors[0], cursors[-1])
        assert info["hasNextPage"] is (number < len(forward) - 1)
        assert info["hasPreviousPage"] is (number > 0)  # started after a cursor
        assert page["totalCount"] == len(expected)
    for number, page in enumerate(backward):  # nearest the end first
        info = page["pageInfo"]
        assert info["hasPreviousPage"] is (number < len(backward) - 1)
        assert info["hasNextPage"] is (number > 0)  # started before a cursor


def test_default_order_is_newest_created_first(graphql: GraphQLCall, stored: Conversations) -> None:
    default = listing(graphql, SESSIONS, "sessions", stored.prefix)
    agents = listing(graphql, AGENTS, "agents", stored.prefix)
    messages = listing(graphql, MESSAGES, "messages", stored.prefix)

    assert names(default, stored.prefix) == SESSION_ORDERS["CREATED_AT"][::-1]
    assert names(agents, stored.prefix) == AGENT_ORDERS["CREATED_AT"][::-1]
    assert names(messages, stored.prefix) == MESSAGE_ORDERS["CREATED_AT"][::-1]


def test_pages_stay_stable_when_rows_are_inserted_between_them(graphql: GraphQLCall, new_id: NewId) -> None:
    prefix = new_id("stable")
    for number in (1, 2, 3, 4):
        create_session(graphql, f"{prefix}-{number}", createdAt=day(number).isoformat())

    first = listing(graphql, SESSIONS, "sessions", prefix, first=2)
    # one newer than every row (before the cursor), one between rows not read yet
    create_session(graphql, f"{prefix}-5", createdAt=day(5).isoformat())
    create_session(graphql, f"{prefix}-2.5", createdAt=day(2, 12).isoformat())
    second = listing(graphql, SESSIONS, "sessions", prefix, first=2, after=first["pageInfo"]["endCursor"])
    third = listing(graphql, SESSIONS, "sessions", prefix, first=2, after=second["pageInfo"]["endCursor"])

    assert names(first, prefix) == ["4", "3"]
    assert names(second, prefix) == ["2.5", "2"]  # no row of the first page again, none skipped
    assert names(third, prefix) == ["1"]
    assert (third["pageInfo"]["hasNextPage"], third["totalCount"]) == (False, 6)
    before_first = listing(
        graphql, SESSIONS, "sessions", prefix, last=2, before=first["pageInfo"]["startCursor"]
    )
    assert names(before_first, prefix) == ["5"]


def test_total_count_is_counted_only_when_asked_for(
    server: RunningServer, graphql: GraphQLCall, stored: Conversations
) -> None:
    without = "query($f: ConversationFilter) { sessions(filter: $f) { nodes { sessionId } } }"
    with_count = "query($f: ConversationFilter) { sessions(filter: $f) { nodes { sessionId } totalCount } }"
    f = {"sessionIdPrefix": stored.prefix}

    with server.count_statements() as plain:
        nodes = ask(graphql, without, f=f)["sessions"]["nodes"]
    with server.count_statements() as counted:
        total = ask(graphql, with_count, f=f)["sessions"]["totalCount"]

    assert (len(nodes), total) == (7, 7)
    assert [s for s in plain if "count(" in s] == []
    assert len([s for s in counted if "count(" in s]) == 1


# --- cursors and page sizes ---


def cursor_of(graphql: GraphQLCall, document: str, root: str, prefix: str, **variables: Any) -> str:
    cursor: str = listing(graphql, document, root, prefix, first=1, **variables)["pageInfo"]["endCursor"]
    return cursor


def test_a_cursor_of_another_order_or_listing_is_refused(graphql: GraphQLCall, stored: Conversations) -> None:
    p = stored.prefix
    newest = cursor_of(graphql, SESSIONS, "sessions", p)
    by_tokens = cursor_of(graphql, SESSIONS, "sessions", p, o={"field": "TOTAL_TOKENS"})
    agent = cursor_of(graphql, AGENTS, "agents", p)
    message = cursor_of(graphql, MESSAGES, "messages", p)
    in_conversation = ask(graphql, CONVERSATION, s=stored.session_id("c"), a="support", first=1)["agent"][
        "messagesConnection"
    ]["pageInfo"]["endCursor"]
    f = {"sessionIdPrefix": p}

    refused: list[tuple[str, dict[str, Any], str]] = [
        (SESSIONS, {"after": newest, "o": {"field": "CREATED_AT", "direction": "ASC"}}, "after"),
        (SESSIONS, {"before": newest, "o": {"field": "LAST_ACTIVITY_AT"}}, "before"),
        (SESSIONS, {"after": by_tokens, "o": {"field": "MESSAGE_COUNT"}}, "after"),
        (SESSIONS, {"after": agent}, "after"),
        (AGENTS, {"after": newest}, "after"),
        (MESSAGES, {"after": agent}, "after"),
        (MESSAGES, {"after": in_conversation}, "after"),
        (MESSAGES, {"after": "not-a-cursor"}, "after"),
    ]
    for document, variables, field in refused:
        assert_error(graphql(document, {"f": f, **variables}), "BAD_USER_INPUT", field)
    for cursor in (message, newest, "bWVzc2FnZTpbXQ"):
        conversation = {"s": stored.session_id("c"), "a": "support", "after": cursor}
        assert_error(graphql(CONVERSATION, conversation), "BAD_USER_INPUT", "after")


@pytest.mark.parametrize(
    ("document", "root"), [(SESSIONS, "sessions"), (AGENTS, "agents"), (MESSAGES, "messages")]
)
def test_page_size_default_and_maximum(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId, document: str, root: str
) -> None:
    prefix = new_id("sizes")
    maximum = server.settings.limits.max_page_size
    if root == "messages":
        create_session(graphql, f"{prefix}-0")
        create_agent(graphql, f"{prefix}-0", "a")
        append_messages(graphql, f"{prefix}-0", "a", [at(i, user("hi")) for i in range(21)])
    else:
        for number in range(21):
            create_session(graphql, f"{prefix}-{number:02}")
            if root == "agents":
                create_agent(graphql, f"{prefix}-{number:02}", "a")

    default = listing(graphql, document, root, prefix)
    largest = listing(graphql, document, root, prefix, first=maximum)
    nothing = listing(graphql, document, root, prefix, first=0)

    assert (len(default["edges"]), default["pageInfo"]["hasNextPage"], default["totalCount"]) == (
        20,
        True,
        21,
    )
    assert (len(largest["edges"]), largest["pageInfo"]["hasNextPage"]) == (21, False)
    assert (nothing["edges"], nothing["pageInfo"]["hasNextPage"]) == ([], True)
    f = {"sessionIdPrefix": prefix}
    for given, field in (
        ({"first": maximum + 1}, "first"),
        ({"last": maximum + 1}, "last"),
        ({"first": -1}, "first"),
    ):
        error = assert_error(graphql(document, {"f": f, **given}), "BAD_USER_INPUT", field)
        assert str(maximum) in error["message"]
    assert_error(graphql(document, {"f": f, "first": 1, "last": 1}), "BAD_USER_INPUT", "last")


# --- one agent's conversation ---


@pytest.fixture(scope="module")
def chat(graphql: GraphQLCall) -> tuple[str, str]:
    """An agent with 51 messages: even ids from the user, odd ones from the assistant."""
    session_id = f"chat-{uuid.uuid4().hex[:12]}"
    create_session(graphql, session_id)
    create_agent(graphql, session_id, "a")
    create_agent(graphql, session_id, "silent")
    messages = [at(i, user(f"q{i}") if i % 2 == 0 else ai(10)) for i in range(51)]
    append_messages(graphql, session_id, "a", messages)
    return session_id, "a"


def conversation(graphql: GraphQLCall, chat: tuple[str, str], **variables: Any) -> dict[str, Any]:
    agent: dict[str, Any] = ask(graphql, CONVERSATION, s=chat[0], a=chat[1], **variables)["agent"]
    return agent


def ids(connection: dict[str, Any]) -> list[int]:
    return [edge["node"]["messageId"] for edge in connection["edges"]]


def test_messages_connection_default_page_and_last_message(
    graphql: GraphQLCall, chat: tuple[str, str]
) -> None:
    agent = conversation(graphql, chat)
    silent = ask(graphql, CONVERSATION, s=chat[0], a="silent")["agent"]

    assert ids(agent["messagesConnection"]) == list(range(50))
    assert agent["messagesConnection"]["pageInfo"]["hasNextPage"] is True
    assert agent["messagesConnection"]["totalCount"] == 51
    assert agent["lastMessage"] == {"messageId": 50}
    assert silent["lastMessage"] is None
    assert (silent["messagesConnection"]["edges"], silent["messagesConnection"]["totalCount"]) == ([], 0)


def test_messages_connection_pages_backwards_from_the_end(
    graphql: GraphQLCall, chat: tuple[str, str]
) -> None:
    last = conversation(graphql, chat, last=3)["messagesConnection"]
    before = conversation(graphql, chat, last=3, before=last["pageInfo"]["startCursor"])["messagesConnection"]
    start = conversation(
        graphql,
        chat,
        last=5,
        before=conversation(graphql, chat, first=3)["messagesConnection"]["pageInfo"]["endCursor"],
    )["messagesConnection"]

    assert ids(last) == [48, 49, 50]
    assert (last["pageInfo"]["hasPreviousPage"], last["pageInfo"]["hasNextPage"]) == (True, False)
    assert ids(before) == [45, 46, 47]
    assert (before["pageInfo"]["hasPreviousPage"], before["pageInfo"]["hasNextPage"]) == (True, True)
    assert ids(start) == [0, 1]
    assert start["pageInfo"]["hasPreviousPage"] is False


def test_messages_connection_filters_each_page(graphql: GraphQLCall, chat: tuple[str, str]) -> None:
    f = {"role": "assistant"}
    first = conversation(graphql, chat, f=f, first=3)["messagesConnection"]
    after = conversation(graphql, chat, f=f, first=3, after=first["pageInfo"]["endCursor"])[
        "messagesConnection"
    ]
    last = conversation(graphql, chat, f=f, last=2)["messagesConnection"]
    before = conversation(graphql, chat, f=f, last=2, before=last["pageInfo"]["startCursor"])[
        "messagesConnection"
    ]
    users = conversation(graphql, chat, f={"role": "user", "created": {"end": "2000-01-01T00:00:00Z"}})

    assert (ids(first), ids(after)) == ([1, 3, 5], [7, 9, 11])
    assert first["totalCount"] == 25
    assert (ids(last), ids(before)) == ([47, 49], [43, 45])
    assert users["messagesConnection"]["totalCount"] == 0
