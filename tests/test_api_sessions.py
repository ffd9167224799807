"""Sessions: create, read, delete with everything under them, and the newest-first connection."""

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api_calls import (
    CREATE_SESSION,
    DELETE_SESSION,
    GET_AGENT,
    GET_MESSAGE,
    GET_MULTI_AGENT,
    GET_SESSION,
    GraphQLCall,
    NewId,
    assert_error,
    create_agent,
    create_message,
    create_multi_agent,
    create_session,
    data_of,
    future_time,
    parse_time,
    rows_of_session,
    table_rows,
)

SESSIONS_PAGE = """
query($first: Int!, $after: String) {
  sessions(first: $first, after: $after) {
    edges { cursor node { sessionId createdAt } }
    nodes { sessionId }
    pageInfo { hasNextPage endCursor }
  }
}
"""

SESSION_CHILDREN = """
query($sessionId: String!, $agentId: String!, $multiAgentId: String!) {
  session(sessionId: $sessionId) {
    agents { agentId }
    agent(agentId: $agentId) { agentId sessionId }
    multiAgents { multiAgentId }
    multiAgent(multiAgentId: $multiAgentId) { multiAgentId sessionId }
  }
}
"""


def sessions_page(graphql: GraphQLCall, first: int, after: str | None = None) -> dict[str, Any]:
    connection: dict[str, Any] = data_of(graphql(SESSIONS_PAGE, {"first": first, "after": after}))["sessions"]
    return connection


