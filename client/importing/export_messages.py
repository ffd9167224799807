"""An agent's messages from an export file, in ``appendMessages`` batches, beside what is stored.

A stored agent's messages are read a page at a time as the file's come by (both in id order), so
memory stays bounded however long the conversation: a message stored with the same content counts
as already present (a run that ended early sent it), one with other content ends the agent's
import, as a message the server refuses does, since the later ones would follow a gap.
"""

from dataclasses import dataclass, field
from typing import Any, Protocol

from client.errors import GraphQLSessionError, SessionLimitError
from client.exporting.records import Record
from client.importing.report import ImportReport, Kind
from client.importing.run import refusal
from client.importing.sameness import canonical
from client.importing.target import Progress
from client.operations import APPEND_MESSAGES, EXPORT_MESSAGES, Operation

BATCH_MESSAGES = 1000
"""Messages per ``appendMessages``: the server's default SESSION_GRAPHQL_MAX_BATCH."""
BATCH_BYTES = 4 * 1024 * 1024
"""Record bytes per ``appendMessages``, well under the server's 16 MiB body limit."""
STORED_PAGE = 500
SPLIT_CODES = frozenset({"BATCH_TOO_LARGE", "PAYLOAD_TOO_LARGE"})
MESSAGE_FIELDS = ("messageId", "message", "redactMessage", "createdAt", "updatedAt")
SAME_CONTENT = ("message", "redactMessage")
"""The server's rule for a message sent again: the same message and redaction, times aside."""


class Importer(Protocol):
    """What an agent's import needs of the whole file's (``FileImport``)."""

    report: ImportReport
    progress: Progress
    batch_messages: int
    """Lowered for the rest of the run when the server takes fewer messages per request."""

    def read(self, operation: Operation, variables: dict[str, Any]) -> Any: ...

    def call(self, operation: Operation, variables: dict[str, Any], *, retry_safe: bool = False) -> Any: ...


@dataclass
class Skipping:
    """Something not imported, and what it held so far (counted as its records pass)."""

    where: str
    reason: str
    agents: int = 0
    messages: int = 0
    multi_agents: int = 0
    sessions: int = 0


class StoredMessages:
    """A stored agent's messages in id order, read a page at a time as the file's come by."""

    def __init__(self, importer: Importer, session_id: str, agent_id: str) -> None:
        self.importer, self.session_id, self.agent_id = importer, session_id, agent_id
        self.page: list[dict[str, Any]] = []
        self.index = 0
        self.after: str | None = None
        self.done = False

    def find(self, message_id: int) -> dict[str, Any] | None:
        while True:
            while self.index < len(self.page) and self.page[self.index]["messageId"] < message_id:
                self.index += 1
            if self.index < len(self.page):
                head = self.page[self.index]
                return head if head["messageId"] == message_id else None
            if self.done:
                return None
            self._next_page()

    def _next_page(self) -> None:
        variables = {
            "sessionId": self.session_id,
            "agentId": self.agent_id,
            "first": STORED_PAGE,
            "after": self.after,
        }
        agent = self.importer.read(EXPORT_MESSAGES, variables)["agent"]
        if agent is None:
            self.page, self.index, self.done = [], 0, True
            return
        connection = agent["messagesConnection"]
        self.page, self.index = connection["nodes"], 0
        self.after = connection["pageInfo"]["endCursor"]
        self.done = not connection["pageInfo"]["hasNextPage"]


@dataclass
class AgentImport:
    """One agent's messages as the file's records come by; ``skipping`` once they no longer go in."""

    importer: Importer
    session_id: str
    agent_id: str
    stored: StoredMessages | None
    """What the server held of the agent's messages before this run; None for an agent just made."""
    skipping: Skipping | None = None
    stored_count: int = 0
    """How many messages the server held of the agent before this run."""
    taken: int = 0
    """How many of the file's messages of the agent have come by."""
    batch: list[dict[str, Any]] = field(default_factory=list)
    batch_bytes: int = 0

    @property
    def gone_on(self) -> bool:
        """The server holds more of the agent's messages than the file: it went on after the export."""
        return self.stored_count > self.taken

    def take(self, record: Record, size: int) -> None:
        """The message on a line of ``size`` bytes."""
        self.importer.progress.advance(1)
        self.taken += 1
        if self.skipping is not None:
            self.skipping.messages += 1
            return
        message_id = record["messageId"]
        existing = None if self.stored is None else self.stored.find(message_id)
        if existing is None:
            self.batch.append({name: record[name] for name in MESSAGE_FIELDS})
            self.batch_bytes += size
            if len(self.batch) >= self.importer.batch_messages or self.batch_bytes >= BATCH_BYTES:
                self._send()
        elif all(
            canonical(existing[name]) == canonical(record[name]) for name in ("message", "redactMessage")
        ):
            self.importer.report.add_present(Kind.MESSAGE)
        else:
            self._send()
            if self.skipping is None:
                self._stop(message_id, "conflict: the server holds this message with other content")
            assert self.skipping is not None
            self.skipping.messages += 1

    def finish(self) -> None:
        """Sends what is left, and says how many messages followed the one that stopped the agent."""
        if self.skipping is None:
            self._send()
        if self.skipping is not None and self.skipping.agents == 0 and self.skipping.messages > 1:
            later = self.skipping.messages - 1
            counted = "1 later message" if later == 1 else f"{later} later messages"
            self.skipping.reason += (
                f"; {counted} of this agent not imported either, since they would follow a gap"
            )

    def _stop(self, message_id: int, reason: str) -> None:
        where = f"session {self.session_id} agent {self.agent_id} message {message_id}"
        self.skipping = Skipping(where, reason)

    def _send(self) -> None:
        batch, self.batch, self.batch_bytes = self.batch, [], 0
        if batch:
            self._send_batch(batch)

    def _send_batch(self, batch: list[dict[str, Any]]) -> bool:
        """Stores ``batch``, or the messages before the one the server refuses; False after a refusal."""
        variables = {"sessionId": self.session_id, "agentId": self.agent_id, "messages": batch}
        try:
            # Each message follows createMessage's rule: resending one stored alike succeeds.
            self.importer.call(APPEND_MESSAGES, variables, retry_safe=True)
        except (GraphQLSessionError, ValueError) as error:
            if len(batch) == 1:
                self._stop(batch[0]["messageId"], refusal(error))
                assert self.skipping is not None
                self.skipping.messages += 1
                return False
            if isinstance(error, SessionLimitError) and error.code in SPLIT_CODES:
                # This server takes smaller batches than ours: halve them, for the rest of the run too.
                size = self.importer.batch_messages = max(1, len(batch) // 2)
                parts = [batch[start : start + size] for start in range(0, len(batch), size)]
            else:
                # A batch is stored whole or not at all: one by one finds the message refused.
                parts = [[message] for message in batch]
            for number, part in enumerate(parts):
                if not self._send_batch(part):
                    assert self.skipping is not None
                    self.skipping.messages += sum(len(rest) for rest in parts[number + 1 :])
                    return False
            return True
        self.importer.report.add_imported(Kind.MESSAGE, len(batch))
        return True
