"""Writing a tenant's sessions, page by page through the API, as an export file's records.

Every read is one bounded page (sessions, agents, messages, storage keys, one storage object), and
each record is written as soon as it is read, so memory stays the same whatever the store holds.
A snapshot-backed session is exported as its storage objects (checkpoints before the latest
snapshot), from which the server makes its agents and messages again; a session's context stash
goes with it. Objects of no session come last, in a whole-tenant export only.
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

from client import calls
from client.exporting.records import (
    AGENT,
    END,
    MESSAGE,
    MULTI_AGENT,
    SESSION,
    STORAGE_OBJECT,
    Record,
    encode,
)
from client.operations import (
    COUNT_SESSIONS,
    EXPORT_AGENTS,
    EXPORT_MESSAGES,
    EXPORT_MULTI_AGENTS,
    EXPORT_SESSION,
    EXPORT_SESSIONS,
    LIST_STORAGE_KEYS,
    READ_STORAGE_OBJECT,
    Operation,
)
from client.repository import GraphQLSessionRepository

SESSION_PAGE = 100
AGENT_PAGE = 100
MESSAGE_PAGE = 500
"""Messages per request: a few hundred kilobytes of a typical conversation."""
KEY_PAGE = 1000
SESSION_NAMESPACES = ("session", "context")
"""Storage key prefixes that belong to a session: ``session/<id>/`` (snapshots), ``context/<id>/``."""
LATEST = "snapshot_latest.json"


class ExportProgress(Protocol):
    def session_done(self, messages: int) -> None:
        """A session and its ``messages`` messages are written."""


@dataclass(frozen=True)
class Selection:
    """Which sessions: ``session_ids`` alone, else those updated at or after ``since`` (None: all)."""

    since: str | None = None
    session_ids: tuple[str, ...] = ()

    @property
    def whole_tenant(self) -> bool:
        return self.since is None and not self.session_ids

    def filter(self) -> dict[str, Any] | None:
        return None if self.since is None else {"updated": {"start": self.since}}


@dataclass
class Exporter:
    """Writes the records of ``selection`` to ``out`` and counts them."""

    repository: GraphQLSessionRepository
    out: IO[bytes]
    progress: ExportProgress
    counts: Counter[str]

    def _read(self, operation: Operation, variables: dict[str, Any]) -> Any:
        return self.repository.execute(calls.Call(operation, variables, lambda data: data, retry_safe=True))

    def _write(self, record: Record) -> None:
        self.out.write(encode(record))
        self.counts[record["kind"]] += 1

    def count_sessions(self, selection: Selection) -> int:
        if selection.session_ids:
            return len(selection.session_ids)
        data = self._read(COUNT_SESSIONS, {"filter": selection.filter()})
        return int(data["sessions"]["totalCount"])

    def sessions(self, selection: Selection) -> Iterator[dict[str, Any]]:
        after: str | None = None
        while True:
            variables = {"filter": selection.filter(), "first": SESSION_PAGE, "after": after}
            page = self._read(EXPORT_SESSIONS, variables)["sessions"]
            yield from page["nodes"]
            if not page["pageInfo"]["hasNextPage"]:
                return
            after = page["pageInfo"]["endCursor"]

    def export(self, selection: Selection) -> list[str]:
        """Writes every selected session; returns the ids asked for by name that are not stored."""
        missing: list[str] = []
        exported: set[str] = set()
        if selection.session_ids:
            for session_id in selection.session_ids:
                found = self._read(EXPORT_SESSION, {"sessionId": session_id})["session"]
                if found is None:
                    missing.append(session_id)
                else:
                    self.export_session(found)
        else:
            for session in self.sessions(selection):
                self.export_session(session)
                exported.add(session["sessionId"])
        if selection.whole_tenant:
            self.export_objects_of_no_session(exported)
        self._write({"kind": END, "records": dict(self.counts)})
        return missing

    def export_session(self, session: dict[str, Any]) -> None:
        session_id = session["sessionId"]
        self._write({"kind": SESSION, **session})
        messages = 0
        if not session["snapshotBacked"]:
            for agent in self._paged(EXPORT_AGENTS, session_id, "agents"):
                self._write({"kind": AGENT, "sessionId": session_id, **agent})
                messages += self.export_messages(session_id, agent["agentId"])
            for multi_agent in self._paged(EXPORT_MULTI_AGENTS, session_id, "multiAgents"):
                self._write({"kind": MULTI_AGENT, "sessionId": session_id, **multi_agent})
        for namespace in SESSION_NAMESPACES:
            self.export_objects(f"{namespace}/{session_id}/")
        self.progress.session_done(messages)

    def _paged(self, operation: Operation, session_id: str, field: str) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            variables = {"sessionId": session_id, "offset": offset, "limit": AGENT_PAGE}
            session = self._read(operation, variables)["session"]
            nodes = [] if session is None else session[field]
            yield from nodes
            if len(nodes) < AGENT_PAGE:
                return
            offset += len(nodes)

    def export_messages(self, session_id: str, agent_id: str) -> int:
        written = 0
        after: str | None = None
        while True:
            variables = {"sessionId": session_id, "agentId": agent_id, "first": MESSAGE_PAGE, "after": after}
            agent = self._read(EXPORT_MESSAGES, variables)["agent"]
            if agent is None:  # deleted while the export ran
                return written
            page = agent["messagesConnection"]
            for message in page["nodes"]:
                self._write({"kind": MESSAGE, "sessionId": session_id, "agentId": agent_id, **message})
            written += len(page["nodes"])
            if not page["pageInfo"]["hasNextPage"]:
                return written
            after = page["pageInfo"]["endCursor"]

    def keys(self, prefix: str) -> Iterator[str]:
        after: str | None = None
        while True:
            page = self._read(LIST_STORAGE_KEYS, {"prefix": prefix, "after": after, "first": KEY_PAGE})
            keys = page["storageKeys"]["keys"]
            yield from keys
            if not page["storageKeys"]["hasNextPage"] or not keys:
                return
            after = keys[-1]

    def export_objects(self, prefix: str, skip: set[str] | None = None) -> None:
        """The objects under ``prefix``; latest snapshots after their checkpoints, as a restore
        must write them (a latest snapshot never stands before the history it follows)."""
        latest: list[str] = []
        for key in self.keys(prefix):
            if skip is not None and session_of(key) in skip:
                continue
            if key.endswith(LATEST):
                latest.append(key)
            else:
                self.export_object(key)
        for key in latest:
            self.export_object(key)

    def export_object(self, key: str) -> None:
        data = self._read(READ_STORAGE_OBJECT, {"key": key})["storageObject"]
        if data is not None:  # deleted since it was listed
            self._write({"kind": STORAGE_OBJECT, "key": key, "data": data})

    def export_objects_of_no_session(self, exported: set[str]) -> None:
        self.export_objects("", skip=exported)


def session_of(key: str) -> str | None:
    """The session a key belongs to (``session/<id>/...``, ``context/<id>/...``), or None."""
    parts = key.split("/", 2)
    return parts[1] if len(parts) == 3 and parts[0] in SESSION_NAMESPACES else None
