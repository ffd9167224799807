"""Importing an export file (``client.exporting``) into a tenant, through the API.

The same rules as a directory import, record by record: nothing is stored twice and nothing stored
is changed. A session, agent or multi-agent the server holds already is compared with its record
(equal: already present; different: a conflict, skipped and reported with everything in it); a
message stored with the same content is present, with other content it ends its agent's import,
since the later ones would follow a gap. Messages go in ``appendMessages`` batches, and a stored
agent's messages are read page by page beside the file's (``client.importing.export_messages``),
so memory stays bounded; a run that was killed, run again, finds what it stored and goes on.

Once a session is done, the times its own writes moved (the session's ``updatedAt`` and
``lastActivityAt``, its agents' ``lastActivityAt``) are set back to the file's with
``restoreSessionTimes``, which needs an admin key: with a writer key they are left at the import's
time, with a note.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from client import calls
from client.errors import GraphQLSessionError, SessionAlreadyExistsError
from client.exporting.export import session_of
from client.exporting.records import (
    AGENT,
    END,
    KINDS,
    MESSAGE,
    SESSION,
    STORAGE_OBJECT,
    ExportFileError,
    Record,
)
from client.importing.export_messages import BATCH_MESSAGES, AgentImport, Skipping, StoredMessages
from client.importing.report import ImportReport, Kind
from client.importing.run import refusal
from client.importing.sameness import canonical
from client.importing.snapshots import kind_of
from client.importing.target import Progress, check
from client.operations import (
    EXPORT_AGENT,
    EXPORT_SESSION,
    READ_MULTI_AGENT,
    READ_STORAGE_OBJECT,
    RESTORE_AGENT,
    RESTORE_MULTI_AGENT,
    RESTORE_SESSION,
    RESTORE_SESSION_LABELS,
    RESTORE_SESSION_TIMES,
    WRITE_STORAGE_OBJECT,
    Operation,
)
from client.repository import GraphQLSessionRepository

AGENT_STATES = ("state", "conversationManagerState", "internalState")


def _same_time(left: str | None, right: str | None) -> bool:
    if left is None or right is None:
        return left == right
    return datetime.fromisoformat(left) == datetime.fromisoformat(right)


@dataclass
class SessionImport:
    record: Record
    new: bool = False
    skipping: Skipping | None = None
    agent: AgentImport | None = None
    agent_activity: list[dict[str, str]] = field(default_factory=list)
    troubled: bool = False
    """Something in it was skipped: its times are left as they are."""
    gone_on: bool = False
    """The server's copy went on after the export: its later times are kept."""
    objects: set[str] = field(default_factory=set)
    """Outcomes of its storage objects: imported, present, skipped."""

    @property
    def session_id(self) -> str:
        return str(self.record["sessionId"])


