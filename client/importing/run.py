"""One run of an import of a ``FileSessionManager`` directory: what all of its steps share."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from strands.types.session import SessionMessage

from client.errors import GraphQLSessionError
from client.importing.file_sessions import AgentFiles, FileSessionStore, unreadable
from client.importing.report import ImportReport
from client.importing.target import ImportTarget, Progress, check, one_line
from client.repository import GraphQLSessionRepository

T = TypeVar("T")

BATCH_MESSAGES = 1000
"""Messages per ``append_messages``: the server's default SESSION_GRAPHQL_MAX_BATCH."""


@dataclass
class ImportRun:
    """Where the files are, where they go, and where the outcomes are counted."""

    root: Path
    store: FileSessionStore
    target: ImportTarget
    report: ImportReport
    progress: Progress
    batch_messages: int = BATCH_MESSAGES
    """Lowered for the rest of the run when the server takes fewer messages per request."""

    @property
    def repository(self) -> GraphQLSessionRepository:
        return self.target.repository

    @property
    def dry_run(self) -> bool:
        return self.target.dry_run

    def where(self, path: Path) -> str:
        """``path`` as the report shows it: relative to the imported directory, ``/`` after a directory."""
        relative = path.relative_to(self.root) if path.is_relative_to(self.root) else path
        return str(relative) + ("/" if path.is_dir() else "")

    def call(self, method: Callable[..., T], *args: Any) -> T:
        """A repository call; a failure that would stop every later call stops the import."""
        try:
            return method(*args)
        except GraphQLSessionError as error:
            raise check(error) from None

    def read_message(self, session_id: str, agent: AgentFiles, message_id: int) -> SessionMessage | str:
        """The message in the agent's file for ``message_id``, or why it cannot be imported."""
        try:
            message = self.store.read_message(session_id, agent.agent_id, message_id)
        except Exception as error:
            return unreadable(error)
        if message is None:
            return "unreadable (the file is gone)"
        if message.message_id != message_id:
            return f"unknown layout: it holds message {message.message_id!r}, its name says {message_id}"
        return message


def refusal(error: Exception) -> str:
    """Why the server (or the client, before sending) would not take something."""
    if isinstance(error, GraphQLSessionError):
        return f"server refused it ({error.code}: {one_line(error)})"
    return f"refused by the client ({error})"  # an id the store does not take, e.g. with a backslash
