"""Strands-shaped messages and small readers, shared by the analytics tests (``test_analytics_*.py``).

The messages carry what Strands writes: text and tool blocks, and on assistant messages
``metadata.usage`` and ``metadata.metrics``. Every test confines what it reads to its own rows
with a unique ``sessionIdPrefix`` (or session id), since the suite shares one database.
"""

import math
from collections.abc import Sequence
from typing import Any

from tests.api_calls import GraphQLCall, append_messages, create_agent, create_session, data_of


def ask(graphql: GraphQLCall, query: str, **variables: Any) -> dict[str, Any]:
    """The data of a request that must succeed."""
    return data_of(graphql(query, variables))


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def assistant(
    text: str | None = None,
    *,
    tools: Sequence[tuple[str, str, Any]] = (),
    usage: tuple[int, int, int] | None = None,
    cache: tuple[int, int] = (0, 0),
    latency_ms: float | None = None,
    first_byte_ms: float | None = None,
) -> dict[str, Any]:
    """An assistant message: its text, then its tool calls ``(toolUseId, name, input)``.

    ``usage`` is (input, output, total) tokens, ``cache`` (cacheRead, cacheWrite) tokens.
    """
    content: list[dict[str, Any]] = [] if text is None else [{"text": text}]
    content += [{"toolUse": {"toolUseId": i, "name": name, "input": given}} for i, name, given in tools]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    metadata: dict[str, Any] = {}
    if usage is not None:
        metadata["usage"] = {"inputTokens": usage[0], "outputTokens": usage[1], "totalTokens": usage[2]}
        if cache != (0, 0):
            metadata["usage"] |= {"cacheReadInputTokens": cache[0], "cacheWriteInputTokens": cache[1]}
    metrics = {
        name: value
        for name, value in (("latencyMs", latency_ms), ("timeToFirstByteMs", first_byte_ms))
        if value is not None
    }
    if metrics:
        metadata["metrics"] = metrics
    if metadata:
        message["metadata"] = metadata
    return message


def tool_results(*results: tuple[str, str], said: str = "done") -> dict[str, Any]:
    """A user message answering tool calls: ``(toolUseId, "success" | "error")`` each."""
    return {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": i, "status": status, "content": [{"text": said}]}}
            for i, status in results
        ],
    }


def at(message_id: int, message: dict[str, Any], created_at: str | None = None) -> dict[str, Any]:
    """A MessageInput; ``created_at`` (ISO 8601) places it in a known statistics bucket."""
    found: dict[str, Any] = {"messageId": message_id, "message": message}
    if created_at is not None:
        found["createdAt"] = created_at
    return found


def conversation(
    graphql: GraphQLCall,
    session_id: str,
    agent_id: str,
    messages: Sequence[dict[str, Any]],
    **session_fields: Any,
) -> None:
    """A new session with one agent holding ``messages`` (MessageInputs)."""
    create_session(graphql, session_id, **session_fields)
    create_agent(graphql, session_id, agent_id)
    if messages:
        append_messages(graphql, session_id, agent_id, list(messages))


def percentile_cont(values: Sequence[float], fraction: float) -> float:
    """PostgreSQL's ``percentile_cont``: interpolated between the two nearest of the sorted values."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])
