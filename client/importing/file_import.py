"""Importing ``FileSessionManager`` directories through ``GraphQLSessionRepository``.

Nothing is stored twice and nothing stored is changed: a session, agent or multi-agent the server
holds already is compared with the file, and a message with the same id is compared by content (as
the server itself does when a message is sent again). Equal, it counts as already present;
different, it is reported and skipped. An agent's messages are imported in order, and the first one
that cannot be (unreadable, in conflict, refused by the server) ends that agent's import: storing
the later ones would leave a gap the restored agent would not notice.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from strands.types.session import Session, SessionAgent, SessionMessage, SessionType, encode_bytes_values

from client.errors import GraphQLSessionError, SessionAlreadyExistsError, SessionLimitError
from client.importing.file_sessions import (
    AGENT_FILE,
    MULTI_AGENT_FILE,
    SESSION_FILE,
    AgentFiles,
    FileSessionStore,
    SessionFiles,
    unreadable,
)
from client.importing.report import ImportReport, Kind
from client.importing.stored_multi_agent import SavedMultiAgentState
from client.importing.target import ImportTarget, Progress, check, one_line
from client.repository import GraphQLSessionRepository

T = TypeVar("T")

BATCH_MESSAGES = 1000
"""Messages per ``append_messages``: the server's default SESSION_GRAPHQL_MAX_BATCH."""
BATCH_BYTES = 4 * 1024 * 1024
"""Message file bytes per ``append_messages``, well under the server's 16 MiB body limit."""
SPLIT_CODES = frozenset({"BATCH_TOO_LARGE", "PAYLOAD_TOO_LARGE"})


def canonical(value: Any) -> str:
    """JSON text that is equal for equal values, whatever their keys' order; bytes as Strands stores them."""
    return json.dumps(encode_bytes_values(value), sort_keys=True, ensure_ascii=False)


def same_content(stored: SessionMessage, local: SessionMessage) -> bool:
    """The server's rule for a message sent again: same message and redaction, timestamps aside."""
    return canonical(stored.message) == canonical(local.message) and canonical(
        stored.redact_message
    ) == canonical(local.redact_message)


def same_states(stored: SessionAgent, local: SessionAgent) -> bool:
    return all(
        canonical(getattr(stored, name)) == canonical(getattr(local, name))
        for name in ("state", "conversation_manager_state", "_internal_state")
    )


def same_session(stored: Session, local: Session) -> bool:
    """Whether the stored session is this one: a session of its own with the same id was made at
    another time (the store keeps the creation time it is sent, in UTC)."""
    return _same_time(stored.created_at, local.created_at) and _type_name(stored) == _type_name(local)


def _same_time(left: str, right: str) -> bool:
    try:
        return datetime.fromisoformat(left) == datetime.fromisoformat(right)
    except (TypeError, ValueError):
        return left == right


def _type_name(session: Session) -> str:
    # Session.from_dict leaves the file's "AGENT" a plain string; the client makes it a SessionType.
    kind = session.session_type
    return kind.value if isinstance(kind, SessionType) else str(kind)


def _server_refused(error: GraphQLSessionError) -> str:
    return f"server refused it ({error.code}: {one_line(error)})"


def _not_imported_after(count: int) -> str:
    if count == 0:
        return ""
    later = "1 later message" if count == 1 else f"{count} later messages"
    return f"; {later} of this agent not imported either, since they would follow a gap"


@dataclass
class MessageOutcome:
    """How one agent's messages went: how many were dealt with, and why the rest were not."""

    settled: set[int] = field(default_factory=set)
    """Ids of the messages imported or found stored."""
    stopped_at: int | None = None
    stopped_where: Path | None = None
    reason: str = ""


