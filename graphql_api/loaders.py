"""One DataLoader per nested edge, built fresh for every request.

Each batch opens its own pooled connection, so loaders that graphql-core runs concurrently never
share one.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader

from db import queries
from db.engine import Database
from db.queries import AgentKey, MessageKey, MultiAgentKey
from db.records import AgentRecord, MessageRecord, MultiAgentRecord, SessionRecord

K = TypeVar("K")
V = TypeVar("V")

MessageWindowKey = tuple[str, str, int, int | None]
"""(session_id, agent_id, offset, limit)"""
MessagePageKey = tuple[str, str, int | None, int]
"""(session_id, agent_id, after message_id, limit)"""


def _loader(
    db: Database, fetch: Callable[[AsyncConnection, list[K]], Awaitable[Sequence[V]]]
) -> DataLoader[K, V]:
    async def load(keys: list[K]) -> Sequence[V]:
        return await db.run(lambda conn: fetch(conn, keys), idempotent=True)

    return DataLoader(load_fn=load)


def _by_key(
    fetch: Callable[[AsyncConnection, list[K]], Awaitable[Mapping[K, V]]],
) -> Callable[[AsyncConnection, list[K]], Awaitable[list[V | None]]]:
    async def ordered(conn: AsyncConnection, keys: list[K]) -> list[V | None]:
        found = await fetch(conn, keys)
        return [found.get(key) for key in keys]

    return ordered


def _grouped(
    fetch: Callable[[AsyncConnection, list[K]], Awaitable[Mapping[K, list[V]]]],
) -> Callable[[AsyncConnection, list[K]], Awaitable[list[list[V]]]]:
    async def ordered(conn: AsyncConnection, keys: list[K]) -> list[list[V]]:
        found = await fetch(conn, keys)
        return [found.get(key, []) for key in keys]

    return ordered


@dataclass(frozen=True)
class Loaders:
    session: DataLoader[str, SessionRecord | None]
    agent: DataLoader[AgentKey, AgentRecord | None]
    agents_of_session: DataLoader[str, list[AgentRecord]]
    message: DataLoader[MessageKey, MessageRecord | None]
    message_window: DataLoader[MessageWindowKey, list[MessageRecord]]
    message_page: DataLoader[MessagePageKey, list[MessageRecord]]
    message_count: DataLoader[AgentKey, int]
    multi_agent: DataLoader[MultiAgentKey, MultiAgentRecord | None]
    multi_agents_of_session: DataLoader[str, list[MultiAgentRecord]]

    def prime_sessions(self, records: Sequence[SessionRecord]) -> None:
        for record in records:
            self.session.prime(record.session_id, record)

    def prime_agents(self, records: Sequence[AgentRecord]) -> None:
        for record in records:
            self.agent.prime((record.session_id, record.agent_id), record)

    def prime_messages(self, records: Sequence[MessageRecord]) -> None:
        for record in records:
            self.message.prime((record.session_id, record.agent_id, record.message_id), record)

    def prime_multi_agents(self, records: Sequence[MultiAgentRecord]) -> None:
        for record in records:
            self.multi_agent.prime((record.session_id, record.multi_agent_id), record)


def create_loaders(db: Database) -> Loaders:
    return Loaders(
        session=_loader(db, _by_key(queries.get_sessions)),
        agent=_loader(db, _by_key(queries.get_agents)),
        agents_of_session=_loader(db, _grouped(queries.list_agents_of_sessions)),
        message=_loader(db, _by_key(queries.get_messages)),
        message_window=_loader(db, queries.list_message_windows),
        message_page=_loader(db, queries.list_messages_after),
        message_count=_loader(db, queries.count_messages),
        multi_agent=_loader(db, _by_key(queries.get_multi_agents)),
        multi_agents_of_session=_loader(db, _grouped(queries.list_multi_agents_of_sessions)),
    )
