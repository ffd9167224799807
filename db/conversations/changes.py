"""What a subscriber reads when woken (``db.notifications``): an agent's messages after its cursor.

Keyed like every read of ``db.conversations.reads``, tenant first: a subscriber reads only its
own tenant's rows, whatever a notice said.
"""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.conversations.reads import MESSAGE_COLUMNS, message_record
from db.models import messages
from db.records import AgentKey, MessageRecord


def _of_agent(key: AgentKey) -> list[object]:
    return [
        messages.c.tenant == key.tenant,
        messages.c.session_id == key.session_id,
        messages.c.agent_id == key.agent_id,
    ]


async def messages_after(conn: AsyncConnection, key: AgentKey, after: int, limit: int) -> list[MessageRecord]:
    """The agent's messages with an id above ``after``, in id order, at most ``limit`` of them."""
    rows = await conn.execute(
        select(*MESSAGE_COLUMNS)
        .where(*_of_agent(key), messages.c.message_id > after)  # type: ignore[arg-type]
        .order_by(messages.c.message_id)
        .limit(limit)
    )
    return [message_record(row) for row in rows]


async def last_message_id(conn: AsyncConnection, key: AgentKey) -> int:
    """The agent's highest message id; -1 when it has none (message ids start at 0)."""
    found = await conn.execute(select(func.max(messages.c.message_id)).where(*_of_agent(key)))  # type: ignore[arg-type]
    last = found.scalar()
    return -1 if last is None else int(last)
