"""One DataLoader per nested edge, built fresh for every request.

Each batch opens its own pooled connection, so loaders that graphql-core runs concurrently never
share one. Batches spend the request's row budget; those reading stored documents (messages, agent
states, snapshots) also read within the answer's bytes, one at a time.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader

from db.analytics import listings
from db.analytics.listings import AgentFilterKey, AgentMessagesKey, LastMessageKey
from db.conversations import reads
from db.conversations.reads import AgentsOfSessionKey, MessageWindowKey
from db.engine import Database
from db.json_values import NOT_READ
from db.records import (
    AgentKey,
    AgentRecord,
    MessageKey,
    MessageRecord,
    MultiAgentKey,
    MultiAgentRecord,
    SessionKey,
    SessionRecord,
)
from db.storage import checkpoints
from db.storage.checkpoints import Checkpoint, CheckpointContent, CheckpointKey, CheckpointsKey
from graphql_api.errors import ErrorCode, LimitError
from graphql_api.guards.answer_budget import AnswerBudget

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")


class RowBudget:
    """Rows one request may load in all: the backstop for what the cost estimate only assumed
    (a session's agents in a listing) before the document ran."""

    def __init__(self, rows: int) -> None:
        self.left = rows
        self.total = rows

    def spend(self, values: Sequence[object]) -> None:
        self.left -= sum(len(value) if isinstance(value, list) else value is not None for value in values)
        if self.left < 0:
            raise LimitError(
                ErrorCode.QUERY_TOO_COSTLY,
                f"the answer would hold more than {self.total} rows: ask for smaller pages or fewer fields",
            )


class SharedLoader(DataLoader[K, V]):
    """A DataLoader whose loads are each awaited apart: strawberry's hands every load of one key the
    same future, and graphql-core cancels the fields beside one that fails, which would cancel that
    future for the aliases that did not fail too (their request then ended in a bare HTTP 500)."""

    def load(self, key: K) -> Awaitable[V]:
        return asyncio.shield(super().load(key))


Fetch = Callable[..., Awaitable[Any]]
"""A batch read of ``db``: ``(conn, keys, **limits)``."""


def _loader(db: Database, rows: RowBudget, fetch: Fetch) -> DataLoader[K, V]:
    """A loader of rows without stored documents (sessions, counts, checkpoints' metadata)."""

    async def load(keys: list[K]) -> Sequence[V]:
        values: Sequence[V] = await db.run(lambda conn: fetch(conn, keys), idempotent=True)
        rows.spend(values)
        return values

    return SharedLoader(load_fn=load)


def _sized_loader(
    db: Database, rows: RowBudget, answer: AnswerBudget, fetch: Fetch, *, capped: bool = False
) -> DataLoader[K, V]:
    """A loader of rows holding stored documents: each batch is told the bytes the answer has room
    for (``most_bytes``) and, ``capped``, one row more than the request may still load (``most``),
    so a batch that would spend either stops in the database rather than after its rows arrived."""

    async def load(keys: list[K]) -> Sequence[V]:
        def read(most_bytes: int) -> Awaitable[Sequence[V]]:
            limits = {"most_bytes": most_bytes, **({"most": max(0, rows.left) + 1} if capped else {})}
            return db.run(lambda conn: fetch(conn, keys, **limits), idempotent=True)

        values = await answer.read_within(read)
        rows.spend(values)
        return values

    return SharedLoader(load_fn=load)


def _by_key(fetch: Fetch) -> Fetch:
    """A read answering a mapping, as a list in the keys' order (None for missing ones)."""

    async def ordered(conn: AsyncConnection, keys: list[K], **limits: int) -> list[V | None]:
        found: Mapping[K, V] = await fetch(conn, keys, **limits)
        return [found.get(key) for key in keys]

    return ordered


def _grouped(fetch: Fetch) -> Fetch:
    """A read answering lists by key, as a list of lists in the keys' order."""

    async def ordered(conn: AsyncConnection, keys: list[K], **limits: int) -> list[list[V]]:
        found: Mapping[K, list[V]] = await fetch(conn, keys, **limits)
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
    last_message: DataLoader[LastMessageKey, MessageRecord | None]
    multi_agent: DataLoader[MultiAgentKey, MultiAgentRecord | None]
    multi_agents_of_session: DataLoader[AgentsOfSessionKey, list[MultiAgentRecord]]
    checkpoints: DataLoader[CheckpointsKey, list[Checkpoint]]
    checkpoint: DataLoader[CheckpointKey, tuple[Checkpoint, CheckpointContent] | None]
    _unprimed_messages: list[Sequence[MessageRecord]] = field(default_factory=list)

    def prime_sessions(self, records: Sequence[SessionRecord]) -> None:
        for record in records:
            self.session.prime(record.key, record)

    def prime_agents(self, records: Sequence[AgentRecord]) -> None:
        for record in records:
            self.agent.prime(record.key, record)

    def prime_messages(self, records: Sequence[MessageRecord]) -> None:
        # Primed when a message is first looked up by id (``load_message``): a restore reads 10,000
        # messages and rarely looks one of them up again, and priming each took 8% of its time.
        self._unprimed_messages.append(records)

    def load_message(self, key: MessageKey) -> Awaitable[MessageRecord | None]:
        for records in self._unprimed_messages:
            for record in records:
                if record.message is not NOT_READ:  # a look-up by id answers with the whole message
                    self.message.prime(record.key, record)
        self._unprimed_messages.clear()
        return self.message.load(key)

    def prime_multi_agents(self, records: Sequence[MultiAgentRecord]) -> None:
        for record in records:
            self.multi_agent.prime(record.key, record)


def create_loaders(db: Database, rows: RowBudget, answer: AnswerBudget) -> Loaders:
    def sized(fetch: Fetch, *, capped: bool = False) -> DataLoader[Any, Any]:
        return _sized_loader(db, rows, answer, fetch, capped=capped)

    return Loaders(
        session=_loader(db, rows, _by_key(reads.get_sessions)),
        agent=sized(_by_key(reads.get_agents)),
        agents_of_session=sized(_grouped(reads.list_agents_of_sessions), capped=True),
        message=sized(_by_key(reads.get_messages)),
        message_window=sized(reads.list_message_windows, capped=True),
        agent_messages=sized(listings.agent_message_pages, capped=True),
        agent_message_count=_loader(db, rows, listings.count_agent_messages),
        last_message=sized(listings.latest_messages),
        multi_agent=sized(_by_key(reads.get_multi_agents)),
        multi_agents_of_session=sized(_grouped(reads.list_multi_agents_of_sessions), capped=True),
        checkpoints=_loader(db, rows, _grouped(checkpoints.list_checkpoints)),
        checkpoint=sized(_by_key(checkpoints.read_checkpoints)),
    )
