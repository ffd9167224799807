"""The bytes one answer may hold, and the stored documents read for it: SESSION_GRAPHQL_MAX_RESPONSE_BYTES.

``graphql_api.execution`` charges what the answer holds as values are completed; reads of stored
documents are told the room left (``read_within``), so rows that would not fit are never sent by
PostgreSQL (``db.byte_caps``). Past the budget the answer is refused whole (``RESPONSE_TOO_LARGE``).
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from db.byte_caps import metered
from db.errors import TooManyBytesError
from graphql_api.errors import ErrorCode, LimitError

T = TypeVar("T")


class AnswerBudget:
    """Bytes one answer may still hold (``left``), and bytes of stored documents read for it
    (``read``), each at most ``most``. ``left`` goes below zero once, and then the answer is refused
    whole: partial data from a request that asked for too much is no use to anyone."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.left = most
        self.read = 0
        self._turns = asyncio.Lock()

    @property
    def exceeded(self) -> bool:
        return self.left < 0

    async def read_within(self, fetch: Callable[[int], Awaitable[T]], *, take_turns: bool = False) -> T:
        """``fetch(most_bytes)``, told how many bytes of stored documents it may read: what is left
        of the answer and of the reads; past them, the answer is refused.

        Root fields ``take_turns``, so that fifty aliases each see what the ones before them read.
        DataLoader batches, one per kind of row and already shared by the aliases, run at once: a
        nested query's sibling edges are read side by side, each within the room left.
        """
        if not take_turns:
            return await self._read(fetch)
        async with self._turns:
            return await self._read(fetch)

    async def _read(self, fetch: Callable[[int], Awaitable[T]]) -> T:
        if self.exceeded:
            raise self.refusal()
        with metered() as meter:
            try:
                return await fetch(max(0, min(self.left, self.most - self.read)))
            except TooManyBytesError:
                raise self.overflow() from None
            finally:
                self.read += meter.bytes

    def overflow(self) -> LimitError:
        """The budget spent: what was read would not fit. The refusal to raise."""
        self.left = -1
        return self.refusal()

    def refusal(self, *, mutation: bool = False) -> LimitError:
        return too_large(self.most, mutation=mutation)


def too_large(most: int, *, mutation: bool = False) -> LimitError:
    """The refusal of an answer over ``most`` bytes."""
    message = (
        f"the answer would be over {most} bytes, the server's limit "
        "(SESSION_GRAPHQL_MAX_RESPONSE_BYTES): ask for fewer fields, fewer aliases or smaller pages"
    )
    if mutation:
        message += "; the mutations that ran before it grew too large are stored, later ones did not run"
    return LimitError(ErrorCode.RESPONSE_TOO_LARGE, message)
