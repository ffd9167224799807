"""Lists read by ``offset`` and ``limit`` (an agent's messages, a session's agents, an agent's
checkpoints), as Strands' ``list_messages`` reads them: without a limit, all of them up to a
maximum, and past it an error that says how to page rather than a list silently cut short."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from strawberry.dataloader import DataLoader

from graphql_api.errors import InputError
from graphql_api.guards.arguments import check_not_negative, check_page_size

R = TypeVar("R")
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Window:
    offset: int
    limit: int | None
    most: int
    """The most an unlimited window returns."""

    @property
    def fetch(self) -> int:
        """Rows to read: the limit, or one past the most, which tells whether there are more."""
        return self.most + 1 if self.limit is None else self.limit

    def of(self, records: Sequence[R], what: str) -> Sequence[R]:
        """``records`` as read, after checking an unlimited window did not find more than its most."""
        if self.limit is None and len(records) > self.most:
            raise InputError(
                "limit",
                f"there are more than {self.most} {what} from offset {self.offset}; "
                f"read them in pages of at most {self.most} with offset and limit",
            )
        return records


def window(offset: int, limit: int | None, *, most: int) -> Window:
    """Checks the arguments: neither negative, ``limit`` at most ``most``."""
    check_not_negative("offset", offset)
    check_not_negative("limit", limit)
    if limit is not None:
        check_page_size("limit", limit, most)
    return Window(offset, limit, most)


async def load_window(
    loader: DataLoader[K, list[R]],
    key: Callable[[int, int], K],
    offset: int,
    limit: int | None,
    *,
    most: int,
    what: str,
) -> Sequence[R]:
    """The window of ``loader``'s list at ``key(offset, rows to read)``."""
    wanted = window(offset, limit, most=most)
    return wanted.of(await loader.load(key(wanted.offset, wanted.fetch)), what)
