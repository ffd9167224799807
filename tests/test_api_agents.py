"""Agents: create under a session, read, update (keeping createdAt) and delete with their messages."""

from datetime import UTC, datetime, timedelta

from tests.api_calls import (
    CREATE_AGENT,
    DELETE_AGENT,
    GET_AGENT,
    GET_MESSAGE,
    UPDATE_AGENT,
    GraphQLCall,
    NewId,
    agent_input,
    assert_error,
    create_agent,
    create_message,
    create_session,
    data_of,
    new_agent,
    parse_time,
    stored_message_ids,
    table_rows,
)

AGENT_SESSION = """
query($sessionId: String!, $agentId: String!) {
  agent(sessionId: $sessionId, agentId: $agentId) { agentId session { sessionId sessionType } }
}
"""


def get_agent(graphql: GraphQLCall, session_id: str, agent_id: str) -> dict[str, object] | None:
    agent: dict[str, object] | None = data_of(
        graphql(GET_AGENT, {"sessionId": session_id, "agentId": agent_id})
    )["agent"]
    return agent


def test_create_agent_returns_the_stored_agent(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_id("session"), new_id("agent")
    create_session(graphql, session_id)

    created = create_agent(
        graphql,
        session_id,
        agent_id,
        state={"count": 1},
        conversationManagerState={"removed_message_count": 2},
        internalState={"interrupt_state": {"activated": False}},
    )

    assert created["sessionId"] == session_id
    assert created["agentId"] == agent_id
    assert created["state"] == {"count": 1}
    assert created["conversationManagerState"] == {"removed_message_count": 2}
    assert created["internalState"] == {"interrupt_state": {"activated": False}}
    assert created["updatedAt"] == created["createdAt"]
    assert get_agent(graphql, session_id, agent_id) == created


def test_create_agent_defaults_internal_state_to_empty_object(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)

    agent = get_agent(graphql, session_id, agent_id)

    assert agent is not None
    assert agent["internalState"] == {}


def test_agent_is_null_when_missing(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, _ = new_agent(graphql, new_id)

    assert get_agent(graphql, session_id, new_id("missing")) is None
    assert get_agent(graphql, new_id("missing"), new_id("missing")) is None


async def test_create_agent_in_missing_session_is_not_found_and_stores_nothing(
    graphql: GraphQLCall, new_id: NewId, database_url: str
) -> None:
    session_id = new_id("missing")

    body = graphql(CREATE_AGENT, {"sessionId": session_id, "agent": agent_input(new_id("agent"))})

    assert_error(body, "NOT_FOUND")
    rows = await table_rows(
        database_url, "SELECT * FROM session_agents WHERE session_id = :sid", sid=session_id
    )
    assert rows == []


def test_create_existing_agent_is_already_exists_and_keeps_stored_state(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_id("session"), new_id("agent")
    create_session(graphql, session_id)
    original = create_agent(graphql, session_id, agent_id, state={"version": 1})

    body = graphql(
        CREATE_AGENT, {"sessionId": session_id, "agent": agent_input(agent_id, state={"version": 2})}
    )

    assert_error(body, "ALREADY_EXISTS")
    assert get_agent(graphql, session_id, agent_id) == original


def test_same_agent_id_in_two_sessions_are_separate_agents(graphql: GraphQLCall, new_id: NewId) -> None:
    first, second, agent_id = new_id("session"), new_id("session"), new_id("agent")
    for number, session_id in enumerate((first, second)):
        create_session(graphql, session_id)
        create_agent(graphql, session_id, agent_id, state={"session": number})

    data_of(graphql(DELETE_AGENT, {"sessionId": first, "agentId": agent_id}))

    assert get_agent(graphql, first, agent_id) is None
    kept = get_agent(graphql, second, agent_id)
    assert kept is not None
    assert kept["state"] == {"session": 1}


def test_agent_session_is_its_parent_session(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)

    agent = data_of(graphql(AGENT_SESSION, {"sessionId": session_id, "agentId": agent_id}))["agent"]

    assert agent == {"agentId": agent_id, "session": {"sessionId": session_id, "sessionType": "AGENT"}}


def test_update_agent_replaces_its_states(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_id("session"), new_id("agent")
    create_session(graphql, session_id)
    create_agent(graphql, session_id, agent_id, state={"old": True}, internalState={"old": True})
    replacement = agent_input(
        agent_id, state={"new": [1, 2]}, conversationManagerState={"window": 3}, internalState={"new": True}
    )

    updated = data_of(graphql(UPDATE_AGENT, {"sessionId": session_id, "agent": replacement}))["updateAgent"]

    assert updated["state"] == {"new": [1, 2]}
    assert updated["conversationManagerState"] == {"window": 3}
    assert updated["internalState"] == {"new": True}
    assert get_agent(graphql, session_id, agent_id) == updated


def test_update_agent_keeps_created_at(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_id("session"), new_id("agent")
    create_session(graphql, session_id)
    created = create_agent(graphql, session_id, agent_id, createdAt="2025-05-05T05:05:05.555555+00:00")
    replacement = agent_input(agent_id, createdAt="2031-01-01T00:00:00+00:00")

    updated = data_of(graphql(UPDATE_AGENT, {"sessionId": session_id, "agent": replacement}))["updateAgent"]

    assert updated["createdAt"] == created["createdAt"] == "2025-05-05T05:05:05.555555+00:00"
    stored = get_agent(graphql, session_id, agent_id)
    assert stored is not None
    assert stored["createdAt"] == "2025-05-05T05:05:05.555555+00:00"


def test_update_agent_stores_given_updated_at(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    replacement = agent_input(agent_id, updatedAt="2032-02-03T04:05:06.070809+00:00")

    updated = data_of(graphql(UPDATE_AGENT, {"sessionId": session_id, "agent": replacement}))["updateAgent"]

    assert updated["updatedAt"] == "2032-02-03T04:05:06.070809+00:00"


def test_update_agent_defaults_updated_at_to_now(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_id("session"), new_id("agent")
    create_session(graphql, session_id)
    create_agent(graphql, session_id, agent_id, createdAt="2020-01-01T00:00:00+00:00")
    before = datetime.now(UTC)

    updated = data_of(graphql(UPDATE_AGENT, {"sessionId": session_id, "agent": agent_input(agent_id)}))[
        "updateAgent"
    ]

    assert before - timedelta(seconds=5) <= parse_time(updated["updatedAt"]) <= datetime.now(UTC)
    assert updated["createdAt"] == "2020-01-01T00:00:00+00:00"


def test_update_missing_agent_is_not_found(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, _ = new_agent(graphql, new_id)

    missing_agent = graphql(UPDATE_AGENT, {"sessionId": session_id, "agent": agent_input(new_id("missing"))})
    missing_session = graphql(UPDATE_AGENT, {"sessionId": new_id("missing"), "agent": agent_input("a")})

    assert_error(missing_agent, "NOT_FOUND")
    assert_error(missing_session, "NOT_FOUND")


def test_update_deleted_agent_is_not_found_and_does_not_recreate_it(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    data_of(graphql(DELETE_AGENT, {"sessionId": session_id, "agentId": agent_id}))

    assert_error(
        graphql(UPDATE_AGENT, {"sessionId": session_id, "agent": agent_input(agent_id)}), "NOT_FOUND"
    )
    assert get_agent(graphql, session_id, agent_id) is None


async def test_delete_agent_deletes_its_messages_only(
    graphql: GraphQLCall, new_id: NewId, database_url: str
) -> None:
    session_id, doomed, kept = new_id("session"), new_id("agent"), new_id("agent")
    create_session(graphql, session_id)
    for agent_id in (doomed, kept):
        create_agent(graphql, session_id, agent_id)
        create_message(graphql, session_id, agent_id, 0)
        create_message(graphql, session_id, agent_id, 1)

    assert data_of(graphql(DELETE_AGENT, {"sessionId": session_id, "agentId": doomed})) == {
        "deleteAgent": True
    }

    assert get_agent(graphql, session_id, doomed) is None
    gone = data_of(graphql(GET_MESSAGE, {"sessionId": session_id, "agentId": doomed, "messageId": 0}))
    assert gone == {"message": None}
    rows = await table_rows(
        database_url,
        "SELECT agent_id, message_id FROM session_messages WHERE session_id = :sid ORDER BY message_id",
        sid=session_id,
    )
    assert rows == [{"agent_id": kept, "message_id": 0}, {"agent_id": kept, "message_id": 1}]
    assert stored_message_ids(graphql, session_id, kept) == [0, 1]


def test_delete_missing_agent_is_not_found(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)

    assert_error(graphql(DELETE_AGENT, {"sessionId": session_id, "agentId": new_id("missing")}), "NOT_FOUND")
    assert_error(graphql(DELETE_AGENT, {"sessionId": new_id("missing"), "agentId": agent_id}), "NOT_FOUND")


def test_deleted_agent_can_be_created_again_without_old_messages(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    create_message(graphql, session_id, agent_id, 0)
    data_of(graphql(DELETE_AGENT, {"sessionId": session_id, "agentId": agent_id}))

    create_agent(graphql, session_id, agent_id)

    assert stored_message_ids(graphql, session_id, agent_id) == []


def test_update_agent_without_internal_state_keeps_the_stored_one(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_id("session"), new_id("agent")
    create_session(graphql, session_id)
    create_agent(graphql, session_id, agent_id, internalState={"interrupt_state": {"activated": True}})

    updated = data_of(
        graphql(UPDATE_AGENT, {"sessionId": session_id, "agent": agent_input(agent_id, state={"v": 2})})
    )["updateAgent"]

    assert updated["state"] == {"v": 2}
    assert updated["internalState"] == {"interrupt_state": {"activated": True}}


def test_nested_fields_of_a_later_mutation_show_the_data_after_it(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    """Two mutations in one document: the second one's nested reads must not come from the first one's."""
    session_id, agent_id = new_id("session"), new_id("agent")
    create_session(graphql, session_id)
    create_agent(graphql, session_id, agent_id)
    document = """
    mutation($s: String!, $a: String!, $first: AgentInput!, $second: AgentInput!,
             $m0: MessageInput!, $m1: MessageInput!) {
      x: updateAgent(sessionId: $s, agent: $first) { session { agents { state } } }
      m0: createMessage(sessionId: $s, agentId: $a, message: $m0) { agent { messageCount } }
      y: updateAgent(sessionId: $s, agent: $second) { state session { agents { state } } }
      m1: createMessage(sessionId: $s, agentId: $a, message: $m1) {
        agent { messageCount messages { messageId } }
      }
    }
    """
    message = {"role": "user", "content": [{"text": "hi"}]}
    variables = {
        "s": session_id,
        "a": agent_id,
        "first": agent_input(agent_id, state={"v": 1}),
        "second": agent_input(agent_id, state={"v": 2}),
        "m0": {"messageId": 0, "message": message},
        "m1": {"messageId": 1, "message": message},
    }

    data = data_of(graphql(document, variables))

    assert data["x"]["session"]["agents"] == [{"state": {"v": 1}}]
    assert data["m0"]["agent"]["messageCount"] == 1
    assert data["y"]["session"]["agents"] == [{"state": {"v": 2}}]
    assert data["m1"]["agent"] == {"messageCount": 2, "messages": [{"messageId": 0}, {"messageId": 1}]}
