"""Round trips: what a client stores comes back equal after decoding, types included, read in a
later request (so from the database, not from the mutation's own echo)."""

import base64
from datetime import datetime
from typing import Any

import pytest
from strands.types.content import Message
from strands.types.session import SessionMessage

from tests.api_calls import (
    GET_AGENT,
    GET_MESSAGE,
    GET_MULTI_AGENT,
    GET_SESSION,
    GraphQLCall,
    NewId,
    append_messages,
    create_agent,
    create_message,
    create_multi_agent,
    create_session,
    data_of,
    message_input,
    new_agent,
    same_json,
)

JSON_VALUES: dict[str, Any] = {
    "unicode": "héllo wörld — ÆØÅ ß ĳ 中文 日本語 한국어 עברית العربية",
    "emoji": "👩‍👩‍👧‍👦 🇫🇷 🏳️‍🌈 👍🏽 \U0010ffff",
    "NUL alone": "\u0000",
    "NUL inside": "before\u0000after\u0000",
    "NUL in a key": {"a\u0000b": "\u0000"},
    "backslash-u text is not NUL": "\\u0000 and \\n",
    "control characters": "\x01\x07\x1b\x1f\x7f\t\r\n",
    "quotes and backslashes": "\"'\\/`",
    "line and paragraph separators": "\u2028\u2029\ufeff",
    "combining characters": "e\u0301 n\u0303 \u0345",
    "small ints": [0, 1, -1, 2**31 - 1, -(2**31)],
    "big ints": [2**53 + 1, 2**63, -(2**63) - 1, 10**30],
    "floats": [0.1, 1.0, -0.0, 1.5e-300, 5e-324, 1.7976931348623157e308, 123456.789],
    "booleans and null": [True, False, None],
    "nested lists": [[[], [[]]], [1, [2, [3, [4, [5]]]]], [{"a": [{"b": []}]}]],
    "empty containers": {"object": {}, "list": [], "string": ""},
    "deep object": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": "deep"}}}}}}}},
    "many keys": {f"key {i}": i for i in range(200)},
    "bytes envelope": {"__bytes_encoded__": True, "data": base64.b64encode(bytes(range(256))).decode()},
}


def payload(value: Any) -> dict[str, Any]:
    return {"role": "user", "content": [{"value": value}], "value": value}


@pytest.mark.parametrize("value", JSON_VALUES.values(), ids=JSON_VALUES.keys())
def test_message_json_round_trips_exactly(graphql: GraphQLCall, new_id: NewId, value: Any) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    message = payload(value)

    created = create_message(graphql, session_id, agent_id, 0, message=message, redactMessage=message)
    variables = {"sessionId": session_id, "agentId": agent_id, "messageId": 0}
    stored = data_of(graphql(GET_MESSAGE, variables))["message"]

    assert same_json(created["message"], message)
    assert same_json(stored["message"], message)
    assert same_json(stored["redactMessage"], message)


@pytest.mark.parametrize("value", JSON_VALUES.values(), ids=JSON_VALUES.keys())
def test_agent_and_multi_agent_state_round_trip_exactly(
    graphql: GraphQLCall, new_id: NewId, value: Any
) -> None:
    session_id, agent_id, multi_agent_id = new_id("session"), new_id("agent"), new_id("graph")
    create_session(graphql, session_id)
    state = {"value": value}
    create_agent(
        graphql, session_id, agent_id, state=state, conversationManagerState=state, internalState=state
    )
    create_multi_agent(graphql, session_id, multi_agent_id, state=state)

    agent = data_of(graphql(GET_AGENT, {"sessionId": session_id, "agentId": agent_id}))["agent"]
    variables = {"sessionId": session_id, "multiAgentId": multi_agent_id}
    multi_agent = data_of(graphql(GET_MULTI_AGENT, variables))["multiAgent"]

    for stored in (
        agent["state"],
        agent["conversationManagerState"],
        agent["internalState"],
        multi_agent["state"],
    ):
        assert same_json(stored, state)


