"""The reference for appends: asyncpg inserting the row the server stores, with nothing around it.

The statement is the single-row insert the server makes into ``session_messages`` (tenant
``default``), prepared once, autocommit, with the derived columns filled as the server fills them
(``db.conversations.facts``, computed once beforehand: the reference pays for storing the row, not for
deriving it). The server's own statement also adds to the agent's and session's totals and
records tool calls; that, GraphQL and HTTP are what the ratio measures.
"""

import json
from typing import Any

import asyncpg

from db.conversations.facts import facts_of
from db.conversations.message_writes import FACT_COLUMNS, facts_json

_INSERT = (
    "INSERT INTO session_messages (session_id, tenant, agent_id, message_id, role, message, redact_message,"
    f" created_at, updated_at, {', '.join(FACT_COLUMNS)})"
    " VALUES ($1, 'default', $2, $3, $4, $5::json, NULL, now(), now(), "
    + ", ".join(f"${n}" for n in range(6, 6 + len(FACT_COLUMNS)))
    + ")"
)


class RawInsert:
    """A prepared insert of ``message`` under any session, agent and message id."""

    def __init__(self, statement: asyncpg.prepared_stmt.PreparedStatement, message: dict[str, Any]) -> None:
        facts = facts_json(facts_of(message, None), 0)
        self._statement = statement
        self._role = message["role"]
        self._body = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        self._facts = [facts["text" if name == "plain_text" else name] for name in FACT_COLUMNS]

    @classmethod
    async def prepare(cls, conn: asyncpg.Connection, message: dict[str, Any]) -> "RawInsert":
        return cls(await conn.prepare(_INSERT), message)

    async def __call__(self, session_id: str, agent_id: str, message_id: int) -> None:
        await self._statement.fetch(session_id, agent_id, message_id, self._role, self._body, *self._facts)


async def create_session_and_agent(conn: asyncpg.Connection, session_id: str, agent_id: str) -> None:
    """The parents the messages' foreign key needs, written directly."""
    await conn.execute(
        "INSERT INTO sessions (session_id, tenant, session_type) VALUES ($1, 'default', 'AGENT')"
        " ON CONFLICT DO NOTHING",
        session_id,
    )
    await conn.execute(
        "INSERT INTO session_agents (session_id, tenant, agent_id, state, conversation_manager_state,"
        " internal_state) VALUES ($1, 'default', $2, '{}', '{}', '{}')",
        session_id,
        agent_id,
    )