def test_create_session_returns_the_stored_session(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = new_id("session")
    before = datetime.now(UTC)

    created = create_session(graphql, session_id)

    assert created["sessionId"] == session_id
    assert created["sessionType"] == "AGENT"
    assert before - timedelta(seconds=5) <= parse_time(created["createdAt"]) <= datetime.now(UTC)
    assert created["updatedAt"] == created["createdAt"]
    assert data_of(graphql(GET_SESSION, {"sessionId": session_id}))["session"] == created


def test_create_session_defaults_updated_at_to_given_created_at(graphql: GraphQLCall, new_id: NewId) -> None:
    created = create_session(graphql, new_id("session"), createdAt="2025-03-04T05:06:07.080910+00:00")

    assert created["createdAt"] == "2025-03-04T05:06:07.080910+00:00"
    assert created["updatedAt"] == "2025-03-04T05:06:07.080910+00:00"


def test_session_is_null_when_missing(graphql: GraphQLCall, new_id: NewId) -> None:
    body = graphql(GET_SESSION, {"sessionId": new_id("missing")})

    assert body == {"data": {"session": None}}


def test_create_existing_session_is_already_exists_and_changes_nothing(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    original = create_session(graphql, session_id, createdAt="2025-01-01T00:00:00.000001+00:00")

    body = graphql(
        CREATE_SESSION, {"session": {"sessionId": session_id, "createdAt": "2030-01-01T00:00:00+00:00"}}
    )

    assert_error(body, "ALREADY_EXISTS")
    assert data_of(graphql(GET_SESSION, {"sessionId": session_id}))["session"] == original


def test_delete_session_removes_it(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = new_id("session")
    create_session(graphql, session_id)

    assert data_of(graphql(DELETE_SESSION, {"sessionId": session_id})) == {"deleteSession": True}
    assert data_of(graphql(GET_SESSION, {"sessionId": session_id}))["session"] is None


def test_delete_missing_session_is_not_found(graphql: GraphQLCall, new_id: NewId) -> None:
    assert_error(graphql(DELETE_SESSION, {"sessionId": new_id("missing")}), "NOT_FOUND")


def test_delete_session_twice_is_not_found_the_second_time(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = new_id("session")
    create_session(graphql, session_id)
    data_of(graphql(DELETE_SESSION, {"sessionId": session_id}))

    assert_error(graphql(DELETE_SESSION, {"sessionId": session_id}), "NOT_FOUND")


async def test_delete_session_deletes_its_agents_messages_and_multi_agents(
    graphql: GraphQLCall, new_id: NewId, database_url: str
) -> None:
    session_id, agent_id, multi_agent_id = new_id("session"), new_id("agent"), new_id("graph")
    create_session(graphql, session_id)
    create_agent(graphql, session_id, agent_id)
    create_message(graphql, session_id, agent_id, 0)
    create_multi_agent(graphql, session_id, multi_agent_id)
    assert await rows_of_session(database_url, session_id) == {
        "sessions": 1,
        "session_agents": 1,
        "session_messages": 1,
        "session_multi_agents": 1,
    }

    data_of(graphql(DELETE_SESSION, {"sessionId": session_id}))

    assert await rows_of_session(database_url, session_id) == {
        "sessions": 0,
        "session_agents": 0,
        "session_messages": 0,
        "session_multi_agents": 0,
    }
    ids = {"sessionId": session_id, "agentId": agent_id}
    assert data_of(graphql(GET_AGENT, ids))["agent"] is None
    assert data_of(graphql(GET_MESSAGE, {**ids, "messageId": 0}))["message"] is None
    multi_ids = {"sessionId": session_id, "multiAgentId": multi_agent_id}
    assert data_of(graphql(GET_MULTI_AGENT, multi_ids))["multiAgent"] is None


def test_delete_session_leaves_other_sessions_alone(graphql: GraphQLCall, new_id: NewId) -> None:
    doomed, kept, agent_id = new_id("session"), new_id("session"), new_id("agent")
    for session_id in (doomed, kept):
        create_session(graphql, session_id)
        create_agent(graphql, session_id, agent_id)

    data_of(graphql(DELETE_SESSION, {"sessionId": doomed}))

    assert (
        data_of(graphql(GET_AGENT, {"sessionId": kept, "agentId": agent_id}))["agent"]["agentId"] == agent_id
    )


def test_recreated_session_starts_empty(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_id("session"), new_id("agent")
    create_session(graphql, session_id)
    create_agent(graphql, session_id, agent_id)
    create_multi_agent(graphql, session_id, new_id("graph"))
    data_of(graphql(DELETE_SESSION, {"sessionId": session_id}))

    create_session(graphql, session_id)

    variables = {"sessionId": session_id, "agentId": agent_id, "multiAgentId": "x"}
    session = data_of(graphql(SESSION_CHILDREN, variables))["session"]
    assert session == {"agents": [], "agent": None, "multiAgents": [], "multiAgent": None}


def test_session_agents_are_listed_oldest_first(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = new_id("session")
    create_session(graphql, session_id)
    created = ["2025-01-03T00:00:00+00:00", "2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+00:00"]
    agent_ids = [new_id("agent") for _ in created]
    for agent_id, created_at in zip(agent_ids, created, strict=True):
        create_agent(graphql, session_id, agent_id, createdAt=created_at)

    variables = {"sessionId": session_id, "agentId": agent_ids[0], "multiAgentId": "none"}
    session = data_of(graphql(SESSION_CHILDREN, variables))["session"]

    assert [a["agentId"] for a in session["agents"]] == [agent_ids[1], agent_ids[2], agent_ids[0]]
    assert session["agent"] == {"agentId": agent_ids[0], "sessionId": session_id}
    assert session["multiAgent"] is None


def test_session_multi_agents_are_listed_oldest_first(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = new_id("session")
    create_session(graphql, session_id)
    created = ["2025-02-02T00:00:00+00:00", "2025-02-01T00:00:00+00:00"]
    multi_agent_ids = [new_id("swarm") for _ in created]
    for multi_agent_id, created_at in zip(multi_agent_ids, created, strict=True):
        create_multi_agent(graphql, session_id, multi_agent_id, createdAt=created_at)

    variables = {"sessionId": session_id, "agentId": "none", "multiAgentId": multi_agent_ids[1]}
    session = data_of(graphql(SESSION_CHILDREN, variables))["session"]

    assert [m["multiAgentId"] for m in session["multiAgents"]] == [multi_agent_ids[1], multi_agent_ids[0]]
    assert session["multiAgent"] == {"multiAgentId": multi_agent_ids[1], "sessionId": session_id}
    assert session["agents"] == []
    assert session["agent"] is None


def test_session_agent_does_not_see_agents_of_other_sessions(graphql: GraphQLCall, new_id: NewId) -> None:
    mine, other, agent_id = new_id("session"), new_id("session"), new_id("agent")
    create_session(graphql, mine)
    create_session(graphql, other)
    create_agent(graphql, other, agent_id)

    variables = {"sessionId": mine, "agentId": agent_id, "multiAgentId": "none"}
    session = data_of(graphql(SESSION_CHILDREN, variables))["session"]

    assert session["agent"] is None
    assert session["agents"] == []


def collect_sessions(graphql: GraphQLCall, first: int, wanted: set[str]) -> list[str]:
    """Session ids from the first page on, until every wanted one was seen; checks each page's shape."""
    seen: list[str] = []
    after = None
    for _ in range(100):
        page = sessions_page(graphql, first, after)
        assert [edge["node"]["sessionId"] for edge in page["edges"]] == [
            n["sessionId"] for n in page["nodes"]
        ]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        seen += [node["sessionId"] for node in page["nodes"]]
        if wanted <= set(seen):
            return seen
        assert page["pageInfo"]["hasNextPage"] is True
        after = page["pageInfo"]["endCursor"]
    raise AssertionError(f"not all of {wanted} within 100 pages")


@pytest.fixture
def future_sessions(graphql: GraphQLCall) -> Iterator[list[str]]:
    """Collects the ids of sessions a test creates in the far future, and deletes them afterwards:
    other tests rely on their own sessions being the newest."""
    session_ids: list[str] = []
    yield session_ids
    for session_id in session_ids:
        data_of(graphql(DELETE_SESSION, {"sessionId": session_id}))


def test_sessions_are_paged_newest_first(
    graphql: GraphQLCall, new_id: NewId, future_sessions: list[str]
) -> None:
    base = future_time()
    session_ids = [new_id("listed") for _ in range(5)]
    future_sessions += session_ids
    for step, session_id in enumerate(session_ids):
        create_session(graphql, session_id, createdAt=(base + timedelta(microseconds=step)).isoformat())

    seen = collect_sessions(graphql, 2, set(session_ids))

    assert len(seen) == len(set(seen))
    assert [s for s in seen if s in session_ids] == list(reversed(session_ids))


def test_sessions_with_equal_created_at_are_paged_without_skips_or_repeats(
    graphql: GraphQLCall, new_id: NewId, future_sessions: list[str]
) -> None:
    created_at = future_time().isoformat()
    session_ids = {new_id("tied") for _ in range(4)}
    future_sessions += session_ids
    for session_id in session_ids:
        create_session(graphql, session_id, createdAt=created_at)

    seen = collect_sessions(graphql, 1, session_ids)

    assert len(seen) == len(set(seen))
    assert [s for s in seen if s in session_ids] == sorted(session_ids, reverse=True)


def test_sessions_listing_walks_every_session_newest_first_to_a_last_page(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    old_session = new_id("old")
    create_session(graphql, old_session, createdAt="1970-01-01T00:00:00.000001+00:00")

    edges: list[dict[str, Any]] = []
    page = sessions_page(graphql, 1000)
    edges += page["edges"]
    while page["pageInfo"]["hasNextPage"]:
        page = sessions_page(graphql, 1000, page["pageInfo"]["endCursor"])
        edges += page["edges"]

    session_ids = [edge["node"]["sessionId"] for edge in edges]
    created = [parse_time(edge["node"]["createdAt"]) for edge in edges]
    assert old_session in session_ids
    assert len(session_ids) == len(set(session_ids))
    assert created == sorted(created, reverse=True)
    assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
    after_last = sessions_page(graphql, 10, page["pageInfo"]["endCursor"])
    assert after_last == {"edges": [], "nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


def test_sessions_first_zero_returns_no_sessions(graphql: GraphQLCall, new_id: NewId) -> None:
    create_session(graphql, new_id("session"))

    page = sessions_page(graphql, 0)

    assert page["edges"] == []
    assert page["nodes"] == []


@pytest.mark.parametrize("first", [-1, 1001])
def test_sessions_page_size_out_of_range_is_bad_user_input(graphql: GraphQLCall, first: int) -> None:
    assert_error(graphql(SESSIONS_PAGE, {"first": first}), "BAD_USER_INPUT", field="first")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "%%%",
        "",
        base64.urlsafe_b64encode(b"message:3").decode(),
        base64.urlsafe_b64encode(b"session:not json").decode(),
        base64.urlsafe_b64encode(b'session:["yesterday", "s"]').decode(),
    ],
)
def test_sessions_invalid_cursor_is_bad_user_input(graphql: GraphQLCall, cursor: str) -> None:
    assert_error(graphql(SESSIONS_PAGE, {"first": 5, "after": cursor}), "BAD_USER_INPUT", field="after")


def test_sessions_cursor_with_nul_in_session_id_is_bad_user_input(graphql: GraphQLCall) -> None:
    raw = "session:" + json.dumps(["2026-01-01T00:00:00+00:00", "a\u0000b"])
    cursor = base64.urlsafe_b64encode(raw.encode()).decode()

    assert_error(graphql(SESSIONS_PAGE, {"first": 5, "after": cursor}), "BAD_USER_INPUT", field="after")


async def test_no_table_holds_orphan_rows(database_url: str) -> None:
    orphans = await table_rows(
        database_url,
        """
        SELECT 'agent' AS kind, a.session_id FROM session_agents a
          LEFT JOIN sessions s USING (session_id) WHERE s.session_id IS NULL
        UNION ALL
        SELECT 'multi_agent', m.session_id FROM session_multi_agents m
          LEFT JOIN sessions s USING (session_id) WHERE s.session_id IS NULL
        UNION ALL
        SELECT 'message', m.session_id FROM session_messages m
          LEFT JOIN session_agents a USING (session_id, agent_id) WHERE a.agent_id IS NULL
        """,
    )

    assert orphans == []
