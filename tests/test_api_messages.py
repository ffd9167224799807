"""Messages: create (idempotent retry, CONFLICT), appendMessages (all or nothing), update, delete,
and the two ways of listing them (Strands' offset/limit positions and a keyset connection)."""

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api_calls import (
    APPEND_MESSAGES,
    CREATE_MESSAGE,
    DELETE_MESSAGE,
    GET_MESSAGE,
    UPDATE_MESSAGE,
    GraphQLCall,
    NewId,
    append_messages,
    assert_error,
    create_message,
    data_of,
    message_input,
    new_agent,
    parse_time,
    post_lenient_json,
    stored_message_ids,
    table_rows,
    user_message,
)

MESSAGES_WINDOW = """
query($sessionId: String!, $agentId: String!, $offset: Int!, $limit: Int) {
  agent(sessionId: $sessionId, agentId: $agentId) { messages(offset: $offset, limit: $limit) { messageId } }
}
"""

MESSAGES_PAGE = """
query($sessionId: String!, $agentId: String!, $first: Int!, $after: String) {
  agent(sessionId: $sessionId, agentId: $agentId) {
    messagesConnection(first: $first, after: $after) {
      edges { cursor node { messageId message } }
      nodes { messageId }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

MESSAGE_AGENT = """
query($sessionId: String!, $agentId: String!, $messageId: Int!) {
  message(sessionId: $sessionId, agentId: $agentId, messageId: $messageId) {
    messageId agent { sessionId agentId messageCount }
  }
}
"""


def get_message(graphql: GraphQLCall, session_id: str, agent_id: str, message_id: int) -> Any:
    variables = {"sessionId": session_id, "agentId": agent_id, "messageId": message_id}
    return data_of(graphql(GET_MESSAGE, variables))["message"]


def window(graphql: GraphQLCall, session_id: str, agent_id: str, offset: int, limit: int | None) -> list[int]:
    variables = {"sessionId": session_id, "agentId": agent_id, "offset": offset, "limit": limit}
    agent = data_of(graphql(MESSAGES_WINDOW, variables))["agent"]
    return [message["messageId"] for message in agent["messages"]]


def messages_page(
    graphql: GraphQLCall, session_id: str, agent_id: str, first: int, after: str | None = None
) -> dict[str, Any]:
    variables = {"sessionId": session_id, "agentId": agent_id, "first": first, "after": after}
    page: dict[str, Any] = data_of(graphql(MESSAGES_PAGE, variables))["agent"]["messagesConnection"]
    return page


def agent_with_messages(graphql: GraphQLCall, new_id: NewId, message_ids: list[int]) -> tuple[str, str]:
    session_id, agent_id = new_agent(graphql, new_id)
    append_messages(graphql, session_id, agent_id, [message_input(i) for i in message_ids])
    return session_id, agent_id


# --- createMessage ---


def test_create_message_returns_the_stored_message(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    message = user_message("hello")

    created = create_message(graphql, session_id, agent_id, 0, message=message)

    assert created["sessionId"] == session_id
    assert created["agentId"] == agent_id
    assert created["messageId"] == 0
    assert created["role"] == "user"
    assert created["message"] == message
    assert created["redactMessage"] is None
    assert created["updatedAt"] == created["createdAt"]
    assert get_message(graphql, session_id, agent_id, 0) == created


async def test_create_message_stores_the_role_as_a_column(
    graphql: GraphQLCall, new_id: NewId, database_url: str
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    create_message(graphql, session_id, agent_id, 0, message=user_message("hi", role="user"))
    create_message(graphql, session_id, agent_id, 1, message=user_message("hello", role="assistant"))

    rows = await table_rows(
        database_url,
        "SELECT message_id, role, redact_message FROM session_messages"
        " WHERE session_id = :sid AND agent_id = :aid ORDER BY message_id",
        sid=session_id,
        aid=agent_id,
    )

    assert rows == [
        {"message_id": 0, "role": "user", "redact_message": None},
        {"message_id": 1, "role": "assistant", "redact_message": None},
    ]
    assert get_message(graphql, session_id, agent_id, 1)["role"] == "assistant"


def test_message_is_null_when_missing(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0])

    assert get_message(graphql, session_id, agent_id, 1) is None
    assert get_message(graphql, session_id, new_id("missing"), 0) is None


async def test_create_message_under_missing_agent_is_not_found_and_stores_nothing(
    graphql: GraphQLCall, new_id: NewId, database_url: str
) -> None:
    session_id, _ = new_agent(graphql, new_id)
    missing_session = new_id("missing")

    missing_agent_body = graphql(
        CREATE_MESSAGE, {"sessionId": session_id, "agentId": new_id("missing"), "message": message_input(0)}
    )
    missing_session_body = graphql(
        CREATE_MESSAGE, {"sessionId": missing_session, "agentId": "agent", "message": message_input(0)}
    )

    assert_error(missing_agent_body, "NOT_FOUND")
    assert_error(missing_session_body, "NOT_FOUND")
    rows = await table_rows(
        database_url,
        "SELECT * FROM session_messages WHERE session_id IN (:sid, :missing)",
        sid=session_id,
        missing=missing_session,
    )
    assert rows == []


def test_create_message_retry_with_equal_content_succeeds(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    message = {"role": "assistant", "content": [{"text": "a\u0000b"}, {"n": 1.0, "m": 1}]}
    first = create_message(graphql, session_id, agent_id, 0, message=message, redactMessage={"role": "user"})

    retried = create_message(
        graphql,
        session_id,
        agent_id,
        0,
        # The same content with keys in another order is the same message.
        message={"content": [{"text": "a\u0000b"}, {"m": 1, "n": 1.0}], "role": "assistant"},
        redactMessage={"role": "user"},
        createdAt="2031-01-01T00:00:00+00:00",
    )

    assert retried == first
    assert stored_message_ids(graphql, session_id, agent_id) == [0]


def test_create_message_with_different_content_is_conflict_and_keeps_stored(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    stored = create_message(graphql, session_id, agent_id, 0, message=user_message("original"))

    body = graphql(
        CREATE_MESSAGE,
        {
            "sessionId": session_id,
            "agentId": agent_id,
            "message": message_input(0, message=user_message("other")),
        },
    )

    assert_error(body, "CONFLICT")
    assert get_message(graphql, session_id, agent_id, 0) == stored


def test_create_message_with_different_redact_message_is_conflict(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    stored = create_message(graphql, session_id, agent_id, 0, redactMessage=user_message("redacted"))
    resent = message_input(0, redactMessage=user_message("other redaction"))

    body = graphql(CREATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": resent})

    assert_error(body, "CONFLICT")
    assert get_message(graphql, session_id, agent_id, 0) == stored


# --- appendMessages ---


def test_append_messages_stores_all_in_the_given_order(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    batch = [message_input(i, message=user_message(f"m{i}")) for i in (0, 2, 1)]

    appended = append_messages(graphql, session_id, agent_id, batch)

    assert [m["messageId"] for m in appended] == [0, 2, 1]
    assert [m["message"] for m in appended] == [user_message("m0"), user_message("m2"), user_message("m1")]
    assert stored_message_ids(graphql, session_id, agent_id) == [0, 1, 2]
    assert get_message(graphql, session_id, agent_id, 2) == appended[1]


def test_append_messages_with_one_conflict_stores_none(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    stored = create_message(graphql, session_id, agent_id, 2, message=user_message("stored"))
    batch = [message_input(i) for i in (0, 1)] + [message_input(2, message=user_message("different"))]
    batch += [message_input(3)]

    body = graphql(APPEND_MESSAGES, {"sessionId": session_id, "agentId": agent_id, "messages": batch})

    assert_error(body, "CONFLICT")
    assert stored_message_ids(graphql, session_id, agent_id) == [2]
    assert get_message(graphql, session_id, agent_id, 2) == stored


def test_append_messages_with_repeated_id_is_bad_user_input_and_stores_none(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    batch = [message_input(0), message_input(1), message_input(0)]

    body = graphql(APPEND_MESSAGES, {"sessionId": session_id, "agentId": agent_id, "messages": batch})

    assert_error(body, "BAD_USER_INPUT", field="messages[2].messageId")
    assert stored_message_ids(graphql, session_id, agent_id) == []


def test_append_messages_with_one_invalid_message_stores_none(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    batch = [message_input(0), message_input(1), {"messageId": 2, "message": ["not", "an", "object"]}]

    body = graphql(APPEND_MESSAGES, {"sessionId": session_id, "agentId": agent_id, "messages": batch})

    assert_error(body, "BAD_USER_INPUT", field="messages[2].message")
    assert stored_message_ids(graphql, session_id, agent_id) == []


def test_append_messages_rejected_by_the_database_stores_none(
    graphql: GraphQLCall, http: httpx.Client, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    # Passes the API's checks and fails only in storage: NaN has no JSON form.
    batch = [message_input(0), message_input(1, message={"role": "user", "score": float("nan")})]

    body = post_lenient_json(
        http, APPEND_MESSAGES, {"sessionId": session_id, "agentId": agent_id, "messages": batch}
    )

    assert_error(body, "BAD_USER_INPUT")
    assert stored_message_ids(graphql, session_id, agent_id) == []


async def test_append_messages_to_missing_agent_is_not_found_and_stores_nothing(
    graphql: GraphQLCall, new_id: NewId, database_url: str
) -> None:
    session_id, _ = new_agent(graphql, new_id)
    variables = {"sessionId": session_id, "agentId": new_id("missing"), "messages": [message_input(0)]}

    assert_error(graphql(APPEND_MESSAGES, variables), "NOT_FOUND")
    rows = await table_rows(
        database_url, "SELECT * FROM session_messages WHERE session_id = :sid", sid=session_id
    )
    assert rows == []


def test_append_empty_list_to_missing_agent_is_not_found(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, _ = new_agent(graphql, new_id)

    missing_agent = graphql(
        APPEND_MESSAGES, {"sessionId": session_id, "agentId": new_id("x"), "messages": []}
    )
    missing_session = graphql(APPEND_MESSAGES, {"sessionId": new_id("x"), "agentId": "a", "messages": []})

    assert_error(missing_agent, "NOT_FOUND")
    assert_error(missing_session, "NOT_FOUND")


def test_append_empty_list_to_existing_agent_returns_nothing(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)

    assert append_messages(graphql, session_id, agent_id, []) == []


def test_append_messages_retry_of_the_same_batch_succeeds(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    batch = [message_input(i) for i in range(3)]
    first = append_messages(graphql, session_id, agent_id, batch)

    retried = append_messages(graphql, session_id, agent_id, batch)

    assert retried == first
    assert stored_message_ids(graphql, session_id, agent_id) == [0, 1, 2]


def test_append_messages_overlapping_stored_equal_messages_succeeds(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    stored = append_messages(graphql, session_id, agent_id, [message_input(0), message_input(1)])

    appended = append_messages(graphql, session_id, agent_id, [message_input(i) for i in range(4)])

    assert appended[:2] == stored
    assert [m["messageId"] for m in appended] == [0, 1, 2, 3]
    assert stored_message_ids(graphql, session_id, agent_id) == [0, 1, 2, 3]


# --- updateMessage and deleteMessage ---


def test_update_message_sets_redact_message_and_keeps_created_at(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    original = user_message("my card is 4111")
    created = create_message(
        graphql, session_id, agent_id, 0, message=original, createdAt="2025-06-07T08:09:10.111213+00:00"
    )
    redaction = user_message("[User input redacted.]")
    update = message_input(
        0, message=original, redactMessage=redaction, createdAt="2031-01-01T00:00:00+00:00"
    )

    updated = data_of(
        graphql(UPDATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": update})
    )["updateMessage"]

    assert updated["redactMessage"] == redaction
    assert updated["message"] == original
    assert updated["createdAt"] == created["createdAt"] == "2025-06-07T08:09:10.111213+00:00"
    assert get_message(graphql, session_id, agent_id, 0) == updated


def test_update_message_replaces_content_and_role(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    create_message(graphql, session_id, agent_id, 0, message=user_message("before"))
    update = message_input(0, message=user_message("after", role="assistant"))

    updated = data_of(
        graphql(UPDATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": update})
    )["updateMessage"]

    assert updated["message"] == user_message("after", role="assistant")
    assert updated["role"] == "assistant"
    assert get_message(graphql, session_id, agent_id, 0)["role"] == "assistant"


def test_update_message_stores_given_updated_at(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0])
    update = message_input(0, updatedAt="2033-03-03T03:03:03.030303+00:00")

    updated = data_of(
        graphql(UPDATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": update})
    )["updateMessage"]

    assert updated["updatedAt"] == "2033-03-03T03:03:03.030303+00:00"


def test_update_message_defaults_updated_at_to_now(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    create_message(graphql, session_id, agent_id, 0, createdAt="2020-01-01T00:00:00+00:00")
    before = datetime.now(UTC)

    variables = {"sessionId": session_id, "agentId": agent_id, "message": message_input(0)}
    updated = data_of(graphql(UPDATE_MESSAGE, variables))["updateMessage"]

    assert before - timedelta(seconds=5) <= parse_time(updated["updatedAt"]) <= datetime.now(UTC)
    assert updated["createdAt"] == "2020-01-01T00:00:00+00:00"


async def test_update_missing_message_is_not_found_and_creates_nothing(
    graphql: GraphQLCall, new_id: NewId, database_url: str
) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0])

    missing_message = graphql(
        UPDATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": message_input(1)}
    )
    missing_agent = graphql(
        UPDATE_MESSAGE, {"sessionId": session_id, "agentId": new_id("missing"), "message": message_input(0)}
    )

    assert_error(missing_message, "NOT_FOUND")
    assert_error(missing_agent, "NOT_FOUND")
    rows = await table_rows(
        database_url, "SELECT * FROM session_messages WHERE session_id = :sid", sid=session_id
    )
    assert [row["message_id"] for row in rows] == [0]


def test_delete_message_removes_only_that_message(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0, 1, 2])

    body = graphql(DELETE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "messageId": 1})

    assert data_of(body) == {"deleteMessage": True}
    assert get_message(graphql, session_id, agent_id, 1) is None
    assert stored_message_ids(graphql, session_id, agent_id) == [0, 2]


def test_delete_missing_message_is_not_found(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0])
    data_of(graphql(DELETE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "messageId": 0}))

    again = graphql(DELETE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "messageId": 0})
    missing_agent = graphql(DELETE_MESSAGE, {"sessionId": session_id, "agentId": new_id("x"), "messageId": 0})

    assert_error(again, "NOT_FOUND")
    assert_error(missing_agent, "NOT_FOUND")


def test_message_agent_is_its_parent_agent(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0, 1])

    variables = {"sessionId": session_id, "agentId": agent_id, "messageId": 1}
    message = data_of(graphql(MESSAGE_AGENT, variables))["message"]

    assert message == {
        "messageId": 1,
        "agent": {"sessionId": session_id, "agentId": agent_id, "messageCount": 2},
    }


def test_message_count_follows_creates_and_deletes(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    assert stored_message_ids(graphql, session_id, agent_id) == []

    append_messages(graphql, session_id, agent_id, [message_input(i) for i in range(5)])
    create_message(graphql, session_id, agent_id, 7)
    data_of(graphql(DELETE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "messageId": 3}))

    assert stored_message_ids(graphql, session_id, agent_id) == [0, 1, 2, 4, 7]


# --- Agent.messages(offset, limit) ---


def test_messages_are_ordered_by_numeric_message_id(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [2, 10, 1])

    assert window(graphql, session_id, agent_id, 0, None) == [1, 2, 10]


def test_messages_offset_and_limit_are_positions_not_ids(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0, 3, 5, 9, 20])

    assert window(graphql, session_id, agent_id, 1, 2) == [3, 5]
    assert window(graphql, session_id, agent_id, 3, None) == [9, 20]
    assert window(graphql, session_id, agent_id, 4, 100) == [20]


def test_messages_limit_zero_is_empty(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0, 1])

    assert window(graphql, session_id, agent_id, 0, 0) == []


def test_messages_offset_past_the_end_is_empty(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0, 1])

    assert window(graphql, session_id, agent_id, 2, None) == []
    assert window(graphql, session_id, agent_id, 1000, 5) == []


def test_messages_default_to_all_messages(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [1, 0])
    query = """
    query($sessionId: String!, $agentId: String!) {
      agent(sessionId: $sessionId, agentId: $agentId) { messages { messageId message } }
    }
    """

    agent = data_of(graphql(query, {"sessionId": session_id, "agentId": agent_id}))["agent"]

    assert agent["messages"] == [
        {"messageId": 0, "message": user_message("message 0")},
        {"messageId": 1, "message": user_message("message 1")},
    ]


@pytest.mark.parametrize(("offset", "limit", "field"), [(-1, None, "offset"), (0, -1, "limit")])
def test_messages_negative_offset_or_limit_is_bad_user_input(
    graphql: GraphQLCall, new_id: NewId, offset: int, limit: int | None, field: str
) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0])
    variables = {"sessionId": session_id, "agentId": agent_id, "offset": offset, "limit": limit}

    assert_error(graphql(MESSAGES_WINDOW, variables), "BAD_USER_INPUT", field=field)


# --- Agent.messagesConnection(first, after) ---


def test_messages_connection_pages_through_all_messages(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [6, 0, 4, 1, 5, 2, 3])

    pages = []
    after = None
    while True:
        page = messages_page(graphql, session_id, agent_id, 3, after)
        pages.append([node["messageId"] for node in page["nodes"]])
        assert [edge["node"]["messageId"] for edge in page["edges"]] == pages[-1]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    assert pages == [[0, 1, 2], [3, 4, 5], [6]]
    assert page["edges"][0]["node"]["message"] == user_message("message 6")
    past_the_end = messages_page(graphql, session_id, agent_id, 3, page["pageInfo"]["endCursor"])
    assert past_the_end == {"edges": [], "nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


def test_messages_connection_exact_last_page_has_no_next_page(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0, 1, 2, 3])

    first = messages_page(graphql, session_id, agent_id, 2)
    second = messages_page(graphql, session_id, agent_id, 2, first["pageInfo"]["endCursor"])

    assert [n["messageId"] for n in first["nodes"]] == [0, 1]
    assert first["pageInfo"]["hasNextPage"] is True
    assert [n["messageId"] for n in second["nodes"]] == [2, 3]
    assert second["pageInfo"]["hasNextPage"] is False


def test_messages_connection_orders_numerically(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [2, 10, 1])

    page = messages_page(graphql, session_id, agent_id, 50)

    assert [node["messageId"] for node in page["nodes"]] == [1, 2, 10]
    assert page["pageInfo"]["hasNextPage"] is False


def test_messages_connection_cursor_survives_deleting_its_message(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0, 1, 2, 3])
    first = messages_page(graphql, session_id, agent_id, 2)
    data_of(graphql(DELETE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "messageId": 1}))

    second = messages_page(graphql, session_id, agent_id, 2, first["pageInfo"]["endCursor"])

    assert [node["messageId"] for node in second["nodes"]] == [2, 3]


def test_messages_connection_of_agent_without_messages_is_empty(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)

    page = messages_page(graphql, session_id, agent_id, 10)

    assert page == {"edges": [], "nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "%%%",
        "",
        _cursor("message:-1"),
        _cursor("message:1.5"),
        _cursor("message:"),
        _cursor('session:["2026-01-01T00:00:00+00:00", "s"]'),
    ],
)
def test_messages_connection_invalid_cursor_is_bad_user_input(
    graphql: GraphQLCall, new_id: NewId, cursor: str
) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0])
    variables = {"sessionId": session_id, "agentId": agent_id, "first": 5, "after": cursor}

    assert_error(graphql(MESSAGES_PAGE, variables), "BAD_USER_INPUT", field="after")


def test_messages_connection_cursor_beyond_integer_range_is_bad_user_input(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = agent_with_messages(graphql, new_id, [0])
    variables = {
        "sessionId": session_id,
        "agentId": agent_id,
        "first": 5,
        "after": _cursor("message:99999999999"),
    }

    assert_error(graphql(MESSAGES_PAGE, variables), "BAD_USER_INPUT", field="after")


@pytest.mark.parametrize("first", [-1, 1001])
def test_messages_connection_page_size_out_of_range_is_bad_user_input(
    graphql: GraphQLCall, new_id: NewId, first: int
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    variables = {"sessionId": session_id, "agentId": agent_id, "first": first}

    assert_error(graphql(MESSAGES_PAGE, variables), "BAD_USER_INPUT", field="first")
