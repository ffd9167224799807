"""A deterministic Strands model that streams events the way Bedrock's provider does.

What it answers depends only on the conversation it is sent, never on what it answered before, so
an agent restored from the session store (in this process or another) gets the same answers as
one that never stopped. ``echo`` understands a few commands in the last user message:

- ``use <tool> <json input>``: calls the tool; after its result, says what the tool returned;
- anything containing ``forbidden``: a guardrail intervenes and the user's text is redacted;
- anything else: echoes it, listing every user text it can see, so a test can tell from the
  answer which parts of the conversation the agent restored.
"""

import json
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from strands.models.model import Model
from strands.types.content import ContentBlock, Messages
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolSpec

REDACTED_INPUT = "[User input redacted.]"
REDACTED_OUTPUT = "[Assistant output redacted.]"


@dataclass
class Reply:
    """What the model says next; ``redact`` makes it a guardrail intervention."""

    content: list[ContentBlock]
    redact: bool = False


Responder = Callable[[Messages], Reply]


def text(reply: str) -> Reply:
    return Reply([{"text": reply}])


def tool_call(name: str, tool_input: dict[str, Any], tool_use_id: str) -> Reply:
    return Reply([{"toolUse": {"toolUseId": tool_use_id, "name": name, "input": tool_input}}])


def user_texts(messages: Messages) -> list[str]:
    return [
        block["text"]
        for message in messages
        if message["role"] == "user"
        for block in message["content"]
        if "text" in block
    ]


def echo(messages: Messages) -> Reply:
    """The default responder; see the module docstring."""
    last = messages[-1]
    results = [block["toolResult"] for block in last["content"] if "toolResult" in block]
    if results:
        said = " ".join(item["text"] for result in results for item in result["content"] if "text" in item)
        return text(f"the tool said: {said}")
    prompt = " ".join(block["text"] for block in last["content"] if "text" in block)
    if "forbidden" in prompt:
        return Reply([{"text": "I cannot help with that."}], redact=True)
    if prompt.startswith("use "):
        _, name, raw_input = prompt.split(" ", 2)
        return tool_call(name, json.loads(raw_input), tool_use_id=f"tooluse-{len(messages)}")
    return text(f"echo: {prompt} | I see: {' / '.join(user_texts(messages))}")


def scripted(*replies: Reply) -> Responder:
    """Answers with ``replies`` in order, picked by how many assistant turns the conversation holds."""

    def respond(messages: Messages) -> Reply:
        turn = sum(1 for message in messages if message["role"] == "assistant")
        return replies[min(turn, len(replies) - 1)]

    return respond


def failing(error: Exception) -> Responder:
    def respond(messages: Messages) -> Reply:
        raise error

    return respond


def stream_events(reply: Reply) -> list[StreamEvent]:
    """The reply as a streaming provider sends it: blocks in deltas, stop, redactions, metadata."""
    events: list[StreamEvent] = [{"messageStart": {"role": "assistant"}}]
    for index, block in enumerate(reply.content):
        if "text" in block:
            whole = block["text"]
            middle = len(whole) // 2
            events.append({"contentBlockStart": {"contentBlockIndex": index, "start": {}}})
            for part in (whole[:middle], whole[middle:]):
                events.append({"contentBlockDelta": {"contentBlockIndex": index, "delta": {"text": part}}})
        elif "toolUse" in block:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            events.append({"contentBlockStart": {"contentBlockIndex": index, "start": start}})
            delta = {"toolUse": {"input": json.dumps(use["input"])}}
            events.append({"contentBlockDelta": {"contentBlockIndex": index, "delta": delta}})
        else:
            raise ValueError(f"the fake model cannot stream {block!r}")
        events.append({"contentBlockStop": {"contentBlockIndex": index}})
    uses_tools = any("toolUse" in block for block in reply.content)
    stop_reason = "guardrail_intervened" if reply.redact else "tool_use" if uses_tools else "end_turn"
    events.append({"messageStop": {"stopReason": stop_reason}})
    if reply.redact:
        events.append({"redactContent": {"redactUserContentMessage": REDACTED_INPUT}})
        events.append({"redactContent": {"redactAssistantContentMessage": REDACTED_OUTPUT}})
    usage = {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}
    events.append({"metadata": {"usage": usage, "metrics": {"latencyMs": 1}}})
    return events


class FakeModel(Model):
    """A model provider whose answers come from ``responder``; ``calls`` counts the requests."""

    def __init__(self, responder: Responder = echo) -> None:
        self.responder = responder
        self.config: dict[str, Any] = {"model_id": "fake"}
        self.calls = 0
        self._lock = threading.Lock()

    def update_config(self, **model_config: Any) -> None:
        self.config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        return self.config

    async def structured_output(self, *args: Any, **kwargs: Any) -> AsyncGenerator[dict[str, Any], None]:
        raise NotImplementedError("the fake model has no structured output")
        yield {}  # pragma: no cover  # makes this an async generator, as the interface requires

    async def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[StreamEvent, None]:
        with self._lock:
            self.calls += 1
        for event in stream_events(self.responder(messages)):
            yield event
