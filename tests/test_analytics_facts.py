"""What the API derives from a Strands message when it is written or redacted: its text, content
types, tool calls and results, token usage and latency, and whether a guardrail redacted it.

The last test drives a real Strands agent (the fake model, a real tool) through the client and
checks the derived numbers against the messages Strands itself wrote.
"""

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from strands import Agent, tool
from strands.session import RepositorySessionManager

from client import GraphQLSessionRepository
from tests.api_calls import (
    CREATE_MESSAGE,
    UPDATE_MESSAGE,
    GraphQLCall,
    NewId,
    append_messages,
    data_of,
    new_agent,
)
from tests.client_agent_script import remember
from tests.conftest import RunningServer
from tests.fake_model import FakeModel
from tests.strands_messages import ask, assistant, at, tool_results, user

FACTS = """
  messageId text contentTypes isRedacted latencyMs timeToFirstByteMs message redactMessage effectiveMessage
  toolCalls { toolUseId name input }
  toolResults { toolUseId status }
  usage { inputTokens outputTokens totalTokens cacheReadInputTokens cacheWriteInputTokens }
"""
READ_MESSAGE = f"""
query($s: String!, $a: String!, $m: Int!) {{
  message(sessionId: $s, agentId: $a, messageId: $m) {{ {FACTS} }}
}}
"""
APPEND_WITH_FACTS = f"""
mutation($s: String!, $a: String!, $messages: [MessageInput!]!) {{
  appendMessages(sessionId: $s, agentId: $a, messages: $messages) {{ {FACTS} }}
}}
"""


def read_message(graphql: GraphQLCall, session_id: str, agent_id: str, message_id: int) -> dict[str, Any]:
    found: dict[str, Any] = ask(graphql, READ_MESSAGE, s=session_id, a=agent_id, m=message_id)["message"]
    return found


