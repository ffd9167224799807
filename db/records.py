"""Plain values that cross the boundary between storage and the API."""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

from db.json_values import StoredJSON

R = TypeVar("R")
_NAMES: dict[
    tuple[type[Any], type[Any] | None], tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]
] = {}


def record_of(cls: type[R], source: Any, *, shared_only: bool = False, **converted: Any) -> R:
    """The dataclass ``cls`` (a record, or a GraphQL type) made from ``source`` (a result row, or a
    record): each field read from ``source``'s attribute of its name, but for ``converted`` ones (the
    same at every call for one ``cls``). ``shared_only``: only the fields ``source``'s type has, the
    others left to their defaults (a type made from a record that lacks some of its fields)."""
    key = (cls, type(source) if shared_only else None)
    found = _NAMES.get(key)
    if found is None:
        names = tuple(
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.init and f.name not in converted and (not shared_only or hasattr(source, f.name))
        )
        getter = attrgetter(*names)
        found = _NAMES[key] = (names, getter if len(names) > 1 else lambda value: (getter(value),))
    names, values = found
    return cls(**dict(zip(names, values(source), strict=True)), **converted)


class SessionKey(NamedTuple):
    """A session, inside its tenant: the first part of every key of a session's rows."""

    tenant: str
    session_id: str


class AgentKey(NamedTuple):
    tenant: str
    session_id: str
    agent_id: str


class MessageKey(NamedTuple):
    tenant: str
    session_id: str
    agent_id: str
    message_id: int


class MultiAgentKey(NamedTuple):
    tenant: str
    session_id: str
    multi_agent_id: str


@dataclass(frozen=True, slots=True)
class Totals:
    """Running totals of a session's or agent's messages."""

    message_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_tokens: int = 0
    tool_calls: int = 0
    tool_errors: int = 0


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    tenant: str
    session_type: str
    created_at: datetime
    updated_at: datetime
    labels: dict[str, str] = field(default_factory=dict)
    title: str | None = None
    last_activity_at: datetime | None = None
    totals: Totals = field(default_factory=Totals)
    snapshot_backed: bool = False

    @property
    def key(self) -> SessionKey:
        return SessionKey(self.tenant, self.session_id)


@dataclass(frozen=True, slots=True)
class AgentRecord:
    session_id: str
    tenant: str
    agent_id: str
    state: Any
    conversation_manager_state: Any
    internal_state: Any
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime | None = None
    totals: Totals = field(default_factory=Totals)
    snapshot_backed: bool = False

    @property
    def key(self) -> AgentKey:
        return AgentKey(self.tenant, self.session_id, self.agent_id)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    session_id: str
    tenant: str
    agent_id: str
    message_id: int
    role: str
    message: StoredJSON
    redact_message: StoredJSON | None
    created_at: datetime
    updated_at: datetime

    @property
    def key(self) -> MessageKey:
        return MessageKey(self.tenant, self.session_id, self.agent_id, self.message_id)


@dataclass(frozen=True, slots=True)
class MultiAgentRecord:
    session_id: str
    tenant: str
    multi_agent_id: str
    state: Any
    created_at: datetime
    updated_at: datetime
    snapshot_backed: bool = False

    @property
    def key(self) -> MultiAgentKey:
        return MultiAgentKey(self.tenant, self.session_id, self.multi_agent_id)


@dataclass(frozen=True, slots=True)
class SessionDraft:
    session_id: str
    session_type: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    title: str | None = None


@dataclass(frozen=True, slots=True)
class AgentDraft:
    """``internal_state`` None: ``{}`` for a new agent, the stored one for an update."""

    agent_id: str
    state: Any
    conversation_manager_state: Any
    internal_state: Any | None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MessageDraft:
    message_id: int
    role: str
    message: Any
    redact_message: Any | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MultiAgentDraft:
    multi_agent_id: str
    state: Any
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks for a change, as the audit log records it."""

    name: str
    role: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    secret_sha256: bytes
    label: str
    role: str
    tenant: str | None
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEventRecord:
    event_id: str
    occurred_at: datetime
    tenant: str | None
    actor: str
    actor_role: str
    action: str
    session_id: str | None
    target: Any
    request_id: str | None
