"""Directories written by Strands' ``FileSessionManager``, laid out and read as Strands does.

::

    <storage_dir>/session_<session_id>/session.json
                                      /agents/agent_<agent_id>/agent.json
                                                              /messages/message_<n>.json
                                      /multi_agents/multi_agent_<id>/multi_agent.json

The files are read by ``FileSessionManager``'s own repository methods, so what is imported is what
Strands itself would restore; this module only finds the files and says which fit no part of it.
"""

import inspect
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strands.session.file_session_manager import (
    AGENT_PREFIX,
    MESSAGE_PREFIX,
    MULTI_AGENT_PREFIX,
    SESSION_PREFIX,
    FileSessionManager,
)
from strands.types.exceptions import SessionException
from strands.types.session import SessionMessage, decode_bytes_values

SESSION_FILE = "session.json"
AGENT_FILE = "agent.json"
MULTI_AGENT_FILE = "multi_agent.json"
# Strands names message files by str(message_id); "message_01.json" would never be read back.
MESSAGE_FILE = re.compile(rf"{MESSAGE_PREFIX}(0|[1-9][0-9]*)\.json")


MESSAGE_PARAMETERS = frozenset(inspect.signature(SessionMessage).parameters)


class FileSessionStore(FileSessionManager):
    """``FileSessionManager``'s repository methods over ``storage_dir``, nothing else.

    Its constructor is skipped on purpose: it creates the session it is given, and an import must
    leave the directory as it found it.
    """

    def __init__(self, storage_dir: Path) -> None:
        self.storage_dir = str(storage_dir)

    def read_message(
        self, session_id: str, agent_id: str, message_id: int, **kwargs: Any
    ) -> SessionMessage | None:
        """``FileSessionManager.read_message``, but ``SessionMessage.from_dict``'s parameters are
        looked up once, not once per key of every message: ``inspect.signature`` took five sixths
        of the time to read a message."""
        path = self._get_message_path(session_id, agent_id, message_id)
        if not os.path.exists(path):
            return None
        stored = self._read_file(path)
        return SessionMessage(
            **decode_bytes_values({k: v for k, v in stored.items() if k in MESSAGE_PARAMETERS})
        )


@dataclass(frozen=True)
class Stray:
    """A file or directory that fits no part of the layout."""

    path: Path
    reason: str


@dataclass
class AgentFiles:
    agent_id: str
    path: Path
    message_ids: list[int] = field(default_factory=list)
    message_bytes: dict[int, int] = field(default_factory=dict)


@dataclass
class SessionFiles:
    """One ``session_<id>`` directory: its agents, message ids and multi-agents, found by name."""

    session_id: str
    path: Path
    agents: list[AgentFiles] = field(default_factory=list)
    multi_agent_ids: list[str] = field(default_factory=list)
    strays: list[Stray] = field(default_factory=list)

    @property
    def message_count(self) -> int:
        return sum(len(agent.message_ids) for agent in self.agents)


def is_session_directory(path: Path) -> bool:
    return path.is_dir() and path.name.startswith(SESSION_PREFIX) and len(path.name) > len(SESSION_PREFIX)


def visible_entries(directory: Path) -> list[Path]:
    # Dot files are no part of the layout, and Strands' own are temporary files of a write
    # interrupted before its rename (".strands_*.tmp"): the file they were meant to become is whole.
    return sorted(entry for entry in directory.iterdir() if not entry.name.startswith("."))


def scan_session(path: Path) -> SessionFiles:
    """What ``path`` (a ``session_<id>`` directory) holds, by file names alone; reads no file."""
    found = SessionFiles(session_id=path.name[len(SESSION_PREFIX) :], path=path)
    for entry in visible_entries(path):
        if entry.name == SESSION_FILE and entry.is_file():
            continue
        if entry.name == "agents" and entry.is_dir():
            _scan_agents(entry, found)
        elif entry.name == "multi_agents" and entry.is_dir():
            _scan_multi_agents(entry, found)
        else:
            found.strays.append(Stray(entry, "unknown layout: not part of a Strands session directory"))
    return found


def _scan_agents(directory: Path, found: SessionFiles) -> None:
    for entry in visible_entries(directory):
        if not (
            entry.is_dir() and entry.name.startswith(AGENT_PREFIX) and len(entry.name) > len(AGENT_PREFIX)
        ):
            found.strays.append(Stray(entry, f"unknown layout: not an {AGENT_PREFIX}<id> directory"))
            continue
        agent = AgentFiles(agent_id=entry.name[len(AGENT_PREFIX) :], path=entry)
        found.agents.append(agent)
        for part in visible_entries(entry):
            if part.name == AGENT_FILE and part.is_file():
                continue
            if part.name == "messages" and part.is_dir():
                _scan_messages(part, agent, found)
            else:
                found.strays.append(Stray(part, "unknown layout: not part of a Strands agent directory"))


def _scan_messages(directory: Path, agent: AgentFiles, found: SessionFiles) -> None:
    for entry in visible_entries(directory):
        matched = MESSAGE_FILE.fullmatch(entry.name)
        if matched is None or not entry.is_file():
            found.strays.append(Stray(entry, f"unknown layout: not a {MESSAGE_PREFIX}<number>.json file"))
            continue
        message_id = int(matched.group(1))
        agent.message_ids.append(message_id)
        agent.message_bytes[message_id] = entry.stat().st_size
    agent.message_ids.sort()


def _scan_multi_agents(directory: Path, found: SessionFiles) -> None:
    for entry in visible_entries(directory):
        if (
            entry.is_dir()
            and entry.name.startswith(MULTI_AGENT_PREFIX)
            and len(entry.name) > len(MULTI_AGENT_PREFIX)
        ):
            found.multi_agent_ids.append(entry.name[len(MULTI_AGENT_PREFIX) :])
        else:
            found.strays.append(Stray(entry, f"unknown layout: not a {MULTI_AGENT_PREFIX}<id> directory"))


def unreadable(error: Exception) -> str:
    """Why Strands could not read a file, in a few words."""
    cause = error.__cause__ if isinstance(error, SessionException) else error
    if isinstance(cause, json.JSONDecodeError):
        return f"unreadable JSON ({cause})"
    if isinstance(cause, UnicodeDecodeError):
        return "unreadable JSON (not UTF-8 text)"
    if isinstance(cause, OSError):
        return f"unreadable ({cause.strerror or cause})"
    if isinstance(error, SessionException):
        return f"unreadable ({error})"
    # Valid JSON that is no Strands record: from_dict() misses an argument or gets no object.
    return f"not a Strands record ({type(error).__name__}: {error})"
