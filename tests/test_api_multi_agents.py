"""Multi-agent (Graph, Swarm) states: create under a session, read, update keeping createdAt, delete."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api_calls import (
    CREATE_MULTI_AGENT,
    DELETE_MULTI_AGENT,
    GET_MULTI_AGENT,
    UPDATE_MULTI_AGENT,
    GraphQLCall,
    NewId,
    assert_error,
    create_multi_agent,
    create_session,
    data_of,
    parse_time,
    table_rows,
)

MULTI_AGENT_SESSION = """
query($sessionId: String!, $multiAgentId: String!) {
  multiAgent(sessionId: $sessionId, multiAgentId: $multiAgentId) { multiAgentId session { sessionId } }
}
"""

SWARM_STATE = {
    "type": "swarm",
    "status": "completed",
    "completed_nodes": ["researcher", "writer"],
    "node_history": ["researcher", "writer"],
    "node_results": {"writer": {"result": {"stop_reason": "end_turn"}, "execution_time": 1234}},
    "next_nodes_to_execute": [],
    "current_task": "write a haiku",
    "execution_order": ["researcher", "writer"],
}


def get_multi_agent(graphql: GraphQLCall, session_id: str, multi_agent_id: str) -> Any:
    variables = {"sessionId": session_id, "multiAgentId": multi_agent_id}
    return data_of(graphql(GET_MULTI_AGENT, variables))["multiAgent"]


def update_multi_agent(graphql: GraphQLCall, session_id: str, multi_agent: dict[str, Any]) -> dict[str, Any]:
    body = graphql(UPDATE_MULTI_AGENT, {"sessionId": session_id, "multiAgent": multi_agent})
    updated: dict[str, Any] = data_of(body)["updateMultiAgent"]
    return updated


def new_session(graphql: GraphQLCall, new_id: NewId) -> str:
    session_id = new_id("session")
    create_session(graphql, session_id)
    return session_id


def test_create_multi_agent_returns_the_stored_state(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, multi_agent_id = new_session(graphql, new_id), new_id("swarm")

    created = create_multi_agent(graphql, session_id, multi_agent_id, state=SWARM_STATE)

    assert created["sessionId"] == session_id
    assert created["multiAgentId"] == multi_agent_id
    assert created["state"] == SWARM_STATE
    assert created["updatedAt"] == created["createdAt"]
    assert get_multi_agent(graphql, session_id, multi_agent_id) == created


def test_multi_agent_is_null_when_missing(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = new_session(graphql, new_id)

    assert get_multi_agent(graphql, session_id, new_id("missing")) is None
    assert get_multi_agent(graphql, new_id("missing"), "graph") is None


async def test_create_multi_agent_in_missing_session_is_not_found_and_stores_nothing(
    graphql: GraphQLCall, new_id: NewId, database_url: str
) -> None:
    session_id = new_id("missing")
    variables = {"sessionId": session_id, "multiAgent": {"multiAgentId": "graph", "state": {}}}

    assert_error(graphql(CREATE_MULTI_AGENT, variables), "NOT_FOUND")
    rows = await table_rows(
        database_url, "SELECT * FROM session_multi_agents WHERE session_id = :sid", sid=session_id
    )
    assert rows == []


def test_create_existing_multi_agent_is_already_exists_and_keeps_stored_state(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, multi_agent_id = new_session(graphql, new_id), new_id("graph")
    original = create_multi_agent(graphql, session_id, multi_agent_id, state={"status": "executing"})
    variables = {"sessionId": session_id, "multiAgent": {"multiAgentId": multi_agent_id, "state": {"x": 1}}}

    assert_error(graphql(CREATE_MULTI_AGENT, variables), "ALREADY_EXISTS")
    assert get_multi_agent(graphql, session_id, multi_agent_id) == original


def test_multi_agent_session_is_its_parent_session(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, multi_agent_id = new_session(graphql, new_id), new_id("graph")
    create_multi_agent(graphql, session_id, multi_agent_id)

    variables = {"sessionId": session_id, "multiAgentId": multi_agent_id}
    multi_agent = data_of(graphql(MULTI_AGENT_SESSION, variables))["multiAgent"]

    assert multi_agent == {"multiAgentId": multi_agent_id, "session": {"sessionId": session_id}}


def test_update_multi_agent_replaces_state_and_keeps_created_at(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, multi_agent_id = new_session(graphql, new_id), new_id("swarm")
    created = create_multi_agent(
        graphql,
        session_id,
        multi_agent_id,
        state={"status": "executing"},
        createdAt="2025-07-08T09:10:11.121314+00:00",
    )

    updated = update_multi_agent(
        graphql,
        session_id,
        {"multiAgentId": multi_agent_id, "state": SWARM_STATE, "createdAt": "2031-01-01T00:00:00+00:00"},
    )

    assert updated["state"] == SWARM_STATE
    assert updated["createdAt"] == created["createdAt"] == "2025-07-08T09:10:11.121314+00:00"
    assert get_multi_agent(graphql, session_id, multi_agent_id) == updated


def test_update_multi_agent_stores_given_updated_at(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, multi_agent_id = new_session(graphql, new_id), new_id("graph")
    create_multi_agent(graphql, session_id, multi_agent_id)

    updated = update_multi_agent(
        graphql,
        session_id,
        {"multiAgentId": multi_agent_id, "state": {}, "updatedAt": "2034-04-04T04:04:04.040404+00:00"},
    )

    assert updated["updatedAt"] == "2034-04-04T04:04:04.040404+00:00"


def test_update_multi_agent_defaults_updated_at_to_now(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, multi_agent_id = new_session(graphql, new_id), new_id("graph")
    create_multi_agent(graphql, session_id, multi_agent_id, createdAt="2020-01-01T00:00:00+00:00")
    before = datetime.now(UTC)

    updated = update_multi_agent(graphql, session_id, {"multiAgentId": multi_agent_id, "state": {}})

    assert before - timedelta(seconds=5) <= parse_time(updated["updatedAt"]) <= datetime.now(UTC)
    assert updated["createdAt"] == "2020-01-01T00:00:00+00:00"


def test_update_missing_multi_agent_is_not_found(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, multi_agent_id = new_session(graphql, new_id), new_id("missing")
    missing = {"multiAgentId": multi_agent_id, "state": {}}

    assert_error(graphql(UPDATE_MULTI_AGENT, {"sessionId": session_id, "multiAgent": missing}), "NOT_FOUND")
    assert_error(graphql(UPDATE_MULTI_AGENT, {"sessionId": new_id("x"), "multiAgent": missing}), "NOT_FOUND")
    assert get_multi_agent(graphql, session_id, multi_agent_id) is None


def test_delete_multi_agent_removes_only_it(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, doomed, kept = new_session(graphql, new_id), new_id("graph"), new_id("graph")
    create_multi_agent(graphql, session_id, doomed)
    create_multi_agent(graphql, session_id, kept)

    body = graphql(DELETE_MULTI_AGENT, {"sessionId": session_id, "multiAgentId": doomed})

    assert data_of(body) == {"deleteMultiAgent": True}
    assert get_multi_agent(graphql, session_id, doomed) is None
    assert get_multi_agent(graphql, session_id, kept)["multiAgentId"] == kept


def test_delete_missing_multi_agent_is_not_found(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, multi_agent_id = new_session(graphql, new_id), new_id("graph")
    create_multi_agent(graphql, session_id, multi_agent_id)
    data_of(graphql(DELETE_MULTI_AGENT, {"sessionId": session_id, "multiAgentId": multi_agent_id}))

    again = graphql(DELETE_MULTI_AGENT, {"sessionId": session_id, "multiAgentId": multi_agent_id})
    missing_session = graphql(DELETE_MULTI_AGENT, {"sessionId": new_id("x"), "multiAgentId": multi_agent_id})

    assert_error(again, "NOT_FOUND")
    assert_error(missing_session, "NOT_FOUND")
