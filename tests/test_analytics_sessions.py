"""Running totals, activity times, labels and titles of sessions and agents, as writes move them."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api_calls import (
    APPEND_MESSAGES,
    CREATE_AGENT,
    CREATE_MESSAGE,
    CREATE_MULTI_AGENT,
    DELETE_AGENT,
    DELETE_MESSAGE,
    DELETE_MULTI_AGENT,
    UPDATE_AGENT,
    UPDATE_MESSAGE,
    UPDATE_MULTI_AGENT,
    GraphQLCall,
    NewId,
    agent_input,
    append_messages,
    assert_error,
    create_agent,
    create_session,
    data_of,
    parse_time,
)
from tests.strands_messages import ask, assistant, at, tool_results, user

TOTALS = "totals { messages inputTokens outputTokens totalTokens cacheReadTokens toolCalls toolErrors }"
STATE = f"""
query($s: String!) {{
  session(sessionId: $s) {{
    createdAt updatedAt lastActivityAt messageCount labels title {TOTALS}
    agents {{ agentId updatedAt lastActivityAt messageCount {TOTALS} }}
  }}
  toolStats(filter: {{sessionId: $s}}) {{ name calls errors }}
}}
"""
UPDATE_SESSION = """
mutation($s: String!, $labels: JSON, $title: String) {
  updateSession(sessionId: $s, labels: $labels, title: $title) {
    sessionId labels title updatedAt lastActivityAt
  }
}
"""
LONG_AGO = "2020-01-01T00:00:00+00:00"


def state(graphql: GraphQLCall, session_id: str) -> dict[str, Any]:
    return ask(graphql, STATE, s=session_id)


def totals(
    messages: int, tokens: tuple[int, int, int, int] = (0, 0, 0, 0), calls: int = 0, errors: int = 0
) -> dict[str, int]:
    """``tokens``: input, output, total and cache-read tokens."""
    names = ("inputTokens", "outputTokens", "totalTokens", "cacheReadTokens")
    return {
        "messages": messages,
        **dict(zip(names, tokens, strict=True)),
        "toolCalls": calls,
        "toolErrors": errors,
    }


def two_agent_session(graphql: GraphQLCall, new_id: NewId) -> str:
    """planner: a tool turn that fails (4 messages); critic: one answer (2 messages)."""
    session_id = new_id("totals")
    create_session(graphql, session_id)
    create_agent(graphql, session_id, "planner")
    create_agent(graphql, session_id, "critic")
    append_messages(
        graphql,
        session_id,
        "planner",
        [
            at(0, user("book a table")),
            at(
                1,
                assistant(
                    "checking",
                    tools=[("p-1", "book", {})],
                    usage=(100, 20, 120),
                    cache=(30, 5),
                    latency_ms=10,
                ),
            ),
            at(2, tool_results(("p-1", "error"))),
            at(3, assistant("it failed", usage=(150, 10, 160), latency_ms=20)),
        ],
    )
    append_messages(
        graphql, session_id, "critic", [at(0, user("review")), at(1, assistant("fine", usage=(7, 3, 10)))]
    )
    return session_id


def test_totals_add_up_each_agents_messages_and_the_session_adds_up_its_agents(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = two_agent_session(graphql, new_id)

    session = state(graphql, session_id)["session"]

    planner, critic = session["agents"]
    assert planner["totals"] == totals(4, (250, 30, 280, 30), calls=1, errors=1)
    assert critic["totals"] == totals(2, (7, 3, 10, 0))
    assert session["totals"] == totals(6, (257, 33, 290, 30), calls=1, errors=1)
    assert (session["messageCount"], planner["messageCount"], critic["messageCount"]) == (6, 4, 2)


def test_resending_a_stored_message_changes_no_total(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = two_agent_session(graphql, new_id)
    before = state(graphql, session_id)
    again = at(1, assistant("fine", usage=(7, 3, 10)))

    data_of(graphql(CREATE_MESSAGE, {"sessionId": session_id, "agentId": "critic", "message": again}))
    append_messages(graphql, session_id, "critic", [again])

    assert state(graphql, session_id) == before


def test_redaction_takes_tool_calls_off_the_totals_but_keeps_the_tokens_of_the_model_call(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = two_agent_session(graphql, new_id)
    original = assistant(
        "checking", tools=[("p-1", "book", {})], usage=(100, 20, 120), cache=(30, 5), latency_ms=10
    )
    redacted = {
        "messageId": 1,
        "message": original,
        "redactMessage": {"role": "assistant", "content": [{"text": "[redacted]"}]},
    }

    data_of(graphql(UPDATE_MESSAGE, {"sessionId": session_id, "agentId": "planner", "message": redacted}))

    session = state(graphql, session_id)["session"]
    assert session["agents"][0]["totals"] == totals(4, (250, 30, 280, 30), calls=0, errors=1)
    assert session["totals"] == totals(6, (257, 33, 290, 30), calls=0, errors=1)


def test_redacting_a_tool_result_takes_its_error_out_of_tool_stats_as_out_of_the_totals(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = two_agent_session(graphql, new_id)
    redacted = {
        "messageId": 2,
        "message": tool_results(("p-1", "error")),
        "redactMessage": {"role": "user", "content": [{"text": "[User input redacted.]"}]},
    }

    data_of(graphql(UPDATE_MESSAGE, {"sessionId": session_id, "agentId": "planner", "message": redacted}))

    found = state(graphql, session_id)
    assert found["session"]["totals"]["toolErrors"] == 0
    assert found["toolStats"] == [{"name": "book", "calls": 1, "errors": 0}]


def test_redacting_a_tool_call_takes_it_out_of_tool_stats_and_undoing_it_brings_back_its_error(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = two_agent_session(graphql, new_id)
    original = at(
        1,
        assistant(
            "checking", tools=[("p-1", "book", {})], usage=(100, 20, 120), cache=(30, 5), latency_ms=10
        ),
    )
    redacted = {**original, "redactMessage": {"role": "assistant", "content": [{"text": "[redacted]"}]}}
    update = {"sessionId": session_id, "agentId": "planner"}

    data_of(graphql(UPDATE_MESSAGE, {**update, "message": redacted}))
    hidden = state(graphql, session_id)
    data_of(graphql(UPDATE_MESSAGE, {**update, "message": original}))
    shown = state(graphql, session_id)

    # The call's result (message 2, an error) stays recorded while the call is hidden.
    assert hidden["toolStats"] == []
    assert shown["toolStats"] == [{"name": "book", "calls": 1, "errors": 1}]
    assert shown["session"]["totals"] == totals(6, (257, 33, 290, 30), calls=1, errors=1)


def test_deleting_messages_takes_them_off_the_totals_and_tool_stats(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = two_agent_session(graphql, new_id)
    assert state(graphql, session_id)["toolStats"] == [{"name": "book", "calls": 1, "errors": 1}]
    failed = "query($s: String!) { messages(filter: {sessionId: $s, toolStatus: ERROR}) { totalCount } }"
    assert ask(graphql, failed, s=session_id)["messages"]["totalCount"] == 1

    data_of(graphql(DELETE_MESSAGE, {"sessionId": session_id, "agentId": "planner", "messageId": 2}))
    found = state(graphql, session_id)
    assert found["session"]["totals"] == totals(5, (257, 33, 290, 30), calls=1, errors=0)
    assert ask(graphql, failed, s=session_id)["messages"]["totalCount"] == 0
    # the call is open again: no result, so no error
    assert found["toolStats"] == [{"name": "book", "calls": 1, "errors": 0}]

    data_of(graphql(DELETE_MESSAGE, {"sessionId": session_id, "agentId": "planner", "messageId": 1}))
    found = state(graphql, session_id)
    assert found["session"]["agents"][0]["totals"] == totals(2, (150, 10, 160, 0))
    assert found["session"]["totals"] == totals(4, (157, 13, 170, 0))
    assert found["toolStats"] == []


def test_deleting_an_agent_takes_its_totals_off_the_session(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = two_agent_session(graphql, new_id)
    before = state(graphql, session_id)["session"]

    data_of(graphql(DELETE_AGENT, {"sessionId": session_id, "agentId": "planner"}))

    session = state(graphql, session_id)["session"]
    assert [agent["agentId"] for agent in session["agents"]] == ["critic"]
    assert session["totals"] == session["agents"][0]["totals"] == totals(2, (7, 3, 10, 0))
    assert session["messageCount"] == 2
    assert parse_time(session["updatedAt"]) > parse_time(before["updatedAt"])
    assert parse_time(session["lastActivityAt"]) > parse_time(before["lastActivityAt"])
    assert state(graphql, session_id)["toolStats"] == []


def test_every_write_inside_a_session_moves_its_updated_at_and_last_activity_at(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("activity")
    created = create_session(graphql, session_id, createdAt=LONG_AGO, updatedAt=LONG_AGO)
    seen = state(graphql, session_id)["session"]
    assert seen["updatedAt"] == seen["lastActivityAt"] == LONG_AGO
    s = {"sessionId": session_id}
    multi_agent = {"multiAgentId": "swarm", "state": {"step": 1}}
    writes: list[tuple[str, dict[str, Any]]] = [
        (CREATE_AGENT, {**s, "agent": agent_input("a", createdAt=LONG_AGO, updatedAt=LONG_AGO)}),
        (UPDATE_AGENT, {**s, "agent": agent_input("a", state={"k": 1})}),
        (APPEND_MESSAGES, {**s, "agentId": "a", "messages": [at(0, user("hi"))]}),
        (CREATE_MESSAGE, {**s, "agentId": "a", "message": at(1, user("yo"))}),
        (UPDATE_MESSAGE, {**s, "agentId": "a", "message": at(1, user("hey"))}),
        (DELETE_MESSAGE, {**s, "agentId": "a", "messageId": 1}),
        (CREATE_MULTI_AGENT, {**s, "multiAgent": multi_agent}),
        (UPDATE_MULTI_AGENT, {**s, "multiAgent": {**multi_agent, "state": {}}}),
        (DELETE_MULTI_AGENT, {**s, "multiAgentId": "swarm"}),
        (DELETE_AGENT, {**s, "agentId": "a"}),
    ]
    for document, variables in writes:
        started = datetime.now(UTC) - timedelta(seconds=1)
        data_of(graphql(document, variables))
        now = state(graphql, session_id)["session"]
        for field in ("updatedAt", "lastActivityAt"):
            assert parse_time(now[field]) > max(parse_time(seen[field]), started), (document, field, now)
        assert now["createdAt"] == created["createdAt"] == LONG_AGO, document
        seen = now


def test_message_writes_move_the_agents_last_activity_at_but_not_its_updated_at(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("activity")
    create_session(graphql, session_id)
    create_agent(graphql, session_id, "a", updatedAt=LONG_AGO, createdAt=LONG_AGO)
    (agent,) = state(graphql, session_id)["session"]["agents"]
    assert agent["lastActivityAt"] == agent["updatedAt"] == LONG_AGO

    append_messages(graphql, session_id, "a", [at(0, user("hi"))])
    (after_append,) = state(graphql, session_id)["session"]["agents"]
    data_of(graphql(DELETE_MESSAGE, {"sessionId": session_id, "agentId": "a", "messageId": 0}))
    (after_delete,) = state(graphql, session_id)["session"]["agents"]

    assert (
        after_append["updatedAt"] == after_delete["updatedAt"] == LONG_AGO
    )  # the agent's state is as it was
    assert (
        parse_time(LONG_AGO)
        < parse_time(after_append["lastActivityAt"])
        < parse_time(after_delete["lastActivityAt"])
    )


# --- labels and title ---


def test_create_session_stores_labels_and_title(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = new_id("labels")
    create_session(graphql, session_id, labels={"user": "ana", "channel": "web"}, title="Refund for order 42")

    session = state(graphql, session_id)["session"]

    assert (session["labels"], session["title"]) == ({"user": "ana", "channel": "web"}, "Refund for order 42")
    bare = new_id("labels")
    create_session(graphql, bare)
    assert (state(graphql, bare)["session"]["labels"], state(graphql, bare)["session"]["title"]) == ({}, None)


def test_update_session_changes_what_it_is_given_and_keeps_the_rest(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("labels")
    create_session(
        graphql, session_id, labels={"user": "ana"}, title="first", createdAt=LONG_AGO, updatedAt=LONG_AGO
    )

    def update(**changes: Any) -> dict[str, Any]:
        updated: dict[str, Any] = ask(graphql, UPDATE_SESSION, s=session_id, **changes)["updateSession"]
        return updated

    labels_only = update(labels={"user": "bo", "channel": "phone"})
    assert (labels_only["labels"], labels_only["title"]) == ({"user": "bo", "channel": "phone"}, "first")
    assert parse_time(labels_only["updatedAt"]) > parse_time(LONG_AGO)

    title_only = update(title="second")
    assert (title_only["labels"], title_only["title"]) == ({"user": "bo", "channel": "phone"}, "second")
    assert parse_time(title_only["updatedAt"]) > parse_time(labels_only["updatedAt"])

    both = update(labels={"team": "billing"}, title="third")
    assert (both["labels"], both["title"]) == (
        {"team": "billing"},
        "third",
    )  # labels are replaced, not merged

    cleared = update(labels={})
    assert (cleared["labels"], cleared["title"]) == ({}, "third")
    untitled = update(title="")
    assert (untitled["labels"], untitled["title"]) == ({}, None)
    session = state(graphql, session_id)["session"]
    assert (session["labels"], session["title"], session["updatedAt"]) == ({}, None, untitled["updatedAt"])
    # relabelling is not activity: "recent sessions" stay ordered by their conversations
    assert session["lastActivityAt"] == LONG_AGO


BAD_LABELS: list[tuple[Any, str]] = [
    ("ana", "labels"),
    (["user", "ana"], "labels"),
    ({"user": 1}, "labels.user"),
    ({"user": None}, "labels.user"),
    ({"user": {"name": "ana"}}, "labels.user"),
    ({f"k{i}": "v" for i in range(33)}, "labels"),
    ({"k" * 65: "v"}, "labels"),
    ({"": "v"}, "labels"),
    ({"has space": "v"}, "labels"),
    ({"user": "v" * 257}, "labels.user"),
    ({"user": "a\x00b"}, "labels.user"),
]
BAD_LABEL_IDS = [
    "string",
    "list",
    "number",
    "null",
    "object",
    "33-labels",
    "65-char-name",
    "empty-name",
    "space-in-name",
    "257-char-value",
    "nul-in-value",
]


@pytest.mark.parametrize(("labels", "field"), BAD_LABELS, ids=BAD_LABEL_IDS)
def test_invalid_labels_are_refused_and_change_nothing(
    graphql: GraphQLCall, new_id: NewId, labels: Any, field: str
) -> None:
    session_id = new_id("labels")
    create_session(graphql, session_id, labels={"user": "ana"}, title="kept")
    before = state(graphql, session_id)["session"]

    assert_error(
        graphql(UPDATE_SESSION, {"s": session_id, "labels": labels, "title": "changed"}),
        "BAD_USER_INPUT",
        field,
    )
    assert state(graphql, session_id)["session"] == before

    refused = new_id("labels")
    body = graphql(
        "mutation($s: SessionInput!) { createSession(session: $s) { sessionId } }",
        {"s": {"sessionId": refused, "labels": labels}},
    )
    assert_error(body, "BAD_USER_INPUT", f"session.{field}")
    assert (
        ask(graphql, "query($s: String!) { session(sessionId: $s) { sessionId } }", s=refused)["session"]
        is None
    )

    listed = graphql(
        "query($l: JSON) { sessions(filter: {labels: $l}) { nodes { sessionId } } }", {"l": labels}
    )
    assert_error(listed, "BAD_USER_INPUT", f"filter.{field}")


def test_labels_at_the_limits_are_accepted(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = new_id("labels")
    labels = {f"k{i}": "v" for i in range(30)} | {"n" * 64: "v" * 256, "a.b-c_d": "ünïcödé"}
    assert len(labels) == 32

    updated = ask(graphql, UPDATE_SESSION, s=create_session(graphql, session_id)["sessionId"], labels=labels)

    assert updated["updateSession"]["labels"] == labels


def test_a_title_too_long_is_refused_and_changes_nothing(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id = new_id("labels")
    create_session(graphql, session_id, title="kept")
    before = state(graphql, session_id)["session"]

    assert_error(graphql(UPDATE_SESSION, {"s": session_id, "title": "t" * 501}), "BAD_USER_INPUT", "title")
    assert state(graphql, session_id)["session"] == before
    assert ask(graphql, UPDATE_SESSION, s=session_id, title="t" * 500)["updateSession"]["title"] == "t" * 500


def test_update_session_of_a_missing_session_is_not_found(graphql: GraphQLCall, new_id: NewId) -> None:
    missing = new_id("labels")

    assert_error(graphql(UPDATE_SESSION, {"s": missing, "title": "x"}), "NOT_FOUND")
    assert_error(graphql(UPDATE_SESSION, {"s": missing, "labels": {"user": "ana"}}), "NOT_FOUND")
    assert (
        ask(graphql, "query($s: String!) { session(sessionId: $s) { sessionId } }", s=missing)["session"]
        is None
    )
