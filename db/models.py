"""Tables of the session store.

Every primary key starts with ``session_id`` and no key is a serial, so each table can be
distributed by ``session_id`` (Citus-style) with all of one session's rows on one shard.
JSON documents use PostgreSQL ``json`` rather than ``jsonb``: ``jsonb`` rejects strings that
contain ``\\u0000``, while ``json`` keeps the exact text it was given.
"""

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 255


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


def _updated_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


class SessionModel(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_created_at_session_id", "created_at", "session_id"),)

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    session_type: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class AgentModel(Base):
    __tablename__ = "session_agents"
    __table_args__ = (ForeignKeyConstraint(["session_id"], ["sessions.session_id"], ondelete="CASCADE"),)

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    state: Mapped[Any] = mapped_column(JSON, nullable=False)
    conversation_manager_state: Mapped[Any] = mapped_column(JSON, nullable=False)
    internal_state: Mapped[Any] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class MessageModel(Base):
    __tablename__ = "session_messages"
    __table_args__ = (
        ForeignKeyConstraint(
            ["session_id", "agent_id"],
            ["session_agents.session_id", "session_agents.agent_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("message_id >= 0", name="message_id_not_negative"),
        # Role filters stay within one agent's conversation (the primary key orders it).
        Index("ix_session_messages_role", "session_id", "agent_id", "role", "message_id"),
    )

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    message_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    message: Mapped[Any] = mapped_column(JSON, nullable=False)
    redact_message: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class MultiAgentModel(Base):
    __tablename__ = "session_multi_agents"
    __table_args__ = (ForeignKeyConstraint(["session_id"], ["sessions.session_id"], ondelete="CASCADE"),)

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    multi_agent_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    state: Mapped[Any] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


sessions = cast(Table, SessionModel.__table__)
agents = cast(Table, AgentModel.__table__)
messages = cast(Table, MessageModel.__table__)
multi_agents = cast(Table, MultiAgentModel.__table__)