@dataclass
class FileSessionImport:
    """Imports the sessions found in one ``FileSessionManager`` storage directory."""

    root: Path
    store: FileSessionStore
    target: ImportTarget
    report: ImportReport
    progress: Progress
    batch_messages: int = BATCH_MESSAGES

    @property
    def _repository(self) -> GraphQLSessionRepository:
        return self.target.repository

    def _where(self, path: Path) -> str:
        relative = path.relative_to(self.root) if path.is_relative_to(self.root) else path
        return str(relative) + ("/" if path.is_dir() else "")

    def _call(self, method: Callable[..., T], *args: Any) -> T:
        """A repository call; a failure that would stop every later call stops the import."""
        try:
            return method(*args)
        except GraphQLSessionError as error:
            raise check(error) from None

    def run(self, sessions: Sequence[SessionFiles]) -> None:
        for files in sessions:
            self.import_session(files)
            self.progress.session_done()

    def import_session(self, files: SessionFiles) -> None:
        held = {
            "sessions": 1,
            "agents": len(files.agents),
            "messages": files.message_count,
            "multi_agents": len(files.multi_agent_ids),
        }
        local = self._read_session(files, held)
        if local is None:
            self.progress.advance(files.message_count)
            return
        try:
            stored = self._stored_or_created_session(local)
        except (GraphQLSessionError, ValueError) as error:
            self.report.skip(self._where(files.path), self._refusal(error), **held)
            self.progress.advance(files.message_count)
            return
        if stored is None:
            self.report.add_imported(Kind.SESSION)
        elif same_session(stored, local):
            self.report.add_present(Kind.SESSION)
        else:
            reason = (
                f"conflict: the server holds another session with this id (created {stored.created_at}, "
                f"this one {local.created_at}); nothing of it imported"
            )
            self.report.skip(self._where(files.path), reason, **held)
            self.progress.advance(files.message_count)
            return
        is_new = stored is None
        for agent in files.agents:
            self.import_agent(files, agent, is_new)
        for multi_agent_id in files.multi_agent_ids:
            self.import_multi_agent(files, multi_agent_id, is_new)
        for stray in files.strays:
            self.report.skip(self._where(stray.path), stray.reason)

    def _refusal(self, error: Exception) -> str:
        if isinstance(error, GraphQLSessionError):
            return _server_refused(error)
        return f"refused by the client ({error})"  # an id the store does not take, e.g. with a backslash

    def _read_session(self, files: SessionFiles, held: dict[str, int]) -> Session | None:
        path = files.path / SESSION_FILE
        if not path.is_file():
            self.report.skip(self._where(files.path), f"unknown layout: no {SESSION_FILE}", **held)
            return None
        try:
            local = self.store.read_session(files.session_id)
        except Exception as error:
            self.report.skip(
                self._where(path), unreadable(error) + "; nothing of this session imported", **held
            )
            return None
        if local is None or local.session_id != files.session_id:
            held_id = None if local is None else local.session_id
            reason = f"unknown layout: it names session {held_id!r}, its directory {files.session_id!r}"
            self.report.skip(self._where(path), reason, **held)
            return None
        return local

    def _stored_or_created_session(self, local: Session) -> Session | None:
        """The stored session, or None after creating it (or finding it missing in a dry run)."""
        stored: Session | None = self._call(self._repository.read_session, local.session_id)
        if stored is not None or self.target.dry_run:
            return stored
        try:
            self._call(self._repository.create_session, local)
        except SessionAlreadyExistsError:
            # Made between the look and the create, by another import or an agent.
            return self._call(self._repository.read_session, local.session_id)
        return None

    def import_agent(self, files: SessionFiles, agent: AgentFiles, session_is_new: bool) -> None:
        count = len(agent.message_ids)
        local = self._read_agent(files, agent)
        if local is None:
            self.progress.advance(count)
            return
        try:
            stored = (
                None
                if session_is_new
                else self._call(self._repository.read_agent, files.session_id, agent.agent_id)
            )
            stored_messages: dict[int, SessionMessage] = {}
            if stored is None and not self.target.dry_run:
                try:
                    self._call(self._repository.create_agent, files.session_id, local)
                except SessionAlreadyExistsError:
                    stored = self._call(self._repository.read_agent, files.session_id, agent.agent_id)
            if stored is not None:
                listed = self._call(self._repository.list_messages, files.session_id, agent.agent_id)
                stored_messages = {message.message_id: message for message in listed}
        except (GraphQLSessionError, ValueError) as error:
            self.report.skip(self._where(agent.path), self._refusal(error), agents=1, messages=count)
            self.progress.advance(count)
            return
        if stored is None:
            self.report.add_imported(Kind.AGENT)
        elif same_states(stored, local):
            self.report.add_present(Kind.AGENT)
        else:
            self._compare_moved_agent(files, agent, stored_messages)
            return
        outcome = self._import_messages(files, agent, stored_messages)
        if outcome.stopped_at is not None:
            assert outcome.stopped_where is not None
            later = [i for i in agent.message_ids if i > outcome.stopped_at and i not in outcome.settled]
            # The server may hold them already (a run before this one): those are no loss.
            present = sum(1 for i in later if self._stored_as_is(files, agent, i, stored_messages))
            self.report.add_present(Kind.MESSAGE, present)
            reason = outcome.reason + _not_imported_after(len(later) - present)
            self.report.skip(self._where(outcome.stopped_where), reason, messages=1 + len(later) - present)
            self.progress.advance(1 + len(later))

    def _stored_as_is(
        self, files: SessionFiles, agent: AgentFiles, message_id: int, stored: dict[int, SessionMessage]
    ) -> bool:
        existing = stored.get(message_id)
        if existing is None:
            return False
        read = self._read_message(files, agent, message_id)
        return not isinstance(read, str) and same_content(existing, read)

    def _read_agent(self, files: SessionFiles, agent: AgentFiles) -> SessionAgent | None:
        path = agent.path / AGENT_FILE
        held = {"agents": 1, "messages": len(agent.message_ids)}
        if not path.is_file():
            self.report.skip(self._where(agent.path), f"unknown layout: no {AGENT_FILE}", **held)
            return None
        try:
            local = self.store.read_agent(files.session_id, agent.agent_id)
        except Exception as error:
            self.report.skip(
                self._where(path), unreadable(error) + "; nothing of this agent imported", **held
            )
            return None
        if local is None or local.agent_id != agent.agent_id:
            held_id = None if local is None else local.agent_id
            reason = f"unknown layout: it names agent {held_id!r}, its directory {agent.agent_id!r}"
            self.report.skip(self._where(path), reason, **held)
            return None
        return local

    def _read_message(self, files: SessionFiles, agent: AgentFiles, message_id: int) -> SessionMessage | str:
        """The message file's message, or why it cannot be imported."""
        try:
            message = self.store.read_message(files.session_id, agent.agent_id, message_id)
        except Exception as error:
            return unreadable(error)
        if message is None:
            return "unreadable (the file is gone)"
        if message.message_id != message_id:
            return f"unknown layout: it holds message {message.message_id!r}, its name says {message_id}"
        return message

    def _message_path(self, agent: AgentFiles, message_id: int) -> Path:
        return agent.path / "messages" / f"message_{message_id}.json"

    def _import_messages(
        self, files: SessionFiles, agent: AgentFiles, stored: dict[int, SessionMessage]
    ) -> MessageOutcome:
        outcome = MessageOutcome()
        batch: list[SessionMessage] = []
        batch_bytes = 0
        for message_id in agent.message_ids:
            read = self._read_message(files, agent, message_id)
            if isinstance(read, str):
                self._stop(outcome, agent, message_id, read)
                break
            existing = stored.get(message_id)
            if existing is not None:
                if not same_content(existing, read):
                    self._stop(
                        outcome,
                        agent,
                        message_id,
                        "conflict: the server holds this message with other content",
                    )
                    break
                # Sent before in a run that ended early, or the agent's own: either way it is there.
                self.report.add_present(Kind.MESSAGE)
                outcome.settled.add(message_id)
                self.progress.advance(1)
                continue
            batch.append(read)
            batch_bytes += agent.message_bytes.get(message_id, 0)
            if len(batch) >= self.batch_messages or batch_bytes >= BATCH_BYTES:
                if not self._send(files, agent, batch, outcome):
                    return outcome
                batch, batch_bytes = [], 0
        if batch:
            self._send(files, agent, batch, outcome)
        return outcome

    def _stop(self, outcome: MessageOutcome, agent: AgentFiles, message_id: int, reason: str) -> None:
        outcome.stopped_at = message_id
        outcome.stopped_where = self._message_path(agent, message_id)
        outcome.reason = reason

    def _send(
        self, files: SessionFiles, agent: AgentFiles, batch: list[SessionMessage], outcome: MessageOutcome
    ) -> bool:
        """Stores ``batch``, or the messages before the one the server refuses; False after a refusal."""
        if self.target.dry_run:
            self._sent(batch, outcome)
            return True
        try:
            self._call(self._repository.append_messages, files.session_id, agent.agent_id, batch)
        except (GraphQLSessionError, ValueError) as error:
            if len(batch) == 1:
                self._stop(outcome, agent, batch[0].message_id, self._refusal(error))
                return False
            if isinstance(error, SessionLimitError) and error.code in SPLIT_CODES:
                # This server takes smaller batches than ours: halve them, for the rest of the run too.
                self.batch_messages = max(1, len(batch) // 2)
                parts = [
                    batch[start : start + self.batch_messages]
                    for start in range(0, len(batch), self.batch_messages)
                ]
            else:
                # A batch is stored whole or not at all: one by one finds the message refused and
                # stores the ones before it.
                parts = [[message] for message in batch]
            # all() stops at the first part refused, as the agent's import must.
            return all(self._send(files, agent, part, outcome) for part in parts)
        self._sent(batch, outcome)
        return True

    def _sent(self, batch: list[SessionMessage], outcome: MessageOutcome) -> None:
        self.report.add_imported(Kind.MESSAGE, len(batch))
        outcome.settled.update(message.message_id for message in batch)
        self.progress.advance(len(batch))

    def _compare_moved_agent(
        self, files: SessionFiles, agent: AgentFiles, stored: dict[int, SessionMessage]
    ) -> None:
        """The server holds the agent with other states: it is either this agent gone on since the
        last import (every message of the file stored as it is) or another one; nothing is written."""
        count = len(agent.message_ids)
        for message_id in agent.message_ids:
            read = self._read_message(files, agent, message_id)
            existing = stored.get(message_id)
            if isinstance(read, str) or existing is None or not same_content(existing, read):
                why = (
                    read
                    if isinstance(read, str)
                    else "not stored"
                    if existing is None
                    else "stored with other content"
                )
                reason = (
                    "conflict: the server holds this agent with another state, and message "
                    f"{message_id} is {why}; nothing of it imported, nothing overwritten"
                )
                self.report.skip(self._where(agent.path), reason, agents=1, messages=count)
                self.progress.advance(count)
                return
        self.report.add_present(Kind.AGENT)
        self.report.add_present(Kind.MESSAGE, count)
        self.progress.advance(count)
        self.report.note(
            self._where(agent.path),
            "the stored agent's state differs from agent.json but holds all its messages: it has gone on "
            "since; the stored state was kept",
        )

    def import_multi_agent(self, files: SessionFiles, multi_agent_id: str, session_is_new: bool) -> None:
        directory = files.path / "multi_agents" / f"multi_agent_{multi_agent_id}"
        path = directory / MULTI_AGENT_FILE
        if not path.is_file():
            self.report.skip(self._where(directory), f"unknown layout: no {MULTI_AGENT_FILE}", multi_agents=1)
            return
        try:
            state = self.store.read_multi_agent(files.session_id, multi_agent_id)
        except Exception as error:
            self.report.skip(self._where(path), unreadable(error), multi_agents=1)
            return
        if not isinstance(state, dict):
            self.report.skip(self._where(path), "not a Strands record (not a JSON object)", multi_agents=1)
            return
        try:
            stored = None
            if not session_is_new:
                stored = self._call(self._repository.read_multi_agent, files.session_id, multi_agent_id)
            if stored is None and not self.target.dry_run:
                saved = SavedMultiAgentState(multi_agent_id, state)
                try:
                    self._call(self._repository.create_multi_agent, files.session_id, saved)
                except SessionAlreadyExistsError:
                    stored = self._call(self._repository.read_multi_agent, files.session_id, multi_agent_id)
        except (GraphQLSessionError, ValueError) as error:
            self.report.skip(self._where(directory), self._refusal(error), multi_agents=1)
            return
        if stored is None:
            self.report.add_imported(Kind.MULTI_AGENT)
        elif canonical(stored) == canonical(state):
            self.report.add_present(Kind.MULTI_AGENT)
        else:
            reason = "conflict: the server holds this multi-agent with another state; nothing overwritten"
            self.report.skip(self._where(directory), reason, multi_agents=1)