def test_ints_stay_ints_and_floats_stay_floats(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    numbers = {"int": 1, "float": 1.0, "big": 2**64, "bool": True}
    create_message(graphql, session_id, agent_id, 0, message={"role": "user", **numbers})

    variables = {"sessionId": session_id, "agentId": agent_id, "messageId": 0}
    stored = data_of(graphql(GET_MESSAGE, variables))["message"]["message"]

    assert {key: type(stored[key]) for key in numbers} == {
        "int": int,
        "float": float,
        "big": int,
        "bool": bool,
    }
    assert stored["big"] == 2**64


def test_one_megabyte_message_round_trips(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    text = ("0123456789abcdef€😀\u0000" * 60_000)[:1_100_000]
    message = {"role": "assistant", "content": [{"text": text}]}

    create_message(graphql, session_id, agent_id, 0, message=message)
    append_messages(graphql, session_id, agent_id, [message_input(1, message=message)])
    query = """
    query($sessionId: String!, $agentId: String!) {
      agent(sessionId: $sessionId, agentId: $agentId) { messages { messageId message } }
    }
    """
    messages = data_of(graphql(query, {"sessionId": session_id, "agentId": agent_id}))["agent"]["messages"]

    assert [m["messageId"] for m in messages] == [0, 1]
    assert all(m["message"]["content"][0]["text"] == text for m in messages)
    assert len(text.encode()) > 1_000_000


def test_strands_session_message_with_bytes_round_trips(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    image = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    original: Message = {
        "role": "user",
        "content": [
            {"text": "what is in this picture?"},
            {"image": {"format": "png", "source": {"bytes": image}}},
            {"document": {"format": "txt", "name": "notes", "source": {"bytes": b"line 1\nline 2\x00"}}},
        ],
    }
    session_message = SessionMessage.from_message(original, 0).to_dict()

    create_message(
        graphql,
        session_id,
        agent_id,
        session_message["message_id"],
        message=session_message["message"],
        createdAt=session_message["created_at"],
        updatedAt=session_message["updated_at"],
    )
    variables = {"sessionId": session_id, "agentId": agent_id, "messageId": 0}
    stored = data_of(graphql(GET_MESSAGE, variables))["message"]
    restored = SessionMessage.from_dict(
        {
            "message": stored["message"],
            "message_id": stored["messageId"],
            "redact_message": stored["redactMessage"],
            "created_at": stored["createdAt"],
            "updated_at": stored["updatedAt"],
        }
    )

    assert restored.to_message() == original
    assert stored["createdAt"] == session_message["created_at"]


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-01-02T03:04:05.123456+00:00",
        "2026-01-02T03:04:05.000001+00:00",
        "1999-12-31T23:59:59.999999+00:00",
        "2026-06-30T12:00:00+00:00",
    ],
)
def test_utc_timestamps_come_back_as_the_same_string(
    graphql: GraphQLCall, new_id: NewId, timestamp: str
) -> None:
    session_id, agent_id, multi_agent_id = new_id("session"), new_id("agent"), new_id("swarm")
    times = {"createdAt": timestamp, "updatedAt": timestamp}
    create_session(graphql, session_id, **times)
    # Read before anything is written inside it: a session's updatedAt then moves to that write.
    session = data_of(graphql(GET_SESSION, {"sessionId": session_id}))["session"]
    create_agent(graphql, session_id, agent_id, **times)
    create_message(graphql, session_id, agent_id, 0, **times)
    create_multi_agent(graphql, session_id, multi_agent_id, **times)

    stored = [
        session,
        data_of(graphql(GET_AGENT, {"sessionId": session_id, "agentId": agent_id}))["agent"],
        data_of(graphql(GET_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "messageId": 0}))[
            "message"
        ],
        data_of(graphql(GET_MULTI_AGENT, {"sessionId": session_id, "multiAgentId": multi_agent_id}))[
            "multiAgent"
        ],
    ]

    assert [(s["createdAt"], s["updatedAt"]) for s in stored] == [(timestamp, timestamp)] * 4


@pytest.mark.parametrize(
    "timestamp",
    ["2026-01-02T08:34:05.123456+05:30", "2026-01-01T22:04:05.123456-05:00", "2026-01-02T03:04:05.123456Z"],
)
def test_timestamps_with_other_offsets_keep_the_instant_and_microseconds(
    graphql: GraphQLCall, new_id: NewId, timestamp: str
) -> None:
    session_id = new_id("session")
    create_session(graphql, session_id, createdAt=timestamp, updatedAt="2026-01-02T03:04:05.654321+00:00")

    stored = data_of(graphql(GET_SESSION, {"sessionId": session_id}))["session"]

    assert datetime.fromisoformat(stored["createdAt"]) == datetime.fromisoformat(timestamp)
    assert datetime.fromisoformat(stored["createdAt"]).microsecond == 123456
    assert datetime.fromisoformat(stored["createdAt"]).utcoffset() is not None
    assert stored["updatedAt"] == "2026-01-02T03:04:05.654321+00:00"


@pytest.mark.parametrize(
    "identifier",
    [
        "with spaces",
        "ünïcödé-日本",
        "emoji-🤖",
        "quote'\"",
        "percent%20and?query#frag",
        "dots.and:colons",
        "x",
    ],
)
def test_unusual_but_valid_ids_round_trip(graphql: GraphQLCall, new_id: NewId, identifier: str) -> None:
    session_id = new_id("session") + identifier

    create_session(graphql, session_id)
    create_agent(graphql, session_id, identifier)
    create_multi_agent(graphql, session_id, identifier)

    agent = data_of(graphql(GET_AGENT, {"sessionId": session_id, "agentId": identifier}))["agent"]
    assert (agent["sessionId"], agent["agentId"]) == (session_id, identifier)
    variables = {"sessionId": session_id, "multiAgentId": identifier}
    assert data_of(graphql(GET_MULTI_AGENT, variables))["multiAgent"]["multiAgentId"] == identifier


def test_json_written_inline_in_the_document_round_trips(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    document = f"""
    mutation {{
      createMessage(sessionId: "{session_id}", agentId: "{agent_id}", message: {{
        messageId: 0,
        message: {{
          role: "user", content: [{{text: "inline \\u00e9 \\u0000"}}], n: 1, f: 1.5, b: true, z: null
        }}
      }}) {{ messageId }}
    }}
    """
    data_of(graphql(document))

    stored = data_of(graphql(GET_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "messageId": 0}))[
        "message"
    ]

    expected = {
        "role": "user",
        "content": [{"text": "inline é \u0000"}],
        "n": 1,
        "f": 1.5,
        "b": True,
        "z": None,
    }
    assert same_json(stored["message"], expected)
