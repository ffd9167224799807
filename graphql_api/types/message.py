"""The Message type: one entry of an agent's conversation."""

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode

from db.conversations.facts import MessageFacts, effective_message, facts_of
from db.errors import NotFoundError
from db.json_values import StoredJSON
from db.records import AgentKey, MessageRecord
from graphql_api.context import Info
from graphql_api.types.scalars import JSON

if TYPE_CHECKING:
    from graphql_api.types.agent import Agent


@strawberry.type(description="A tool the message calls.")
class ToolCall:
    tool_use_id: str
    name: str
    input: JSON


@strawberry.type(description="A tool result the message carries.")
class ToolResult:
    tool_use_id: str
    status: str = strawberry.field(description="success or error")


@strawberry.type(description="metadata.usage of an assistant message.")
class Usage:
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read_input_tokens: int
    cache_write_input_tokens: int


WITHOUT_DOCUMENTS = frozenset(
    {"__typename", "sessionId", "agentId", "messageId", "role", "createdAt", "updatedAt", "agent"}
)
"""Message fields answered without the stored JSON (``agent`` is loaded on its own)."""
PAGE_FIELDS = frozenset(
    {"nodes", "edges", "node", "cursor", "rank", "snippet", "totalCount", "pageInfo"}
    | {"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}
)
"""The fields of connections, edges and page info around the messages of a page."""


def documents_wanted(info: Info) -> bool:
    """Whether the messages this field answers with (a list, a connection, a search page) are asked
    for anything their stored JSON holds; unsure, yes. Reads that are not leave it in the database."""
    raw = info._raw_info  # the syntax tree: strawberry's selected_fields converts all of it each time
    fragments, spread = raw.fragments, set()
    pending: list[SelectionSetNode | None] = [node.selection_set for node in raw.field_nodes]
    while pending:
        selection_set = pending.pop()
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if name in PAGE_FIELDS:
                    pending.append(selection.selection_set)
                elif name not in WITHOUT_DOCUMENTS:
                    return True
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in spread:
                spread.add(selection.name.value)
                fragment = fragments.get(selection.name.value)
                pending.append(None if fragment is None else fragment.selection_set)
    return False


@strawberry.type(description="A message of an agent's conversation, as Strands stored it.")
class Message:
    session_id: str
    tenant: strawberry.Private[str]
    agent_id: str
    message_id: int = strawberry.field(description="Position of the message in the conversation, from 0.")
    role: str = strawberry.field(description="The message's role (user, assistant), copied for filtering.")
    # StoredJSON: the endpoint embeds the stored text in the answer (graphql_api/endpoint.py).
    message: StoredJSON = strawberry.field(
        graphql_type=JSON, description="The Strands message, bytes as base64 envelopes."
    )
    redact_message: StoredJSON | None = strawberry.field(
        graphql_type=JSON | None, description="What a guardrail replaced the message with, if it did."
    )
    created_at: datetime
    updated_at: datetime
    facts_cache: strawberry.Private[MessageFacts | None] = None

    @classmethod
    def from_record(cls, record: MessageRecord) -> "Message":
        # Spelled out: a restore makes ten thousand of these, and record_of() takes three times as long.
        return cls(
            session_id=record.session_id,
            tenant=record.tenant,
            agent_id=record.agent_id,
            message_id=record.message_id,
            role=record.role,
            message=record.message,
            redact_message=record.redact_message,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )

    @strawberry.field
    async def agent(self, info: Info) -> Annotated["Agent", strawberry.lazy("graphql_api.types.agent")]:
        from graphql_api.types.agent import Agent

        record = await info.context.loaders.agent.load(AgentKey(self.tenant, self.session_id, self.agent_id))
        if record is None:  # deleted while this request ran
            raise NotFoundError(f"agent {self.agent_id!r} of message {self.message_id} is gone")
        return Agent.from_record(record)

    @property
    def _facts(self) -> MessageFacts:
        # Derived from the stored JSON by the same code that filled the columns filters read.
        # Parsed for the facts and let go: a page of parsed messages takes ten times their text.
        if self.facts_cache is None:
            redaction = None if self.redact_message is None else self.redact_message.parsed()
            self.facts_cache = facts_of(self.message.parsed(), redaction)
        return self.facts_cache

    @strawberry.field(
        description="The message's text as the agent sees it (redacted when it was), block after block."
    )
    def text(self) -> str:
        return self._facts.text

    @strawberry.field(description="The kinds of content block the message holds (text, toolUse, image, ...).")
    def content_types(self) -> list[str]:
        return self._facts.content_types

    @strawberry.field(description="The tools the message calls.")
    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(tool_use_id=c.tool_use_id, name=c.name, input=c.input) for c in self._facts.tool_calls
        ]

    @strawberry.field(description="The tool results the message carries.")
    def tool_results(self) -> list[ToolResult]:
        return [ToolResult(tool_use_id=r.tool_use_id, status=r.status) for r in self._facts.tool_results]

    @strawberry.field(description="Tokens of the model call that produced the message (assistant messages).")
    def usage(self) -> Usage | None:
        found = self._facts.usage
        if found is None:
            return None
        return Usage(
            input_tokens=found.input_tokens,
            output_tokens=found.output_tokens,
            total_tokens=found.total_tokens,
            cache_read_input_tokens=found.cache_read_tokens,
            cache_write_input_tokens=found.cache_write_tokens,
        )

    @strawberry.field(description="How long the model call took, in milliseconds (metadata.metrics).")
    def latency_ms(self) -> int | None:
        return self._facts.latency_ms

    @strawberry.field(description="How long until the model's first byte, in milliseconds.")
    def time_to_first_byte_ms(self) -> int | None:
        return self._facts.time_to_first_byte_ms

    @strawberry.field(description="Whether a guardrail redacted the message.")
    def is_redacted(self) -> bool:
        return self._facts.is_redacted

    @strawberry.field(description="What the agent sees: redactMessage when there is one, else message.")
    def effective_message(self) -> JSON:
        return JSON(effective_message(self.message, self.redact_message))  # StoredJSON, as the two above
