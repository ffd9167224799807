"""An agent's message files, imported in order once the agent itself is stored.

The first message that cannot be imported (unreadable, in conflict, refused by the server) ends
the agent's import: storing the later ones would leave a gap that a restored agent would not
notice. Messages the server holds with the same content count as already present.
"""

from dataclasses import dataclass, field
from pathlib import Path

from strands.types.session import SessionMessage

from client.errors import GraphQLSessionError, SessionLimitError
from client.importing.file_sessions import AgentFiles
from client.importing.report import Kind
from client.importing.run import ImportRun, refusal
from client.importing.sameness import same_content

BATCH_BYTES = 4 * 1024 * 1024
"""Message file bytes per ``append_messages``, well under the server's 16 MiB body limit."""
SPLIT_CODES = frozenset({"BATCH_TOO_LARGE", "PAYLOAD_TOO_LARGE"})


@dataclass
class MessageImport:
    """One agent's messages; ``stored`` is what the server holds of them (nothing for a new agent)."""

    run: ImportRun
    session_id: str
    agent: AgentFiles
    stored: dict[int, SessionMessage]
    settled: set[int] = field(default_factory=set)
    """Ids of the messages imported or found stored."""
    stopped_at: int | None = None
    reason: str = ""

    def import_all(self) -> None:
        batch: list[SessionMessage] = []
        batch_bytes = 0
        for message_id in self.agent.message_ids:
            read = self.run.read_message(self.session_id, self.agent, message_id)
            if isinstance(read, str):
                self._stop(message_id, read)
                break
            existing = self.stored.get(message_id)
            if existing is not None:
                if not same_content(existing, read):
                    self._stop(message_id, "conflict: the server holds this message with other content")
                    break
                # Sent by a run that ended early, or the agent's own: either way it is there.
                self.run.report.add_present(Kind.MESSAGE)
                self.settled.add(message_id)
                self.run.progress.advance(1)
                continue
            batch.append(read)
            batch_bytes += self.agent.message_bytes.get(message_id, 0)
            if len(batch) >= self.run.batch_messages or batch_bytes >= BATCH_BYTES:
                sent = self._send(batch)
                batch, batch_bytes = [], 0
                if not sent:
                    break
        if batch:
            self._send(batch)  # the last ones, or those read before the message that stopped the agent
        if self.stopped_at is not None:
            self._report_stop()

    def _message_path(self, message_id: int) -> Path:
        return self.agent.path / "messages" / f"message_{message_id}.json"

    def _stop(self, message_id: int, reason: str) -> None:
        self.stopped_at, self.reason = message_id, reason

    def _send(self, batch: list[SessionMessage]) -> bool:
        """Stores ``batch``, or the messages before the one the server refuses; False after a refusal."""
        if self.run.dry_run:
            self._sent(batch)
            return True
        try:
            self.run.call(self.run.repository.append_messages, self.session_id, self.agent.agent_id, batch)
        except (GraphQLSessionError, ValueError) as error:
            if len(batch) == 1:
                self._stop(batch[0].message_id, refusal(error))
                return False
            if isinstance(error, SessionLimitError) and error.code in SPLIT_CODES:
                # This server takes smaller batches than ours: halve them, for the rest of the run too.
                size = self.run.batch_messages = max(1, len(batch) // 2)
                parts = [batch[start : start + size] for start in range(0, len(batch), size)]
            else:
                # A batch is stored whole or not at all: one by one finds the message refused and
                # stores the ones before it.
                parts = [[message] for message in batch]
            # all() stops at the first part refused, as the agent's import must.
            return all(self._send(part) for part in parts)
        self._sent(batch)
        return True

    def _sent(self, batch: list[SessionMessage]) -> None:
        self.run.report.add_imported(Kind.MESSAGE, len(batch))
        self.settled.update(message.message_id for message in batch)
        self.run.progress.advance(len(batch))

    def _report_stop(self) -> None:
        assert self.stopped_at is not None
        stopped_at = self.stopped_at
        later = [i for i in self.agent.message_ids if i > stopped_at and i not in self.settled]
        # The server may hold them already (from a run before this one): those are no loss.
        present = sum(1 for message_id in later if self._stored_as_is(message_id))
        self.run.report.add_present(Kind.MESSAGE, present)
        missing = len(later) - present
        reason = self.reason
        if missing:
            counted = "1 later message" if missing == 1 else f"{missing} later messages"
            reason += f"; {counted} of this agent not imported either, since they would follow a gap"
        self.run.report.skip(self.run.where(self._message_path(stopped_at)), reason, messages=1 + missing)
        self.run.progress.advance(1 + len(later))

    def _stored_as_is(self, message_id: int) -> bool:
        existing = self.stored.get(message_id)
        if existing is None:
            return False
        read = self.run.read_message(self.session_id, self.agent, message_id)
        return not isinstance(read, str) and same_content(existing, read)


def compare_moved_agent(
    run: ImportRun, session_id: str, agent: AgentFiles, stored: dict[int, SessionMessage]
) -> None:
    """The server holds the agent with other states: it is either this agent gone on since it was
    imported (every message of the files stored as it is) or another one. Nothing is written."""
    count = len(agent.message_ids)
    for message_id in agent.message_ids:
        read = run.read_message(session_id, agent, message_id)
        existing = stored.get(message_id)
        if isinstance(read, str):
            why = read
        elif existing is None:
            why = "not stored"
        elif not same_content(existing, read):
            why = "stored with other content"
        else:
            continue
        reason = (
            f"conflict: the server holds this agent with another state, and message {message_id} is "
            f"{why}; nothing of it imported, nothing overwritten"
        )
        run.report.skip(run.where(agent.path), reason, agents=1, messages=count)
        run.progress.advance(count)
        return
    run.report.add_present(Kind.AGENT)
    run.report.add_present(Kind.MESSAGE, count)
    run.progress.advance(count)
    run.report.note(
        run.where(agent.path),
        "the stored agent's state differs from agent.json but holds all its messages: it has gone on "
        "since; the stored state was kept",
    )
