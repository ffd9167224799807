"""What dashboards need to know of a Strands message, read once from its blocks when it is written.

The facts go into columns of ``session_messages`` (and ``session_tool_calls``), so that filters and
aggregates never parse JSON when they are read. The GraphQL ``Message`` fields use the same
functions on the stored JSON, so what a client reads agrees with what it filtered on.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

TEXT_LIMIT = 100_000
"""Characters of a message's text kept for search: PostgreSQL's tsvector holds at most 1 MB."""

CONTENT_TYPES = (
    "text",
    "toolUse",
    "toolResult",
    "reasoningContent",
    "image",
    "document",
    "video",
    "cachePoint",
    "guardContent",
    "citationsContent",
)
"""The block kinds Strands knows; a block of any other kind counts under its own key."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    tool_use_id: str
    name: str
    input: Any


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_use_id: str
    status: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int


@dataclass(frozen=True, slots=True)
class MessageFacts:
    text: str
    content_types: list[str]
    tool_calls: list[ToolCall]
    tool_results: list[ToolResult]
    usage: Usage | None
    latency_ms: int | None
    time_to_first_byte_ms: int | None
    is_redacted: bool

    @property
    def tool_names(self) -> list[str]:
        return [call.name for call in self.tool_calls]

    @property
    def tool_statuses(self) -> list[str]:
        return sorted({result.status for result in self.tool_results})

    @property
    def tool_errors(self) -> int:
        return sum(result.status == "error" for result in self.tool_results)


def _blocks(message: Any) -> Iterator[Mapping[str, Any]]:
    content = message.get("content") if isinstance(message, Mapping) else None
    if isinstance(content, list):
        yield from (block for block in content if isinstance(block, Mapping))


def _texts(block: Mapping[str, Any]) -> Iterator[str]:
    """The human-readable text a block carries (reasoning and tool results included)."""
    if isinstance(block.get("text"), str):
        yield block["text"]
    reasoning = block.get("reasoningContent")
    if isinstance(reasoning, Mapping):
        inner = reasoning.get("reasoningText")
        if isinstance(inner, Mapping) and isinstance(inner.get("text"), str):
            yield inner["text"]
    result = block.get("toolResult")
    if isinstance(result, Mapping) and isinstance(result.get("content"), list):
        for item in result["content"]:
            if isinstance(item, Mapping) and isinstance(item.get("text"), str):
                yield item["text"]
    guard = block.get("guardContent")
    if isinstance(guard, Mapping):
        inner = guard.get("text")
        if isinstance(inner, Mapping) and isinstance(inner.get("text"), str):
            yield inner["text"]


def message_text(message: Any) -> str:
    """The message's text, block after block, as a person would read it."""
    return "\n".join(text for block in _blocks(message) for text in _texts(block))


def content_types(message: Any) -> list[str]:
    """The kinds of block the message holds, each once, in the order they first appear."""
    found: list[str] = []
    for block in _blocks(message):
        for kind in block:
            if kind not in found and isinstance(kind, str):
                found.append(kind)
    return found


def tool_calls(message: Any) -> list[ToolCall]:
    calls = []
    for block in _blocks(message):
        use = block.get("toolUse")
        if isinstance(use, Mapping) and isinstance(use.get("name"), str):
            calls.append(ToolCall(str(use.get("toolUseId", "")), use["name"], use.get("input")))
    return calls


def tool_results(message: Any) -> list[ToolResult]:
    results = []
    for block in _blocks(message):
        result = block.get("toolResult")
        if isinstance(result, Mapping):
            status = result.get("status")
            results.append(
                ToolResult(
                    str(result.get("toolUseId", "")), status if status in ("success", "error") else "success"
                )
            )
    return results


def _count(value: Any) -> int | None:
    # bool is an int in Python, and no token count is ever true or false
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage(message: Any) -> Usage | None:
    """``metadata.usage`` of an assistant message (Strands attaches it after each model call)."""
    metadata = message.get("metadata") if isinstance(message, Mapping) else None
    found = metadata.get("usage") if isinstance(metadata, Mapping) else None
    if not isinstance(found, Mapping):
        return None
    input_tokens, output_tokens = (
        _count(found.get("inputTokens")) or 0,
        _count(found.get("outputTokens")) or 0,
    )
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=_count(found.get("totalTokens")) or input_tokens + output_tokens,
        cache_read_tokens=_count(found.get("cacheReadInputTokens")) or 0,
        cache_write_tokens=_count(found.get("cacheWriteInputTokens")) or 0,
    )


def _metric(message: Any, name: str) -> int | None:
    metadata = message.get("metadata") if isinstance(message, Mapping) else None
    metrics = metadata.get("metrics") if isinstance(metadata, Mapping) else None
    if not isinstance(metrics, Mapping):
        return None
    value = metrics.get(name)
    if isinstance(value, float) and value >= 0:
        return round(value)
    return _count(value)


def effective_message(message: Any, redact_message: Any | None) -> Any:
    """What the agent sees: the redaction, when a guardrail replaced the message."""
    return message if redact_message is None else redact_message


def facts_of(message: Any, redact_message: Any | None) -> MessageFacts:
    """The facts of a stored message. Text, content and tools come from what the agent sees (a
    redacted message is searched by its redaction, never by what was redacted); usage and
    latency from the original, as they describe the model call that produced it."""
    seen = effective_message(message, redact_message)
    return MessageFacts(
        text=message_text(seen)[:TEXT_LIMIT],
        content_types=content_types(seen),
        tool_calls=tool_calls(seen),
        tool_results=tool_results(seen),
        usage=usage(message),
        latency_ms=_metric(message, "latencyMs"),
        time_to_first_byte_ms=_metric(message, "timeToFirstByteMs"),
        is_redacted=redact_message is not None,
    )
