"""The one filter dashboards use for sessions, agents, messages and statistics, as SQL conditions.

A filter names conditions of three levels: of the session (labels, id prefix, type, activity), of
the agent (its id) and of the message (role, content, tools, redaction). Listing a level, the
conditions of the levels above it apply through a join and those below through ``EXISTS``: the
sessions with a message calling ``refund`` are the sessions that have one.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, any_, exists, func, literal, select, true
from sqlalchemy.dialects.postgresql import JSONB

from db.models import agents, messages, sessions


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``start <= t < end``; either end may be open."""

    start: datetime | None = None
    end: datetime | None = None

    def condition(self, column: Any) -> ColumnElement[bool]:
        parts = []
        if self.start is not None:
            parts.append(column >= self.start)
        if self.end is not None:
            parts.append(column < self.end)
        return and_(true(), *parts)

    @property
    def empty(self) -> bool:
        return self.start is None and self.end is None


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    """Hashable, so DataLoader keys can carry it."""

    # the session
    session_id: str | None = None
    session_id_prefix: str | None = None
    session_type: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    snapshot_backed: bool | None = None
    updated: TimeRange = field(default_factory=TimeRange)
    last_activity: TimeRange = field(default_factory=TimeRange)
    # the agent
    agent_id: str | None = None
    # the message
    role: str | None = None
    content_type: str | None = None
    tool_name: str | None = None
    tool_status: str | None = None
    redacted: bool | None = None
    # of whatever is listed: a session's, an agent's or a message's creation
    created: TimeRange = field(default_factory=TimeRange)

    def session_conditions(self, s: Table) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.session_id is not None:
            found.append(s.c.session_id == self.session_id)
        if self.session_id_prefix is not None:
            found.append(func.starts_with(s.c.session_id, self.session_id_prefix))
        if self.session_type is not None:
            found.append(s.c.session_type == self.session_type)
        if self.labels:
            found.append(s.c.labels.op("@>")(literal(dict(self.labels), type_=JSONB)))
        if self.snapshot_backed is not None:
            found.append(s.c.snapshot_backed == self.snapshot_backed)
        if not self.updated.empty:
            found.append(self.updated.condition(s.c.updated_at))
        if not self.last_activity.empty:
            found.append(self.last_activity.condition(s.c.last_activity_at))
        return found

    @property
    def has_session_conditions(self) -> bool:
        return bool(
            self.session_id is not None
            or self.session_id_prefix is not None
            or self.session_type is not None
            or self.labels
            or self.snapshot_backed is not None
            or not self.updated.empty
            or not self.last_activity.empty
        )

    def message_conditions(self, m: Table) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.role is not None:
            found.append(m.c.role == self.role)
        if self.content_type is not None:
            found.append(literal(self.content_type) == any_(m.c.content_types))
        if self.tool_name is not None:
            found.append(literal(self.tool_name) == any_(m.c.tool_names))
        if self.tool_status is not None:
            found.append(literal(self.tool_status) == any_(m.c.tool_statuses))
        if self.redacted is not None:
            found.append(m.c.is_redacted == self.redacted)
        return found

    @property
    def has_message_conditions(self) -> bool:
        return bool(
            self.role is not None
            or self.content_type is not None
            or self.tool_name is not None
            or self.tool_status is not None
            or self.redacted is not None
        )


EVERYTHING = ConversationFilter()


def sessions_matching(f: ConversationFilter) -> list[ColumnElement[bool]]:
    """Conditions on ``sessions`` for a listing of sessions."""
    found = f.session_conditions(sessions)
    found.append(f.created.condition(sessions.c.created_at))
    if f.agent_id is not None:
        found.append(
            exists(
                select(agents.c.agent_id).where(
                    agents.c.session_id == sessions.c.session_id,
                    agents.c.tenant == sessions.c.tenant,
                    agents.c.agent_id == f.agent_id,
                )
            )
        )
    if f.has_message_conditions:
        found.append(
            exists(
                select(messages.c.message_id).where(
                    messages.c.session_id == sessions.c.session_id,
                    messages.c.tenant == sessions.c.tenant,
                    *([messages.c.agent_id == f.agent_id] if f.agent_id is not None else []),
                    *f.message_conditions(messages),
                )
            )
        )
    return found


def agents_matching(f: ConversationFilter) -> list[ColumnElement[bool]]:
    """Conditions on ``session_agents`` (joined to ``sessions`` when the filter needs it)."""
    found: list[ColumnElement[bool]] = [f.created.condition(agents.c.created_at)]
    if f.agent_id is not None:
        found.append(agents.c.agent_id == f.agent_id)
    if f.has_session_conditions:
        found.append(
            exists(
                select(sessions.c.session_id).where(*_same_session(agents), *f.session_conditions(sessions))
            )
        )
    if f.has_message_conditions:
        found.append(
            exists(
                select(messages.c.message_id).where(
                    messages.c.session_id == agents.c.session_id,
                    messages.c.tenant == agents.c.tenant,
                    messages.c.agent_id == agents.c.agent_id,
                    *f.message_conditions(messages),
                )
            )
        )
    return found


def messages_matching(f: ConversationFilter, m: Table = messages) -> list[ColumnElement[bool]]:
    """Conditions on ``session_messages`` (its session through ``EXISTS`` when the filter needs it)."""
    found = [f.created.condition(m.c.created_at), *f.message_conditions(m)]
    if f.agent_id is not None:
        found.append(m.c.agent_id == f.agent_id)
    if f.has_session_conditions:
        found.append(
            exists(select(sessions.c.session_id).where(*_same_session(m), *f.session_conditions(sessions)))
        )
    return found


def _same_session(child: Table) -> list[ColumnElement[bool]]:
    return [sessions.c.session_id == child.c.session_id, sessions.c.tenant == child.c.tenant]