@dataclass
class FileImport:
    """Imports an export file's records, in order, into ``repository``'s server and tenant."""

    repository: GraphQLSessionRepository
    report: ImportReport
    progress: Progress
    batch_messages: int = BATCH_MESSAGES
    session: SessionImport | None = None
    times_refused: bool = False
    counted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def read(self, operation: Operation, variables: dict[str, Any]) -> Any:
        return self.call(operation, variables, retry_safe=True)

    def call(self, operation: Operation, variables: dict[str, Any], *, retry_safe: bool = False) -> Any:
        """One request; a failure every later request would meet as well stops the import."""
        try:
            return self.repository.execute(
                calls.Call(operation, variables, lambda data: data, retry_safe=retry_safe)
            )
        except GraphQLSessionError as error:
            raise check(error) from None

    def run(self, records: Iterator[tuple[Record, int, int]]) -> None:
        """``records``: each record with its line number and its line's size in bytes."""
        ended = False
        for record, number, size in records:
            if ended:
                raise ExportFileError(f"line {number}: a record after the end line")
            try:
                ended = self._take(record, number, size)
            except (KeyError, TypeError, ValueError) as error:
                # A record this version does not write (a field missing or of another type).
                what = f"no {error}" if isinstance(error, KeyError) else str(error)
                raise ExportFileError(
                    f"line {number}: a {record['kind']} record this import cannot read ({what})"
                ) from None
        if not ended:
            self.finish_session()
            raise ExportFileError("the file ends before its end line (cut short?); what it held was imported")

    def _take(self, record: Record, number: int, size: int) -> bool:
        """Imports one record; True for the end line."""
        kind = record["kind"]
        if kind == END:
            self.finish_session()
            self._check_end(record, number)
            return True
        if kind == SESSION:
            self.finish_session()
            self.counted[kind] += 1
            self.start_session(record)
        elif kind in KINDS:
            self.counted[kind] += 1
            self._in_session(record, number, size)
        else:
            raise ExportFileError(f"line {number}: unknown record kind {kind!r}")
        return False

    def _check_end(self, record: Record, number: int) -> None:
        written = record.get("records")
        if not isinstance(written, dict):
            raise ExportFileError(f"line {number}: the end line has no record counts")
        if any(written.get(kind, 0) != self.counted[kind] for kind in KINDS):
            raise ExportFileError(f"line {number}: the file holds other records than its end line counts")

    def _in_session(self, record: Record, number: int, size: int) -> None:
        kind = record["kind"]
        if kind == STORAGE_OBJECT:
            self.import_object(record)
            return
        session = self.session
        if session is None or record.get("sessionId") != session.session_id:
            raise ExportFileError(f"line {number}: {kind} outside the records of its session")
        if kind == AGENT:
            self.finish_agent()
            self.start_agent(session, record)
        elif kind == MESSAGE:
            agent = session.agent
            if agent is None or record.get("agentId") != agent.agent_id:
                raise ExportFileError(f"line {number}: a message outside the records of its agent")
            agent.take(record, size)
        else:
            self.import_multi_agent(session, record)

    # Sessions

    def start_session(self, record: Record) -> None:
        session = self.session = SessionImport(record)
        if record.get("snapshotBacked"):
            return  # its storage objects make it; see finish_session
        try:
            stored = self._stored_or_created_session(record)
        except (GraphQLSessionError, ValueError) as error:
            session.skipping = Skipping(f"session {session.session_id}", refusal(error), sessions=1)
            return
        if stored is None:
            session.new = True
            self.report.add_imported(Kind.SESSION)
        elif (
            _same_time(stored["createdAt"], record["createdAt"])
            and stored["sessionType"] == record["sessionType"]
        ):
            self.report.add_present(Kind.SESSION)
        else:
            reason = (
                f"conflict: the server holds another session with this id (created {stored['createdAt']}, "
                f"this one {record['createdAt']}); nothing of it imported"
            )
            session.skipping = Skipping(f"session {session.session_id}", reason, sessions=1)

    def _stored_or_created_session(self, record: Record) -> dict[str, Any] | None:
        session_id = calls.check_id(record["sessionId"], "session")
        stored: dict[str, Any] | None = self.read(EXPORT_SESSION, {"sessionId": session_id})["session"]
        if stored is not None:
            return stored
        values = {
            "sessionId": session_id,
            "sessionType": record["sessionType"],
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
            "labels": record["labels"],
            "title": record["title"],
        }
        try:
            self.call(RESTORE_SESSION, {"session": values})
        except SessionAlreadyExistsError:
            # Made between the look and the create, by another import or an agent.
            return self.read(EXPORT_SESSION, {"sessionId": session_id})["session"]  # type: ignore[no-any-return]
        return None

    def finish_session(self) -> None:
        session = self.session
        if session is None:
            return
        self.finish_agent()
        self.session = None
        if session.skipping is not None:
            self._skip(session.skipping)
        elif session.record.get("snapshotBacked"):
            self._finish_snapshot_session(session)
        if session.skipping is None and not session.troubled and not session.gone_on:
            self._restore_times(session)
        self.progress.session_done()

    def _finish_snapshot_session(self, session: SessionImport) -> None:
        record = session.record
        stored = self.read(EXPORT_SESSION, {"sessionId": session.session_id})["session"]
        if stored is None:
            session.troubled = True
            if "skipped" not in session.objects:
                self.report.skip(f"session {session.session_id}", "no snapshot of it in the file", sessions=1)
            return
        if "imported" in session.objects:
            self.report.add_imported(Kind.SESSION)
            changes = {
                name: record[name] if record[name] is not None else ("" if name == "title" else {})
                for name in ("labels", "title")
                if canonical(stored[name]) != canonical(record[name])
            }
            if changes:
                self.call(RESTORE_SESSION_LABELS, {"sessionId": session.session_id, **changes})
        elif session.objects == {"present"}:
            self.report.add_present(Kind.SESSION)
        if "skipped" in session.objects:
            session.troubled = True

    def _restore_times(self, session: SessionImport) -> None:
        if self.times_refused:
            return
        record = session.record
        activity = session.agent_activity
        # A request sets at most a batch of agents' times (the server's SESSION_GRAPHQL_MAX_BATCH).
        chunks = [
            activity[start : start + BATCH_MESSAGES] for start in range(0, len(activity), BATCH_MESSAGES)
        ]
        try:
            for chunk in chunks or [[]]:
                variables = {
                    "sessionId": session.session_id,
                    "updatedAt": record["updatedAt"],
                    "lastActivityAt": record["lastActivityAt"],
                    "agents": chunk,
                }
                # Not through self.call: FORBIDDEN (a writer key) stops nothing but this step.
                self.repository.execute(
                    calls.Call(RESTORE_SESSION_TIMES, variables, lambda _: None, retry_safe=True)
                )
        except GraphQLSessionError as error:
            if error.code != "FORBIDDEN":
                check(error)
            else:
                self.times_refused = True
                self.report.note(
                    "sessions",
                    "their updatedAt and lastActivityAt (and agents' lastActivityAt) show the import's "
                    "time: setting them back to the file's (restoreSessionTimes) needs an admin key",
                )
                return
            self.report.skip(f"session {session.session_id}", f"times not restored: {refusal(error)}")

    def _skip(self, skipping: Skipping) -> None:
        self.report.skip(
            skipping.where,
            skipping.reason,
            sessions=skipping.sessions,
            agents=skipping.agents,
            messages=skipping.messages,
            multi_agents=skipping.multi_agents,
        )

    # Agents and their messages

    def start_agent(self, session: SessionImport, record: Record) -> None:
        agent_id = record["agentId"]
        session.agent_activity.append({"agentId": agent_id, "lastActivityAt": record["lastActivityAt"]})
        if session.skipping is not None:
            session.skipping.agents += 1
            session.agent = AgentImport(self, session.session_id, agent_id, None, skipping=session.skipping)
            return
        where = f"session {session.session_id} agent {agent_id}"
        values = {
            "agentId": agent_id,
            **{name: record[name] for name in AGENT_STATES},
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
        }
        stored: dict[str, Any] | None = None
        try:
            calls.check_id(agent_id, "agent")
            key = {"sessionId": session.session_id, "agentId": agent_id}
            stored = None if session.new else self.read(EXPORT_AGENT, key)["agent"]
            if stored is None:
                try:
                    self.call(RESTORE_AGENT, {"sessionId": session.session_id, "agent": values})
                except SessionAlreadyExistsError:
                    stored = self.read(EXPORT_AGENT, key)["agent"]
        except (GraphQLSessionError, ValueError) as error:
            session.troubled = True
            skipping = Skipping(where, refusal(error), agents=1)
            session.agent = AgentImport(self, session.session_id, agent_id, None, skipping=skipping)
            return
        if stored is None:
            self.report.add_imported(Kind.AGENT)
            session.agent = AgentImport(self, session.session_id, agent_id, None)
        elif all(canonical(stored[name]) == canonical(record[name]) for name in AGENT_STATES):
            self.report.add_present(Kind.AGENT)
            stored_messages = StoredMessages(self, session.session_id, agent_id)
            session.agent = AgentImport(
                self, session.session_id, agent_id, stored_messages, stored_count=stored["messageCount"]
            )
        else:
            session.troubled = True
            reason = (
                "conflict: the server holds this agent with another state; nothing of it imported, "
                "nothing overwritten"
            )
            skipping = Skipping(where, reason, agents=1)
            session.agent = AgentImport(self, session.session_id, agent_id, None, skipping=skipping)

    def finish_agent(self) -> None:
        session = self.session
        if session is None or session.agent is None:
            return
        agent, session.agent = session.agent, None
        agent.finish()
        if agent.gone_on and agent.skipping is None:
            session.gone_on = True
            where = f"session {session.session_id} agent {agent.agent_id}"
            self.report.note(
                where, "the server holds more messages of it than the file: it has gone on since"
            )
        if agent.skipping is not None and agent.skipping is not session.skipping:
            session.troubled = True
            self._skip(agent.skipping)

    # Multi-agents and storage objects

    def import_multi_agent(self, session: SessionImport, record: Record) -> None:
        self.finish_agent()
        multi_agent_id = record["multiAgentId"]
        if session.skipping is not None:
            session.skipping.multi_agents += 1
            return
        where = f"session {session.session_id} multi-agent {multi_agent_id}"
        values = {key: record[key] for key in ("multiAgentId", "state", "createdAt", "updatedAt")}
        key = {"sessionId": session.session_id, "multiAgentId": multi_agent_id}
        try:
            stored = None if session.new else self.read(READ_MULTI_AGENT, key)["multiAgent"]
            if stored is None:
                try:
                    self.call(RESTORE_MULTI_AGENT, {"sessionId": session.session_id, "multiAgent": values})
                except SessionAlreadyExistsError:
                    stored = self.read(READ_MULTI_AGENT, key)["multiAgent"]
        except (GraphQLSessionError, ValueError) as error:
            session.troubled = True
            self.report.skip(where, refusal(error), multi_agents=1)
            return
        if stored is None:
            self.report.add_imported(Kind.MULTI_AGENT)
        elif canonical(stored["state"]) == canonical(record["state"]):
            self.report.add_present(Kind.MULTI_AGENT)
        else:
            session.troubled = True
            reason = "conflict: the server holds this multi-agent with another state; nothing overwritten"
            self.report.skip(where, reason, multi_agents=1)

    def import_object(self, record: Record) -> None:
        key, data = record["key"], record["data"]
        if self.session is not None and session_of(key) != self.session.session_id:
            self.finish_session()  # the objects of no session, after the last session
        outcome = self._copy(key, data)
        if self.session is not None:
            self.session.objects.add(outcome)
            if outcome == "skipped":
                self.session.troubled = True

    def _copy(self, key: str, data: str) -> str:
        kind = kind_of(key)
        counts = {"agents": int(kind is Kind.AGENT), "multi_agents": int(kind is Kind.MULTI_AGENT)}
        try:
            stored = self.read(READ_STORAGE_OBJECT, {"key": key})["storageObject"]
            if stored == data:
                if kind is not None:
                    self.report.add_present(kind)
                return "present"
            if stored is not None:
                reason = "conflict: the server holds other bytes under this key; not overwritten"
                self.report.skip(key, reason, **counts)
                return "skipped"
            self.call(WRITE_STORAGE_OBJECT, {"key": key, "data": data}, retry_safe=True)
        except GraphQLSessionError as error:
            self.report.skip(key, refusal(error), **counts)
            return "skipped"
        if kind is not None:
            self.report.add_imported(kind)
        return "imported"
