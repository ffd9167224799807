"""One DataLoader per nested edge, built fresh for every request.

Each batch opens its own pooled connection, so loaders that graphql-core runs concurrently never
share one.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader

from db import checkpoints, listings, queries
from db.checkpoints import Checkpoint, CheckpointKey, CheckpointsKey
from db.engine import Database
from db.errors import TooManyBytesError
from db.listings import AgentFilterKey, AgentMessagesKey
from db.queries import (
    AgentKey,
    AgentsOfSessionKey,
    MessageKey,
    MessageWindowKey,
    MultiAgentKey,
    SessionKey,
)
from db.records import AgentRecord, MessageRecord, MultiAgentRecord, SessionRecord
from db.snapshots import Snapshot
from graphql_api.errors import ErrorCode, LimitError
from graphql_api.execution import AnswerBudget

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")


class RowBudget:
    """Rows one request may load in all, the backstop for what the cost estimate only assumed
    before the document ran; and, through ``answer``, the bytes of stored JSON a batch may read."""

    def __init__(self, rows: int, answer: AnswerBudget | None = None) -> None:
        self.left = rows
        self.total = rows
        self.answer = answer or AnswerBudget(2**62)

    def capped(
        self, fetch: Callable[..., Awaitable[R]]
    ) -> Callable[[AsyncConnection, list[K]], Awaitable[R]]:
        """``fetch`` told to return at most one row more than is left, and no more stored JSON than
        the answer has room for, so a batch that would spend either stops in the database rather
        than after all its rows reached the server."""

        def within(conn: AsyncConnection, keys: list[K]) -> Awaitable[R]:
            return fetch(conn, keys, most=max(0, self.left) + 1, most_bytes=max(0, self.answer.left))

        return within

    def sized(self, fetch: Callable[..., Awaitable[R]]) -> Callable[[AsyncConnection, list[K]], Awaitable[R]]:
        """``fetch`` (one row per key) told to read no more stored JSON than the answer has room for."""

        def within(conn: AsyncConnection, keys: list[K]) -> Awaitable[R]:
            return fetch(conn, keys, most_bytes=max(0, self.answer.left))

        return within

    def spend(self, values: Sequence[object]) -> None:
        self.left -= sum(len(value) if isinstance(value, list) else value is not None for value in values)
        if self.left < 0:
            raise LimitError(
                ErrorCode.QUERY_TOO_COSTLY,
                f"the answer would hold more than {self.total} rows: ask for smaller pages or fewer fields",
            )


def _loader(
    db: Database, budget: RowBudget, fetch: Callable[[AsyncConnection, list[K]], Awaitable[Sequence[V]]]
) -> DataLoader[K, V]:
    async def load(keys: list[K]) -> Sequence[V]:
        if budget.answer.exceeded:
            raise budget.answer.refusal()  # the answer is refused whole: read nothing more
        try:
            values = await db.run(lambda conn: fetch(conn, keys), idempotent=True)
        except TooManyBytesError:
            raise budget.answer.overflow() from None
        budget.spend(values)
        return values

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
    session: DataLoader[SessionKey, SessionRecord | None]
    agent: DataLoader[AgentKey, AgentRecord | None]
    agents_of_session: DataLoader[AgentsOfSessionKey, list[AgentRecord]]
    message: DataLoader[MessageKey, MessageRecord | None]
    message_window: DataLoader[MessageWindowKey, list[MessageRecord]]
    agent_messages: DataLoader[AgentMessagesKey, list[MessageRecord]]
    agent_message_count: DataLoader[AgentFilterKey, int]
    last_message: DataLoader[AgentKey, MessageRecord | None]
    multi_agent: DataLoader[MultiAgentKey, MultiAgentRecord | None]
    multi_agents_of_session: DataLoader[AgentsOfSessionKey, list[MultiAgentRecord]]
    checkpoints: DataLoader[CheckpointsKey, list[Checkpoint]]
    checkpoint: DataLoader[CheckpointKey, tuple[Checkpoint, Snapshot] | None]

    def prime_sessions(self, records: Sequence[SessionRecord]) -> None:
        for record in records:
            self.session.prime((record.tenant, record.session_id), record)

    def prime_agents(self, records: Sequence[AgentRecord]) -> None:
        for record in records:
            self.agent.prime((record.tenant, record.session_id, record.agent_id), record)

    def prime_messages(self, records: Sequence[MessageRecord]) -> None:
        for record in records:
            self.message.prime((record.tenant, record.session_id, record.agent_id, record.message_id), record)

    def prime_multi_agents(self, records: Sequence[MultiAgentRecord]) -> None:
        for record in records:
            self.multi_agent.prime((record.tenant, record.session_id, record.multi_agent_id), record)


def create_loaders(db: Database, budget: RowBudget) -> Loaders:
    return Loaders(
        session=_loader(db, budget, _by_key(queries.get_sessions)),
        agent=_loader(db, budget, _by_key(budget.sized(queries.get_agents))),
        agents_of_session=_loader(db, budget, _grouped(budget.capped(queries.list_agents_of_sessions))),
        message=_loader(db, budget, _by_key(budget.sized(queries.get_messages))),
        message_window=_loader(db, budget, budget.capped(queries.list_message_windows)),
        agent_messages=_loader(db, budget, budget.capped(listings.agent_message_pages)),
        agent_message_count=_loader(db, budget, listings.count_agent_messages),
        last_message=_loader(db, budget, budget.sized(listings.latest_messages)),
        multi_agent=_loader(db, budget, _by_key(budget.sized(queries.get_multi_agents))),
        multi_agents_of_session=_loader(
            db, budget, _grouped(budget.capped(queries.list_multi_agents_of_sessions))
        ),
        checkpoints=_loader(db, budget, _grouped(checkpoints.list_checkpoints)),
        checkpoint=_loader(db, budget, _by_key(budget.sized(checkpoints.read_checkpoints))),
    )