def test_assistant_message_facts_come_from_its_blocks_and_metadata(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    message = assistant(
        "Let me look that up.",
        tools=[("t-1", "lookup", {"order": 42}), ("t-2", "weather", {"city": "Porto"})],
        usage=(100, 20, 120),
        cache=(30, 7),
        latency_ms=250,
        first_byte_ms=80.6,
    )
    data_of(
        graphql(CREATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": at(0, message)})
    )

    facts = read_message(graphql, session_id, agent_id, 0)

    assert facts["text"] == "Let me look that up."
    assert facts["contentTypes"] == ["text", "toolUse"]
    assert facts["toolCalls"] == [
        {"toolUseId": "t-1", "name": "lookup", "input": {"order": 42}},
        {"toolUseId": "t-2", "name": "weather", "input": {"city": "Porto"}},
    ]
    assert facts["toolResults"] == []
    assert facts["usage"] == {
        "inputTokens": 100,
        "outputTokens": 20,
        "totalTokens": 120,
        "cacheReadInputTokens": 30,
        "cacheWriteInputTokens": 7,
    }
    assert (facts["latencyMs"], facts["timeToFirstByteMs"]) == (250, 81)  # whole milliseconds
    assert facts["isRedacted"] is False
    assert facts["redactMessage"] is None
    assert facts["effectiveMessage"] == facts["message"] == message


def test_tool_result_message_carries_each_status_and_its_text(graphql: GraphQLCall, new_id: NewId) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    answer = tool_results(("t-1", "success"), ("t-2", "error"), said="the database is down")
    data_of(graphql(CREATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": at(0, answer)}))

    facts = read_message(graphql, session_id, agent_id, 0)

    assert facts["toolResults"] == [
        {"toolUseId": "t-1", "status": "success"},
        {"toolUseId": "t-2", "status": "error"},
    ]
    assert facts["contentTypes"] == ["toolResult"]
    assert facts["toolCalls"] == []
    assert facts["text"] == "the database is down\nthe database is down"
    assert (facts["usage"], facts["latencyMs"], facts["timeToFirstByteMs"]) == (None, None, None)


def test_every_block_kind_is_listed_once_in_the_order_it_first_appears(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    content = [
        {"reasoningContent": {"reasoningText": {"text": "the user wants a chart"}}},
        {"text": "Here it is."},
        {"image": {"format": "png", "source": {"bytes": {"__bytes_encoded__": True, "data": "iVBORw=="}}}},
        {"cachePoint": {"type": "default"}},
        {"text": "Anything else?"},
    ]
    message = {"role": "assistant", "content": content}
    data_of(
        graphql(CREATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": at(0, message)})
    )

    facts = read_message(graphql, session_id, agent_id, 0)

    assert facts["contentTypes"] == ["reasoningContent", "text", "image", "cachePoint"]
    assert facts["text"] == "the user wants a chart\nHere it is.\nAnything else?"


def test_usage_without_total_adds_input_and_output_and_missing_counts_are_zero(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    partial = {
        "role": "assistant",
        "content": [{"text": "ok"}],
        "metadata": {"usage": {"inputTokens": 12, "outputTokens": 3}},
    }
    appended = data_of(
        graphql(
            APPEND_WITH_FACTS,
            {"s": session_id, "a": agent_id, "messages": [at(0, user("hi")), at(1, partial)]},
        )
    )["appendMessages"]

    assert [message["usage"] for message in appended] == [
        None,
        {
            "inputTokens": 12,
            "outputTokens": 3,
            "totalTokens": 15,
            "cacheReadInputTokens": 0,
            "cacheWriteInputTokens": 0,
        },
    ]
    # appendMessages answers with the facts that reading the message later gives
    assert [read_message(graphql, session_id, agent_id, i) for i in (0, 1)] == appended


def test_redaction_replaces_text_and_tools_but_keeps_the_usage_of_the_model_call(
    graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id, agent_id = new_agent(graphql, new_id)
    original = assistant(
        "my card is 4111", tools=[("t-1", "charge", {"card": "4111"})], usage=(40, 10, 50), latency_ms=900
    )
    append_messages(graphql, session_id, agent_id, [at(0, original)])
    redaction = {"role": "assistant", "content": [{"text": "[Assistant output redacted.]"}]}

    update = {"messageId": 0, "message": original, "redactMessage": redaction}
    data_of(graphql(UPDATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": update}))
    facts = read_message(graphql, session_id, agent_id, 0)

    assert facts["isRedacted"] is True
    assert facts["text"] == "[Assistant output redacted.]"
    assert facts["contentTypes"] == ["text"]
    assert facts["toolCalls"] == []
    assert facts["effectiveMessage"] == facts["redactMessage"] == redaction
    assert facts["message"] == original
    assert facts["usage"]["totalTokens"] == 50
    assert facts["latencyMs"] == 900

    unredact = {"messageId": 0, "message": original}
    data_of(graphql(UPDATE_MESSAGE, {"sessionId": session_id, "agentId": agent_id, "message": unredact}))
    facts = read_message(graphql, session_id, agent_id, 0)
    assert (facts["isRedacted"], facts["text"], facts["effectiveMessage"]) == (
        False,
        "my card is 4111",
        original,
    )
    assert [call["name"] for call in facts["toolCalls"]] == ["charge"]


@tool
def explode(reason: str) -> str:
    """Always fails, so the conversation holds a tool error.

    Args:
        reason: Why it fails.
    """
    raise RuntimeError(f"boom: {reason}")


AGENT_TOTALS = """
query($s: String!) {
  session(sessionId: $s) {
    messageCount
    totals { messages inputTokens outputTokens totalTokens cacheReadTokens toolCalls toolErrors }
    agents {
      messageCount
      totals { messages inputTokens outputTokens totalTokens cacheReadTokens toolCalls toolErrors }
      messages(limit: 100) { toolCalls { toolUseId name } toolResults { toolUseId status } latencyMs }
    }
  }
  toolStats(filter: {sessionId: $s}) { name calls errors errorRate }
}
"""
AGENT_STATS = """
query($s: String!, $from: Time!, $to: Time!) {
  conversationStats(bucket: DAY, from: $from, to: $to, filter: {sessionId: $s}) {
    totals { messages sessions totalTokens avgLatencyMs toolCalls toolErrors }
  }
}
"""


def test_a_real_agent_with_tools_adds_up_to_what_strands_stored(
    server: RunningServer, graphql: GraphQLCall, new_id: NewId
) -> None:
    session_id = new_id("session")
    manager = RepositorySessionManager(
        session_id=session_id, session_repository=GraphQLSessionRepository(server.url)
    )
    agent = Agent(
        agent_id="support",
        model=FakeModel(),
        tools=[remember, explode],
        session_manager=manager,
        callback_handler=None,
    )
    started = datetime.now(UTC) - timedelta(minutes=1)
    agent("hello")
    agent('use remember {"key": "city", "value": "Lisbon"}')
    agent('use explode {"reason": "test"}')

    # What Strands wrote, read from the agent's own messages
    written = agent.messages
    usages = [m["metadata"]["usage"] for m in written if "usage" in m.get("metadata", {})]
    calls = {
        b["toolUse"]["toolUseId"]: b["toolUse"]["name"]
        for m in written
        for b in m["content"]
        if "toolUse" in b
    }
    results = {
        b["toolResult"]["toolUseId"]: b["toolResult"]["status"]
        for m in written
        for b in m["content"]
        if "toolResult" in b
    }
    expected_totals = {
        "messages": len(written),
        "inputTokens": sum(u["inputTokens"] for u in usages),
        "outputTokens": sum(u["outputTokens"] for u in usages),
        "totalTokens": sum(u["totalTokens"] for u in usages),
        "cacheReadTokens": sum(u.get("cacheReadInputTokens", 0) for u in usages),
        "toolCalls": len(calls),
        "toolErrors": sum(status == "error" for status in results.values()),
    }
    assert (len(written), len(usages), sorted(calls.values())) == (10, 5, ["explode", "remember"])
    assert results == {use_id: "error" if name == "explode" else "success" for use_id, name in calls.items()}

    found = ask(graphql, AGENT_TOTALS, s=session_id)
    session = found["session"]
    (stored,) = session["agents"]
    assert session["totals"] == stored["totals"] == expected_totals
    assert session["messageCount"] == stored["messageCount"] == len(written)
    assert {c["toolUseId"]: c["name"] for m in stored["messages"] for c in m["toolCalls"]} == calls
    assert {r["toolUseId"]: r["status"] for r in results_of(stored["messages"])} == results
    per_tool = Counter(calls.values())
    errors = Counter(calls[use_id] for use_id, status in results.items() if status == "error")
    assert found["toolStats"] == [
        {
            "name": name,
            "calls": per_tool[name],
            "errors": errors[name],
            "errorRate": errors[name] / per_tool[name],
        }
        for name in ("explode", "remember")  # most errors first
    ]

    latencies = [m["metadata"]["metrics"]["latencyMs"] for m in written if "metrics" in m.get("metadata", {})]
    assert [m["latencyMs"] for m in stored["messages"] if m["latencyMs"] is not None] == latencies
    to = datetime.now(UTC) + timedelta(minutes=1)
    stats = ask(graphql, AGENT_STATS, s=session_id, **{"from": started.isoformat(), "to": to.isoformat()})
    assert stats["conversationStats"]["totals"] == {
        "messages": len(written),
        "sessions": 1,
        "totalTokens": expected_totals["totalTokens"],
        "avgLatencyMs": sum(latencies) / len(latencies),
        "toolCalls": len(calls),
        "toolErrors": expected_totals["toolErrors"],
    }


def results_of(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [result for message in messages for result in message["toolResults"]]
