"""What both session repositories are built from: the same arguments, retry schedules and credentials.

``GraphQLSessionRepository`` (blocking, gql's httpx transport) and
``AsyncGraphQLSessionRepository`` (asyncio, gql's aiohttp transport) take the same arguments; each
opens its own transport and builds its own write-behind sender.
"""

import sys
from collections.abc import Mapping
from typing import Generic, TypeVar

from client import calls, credentials
from client.backoff import Backoff
from client.write_behind.queue import DEFAULT_MAX_PENDING, DEFAULT_RETRY_SECONDS

TokenT = TypeVar("TokenT")
SenderT = TypeVar("SenderT")
T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.1
IDLE_CONNECTION_SECONDS = 4.0
"""How long an unused connection is kept: less than uvicorn's 5 s keep-alive, so a request is never
sent on a connection the server is closing at that moment (which would fail a write not safe to resend)."""


class RepositoryBase(Generic[TokenT, SenderT]):
    """The constructor both repositories share; their docstrings say what each argument does."""

    def __init__(
        self,
        url: str,
        *,
        token: str | TokenT | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        message_page_size: int = calls.MAX_LIST_SIZE,
        labels: Mapping[str, str] | None = None,
        write_behind: bool = False,
        max_pending: int = DEFAULT_MAX_PENDING,
        write_behind_retry_seconds: float = DEFAULT_RETRY_SECONDS,
    ) -> None:
        self.url = url
        self.labels = calls.check_labels(labels)
        sent_headers = credentials.connection_headers(headers, token)
        self._headers = sent_headers
        self._token_provider: TokenT | None = None if token is None or isinstance(token, str) else token
        self._backoff = Backoff(retries=retries, base=backoff, longest_asked=timeout)
        # Delivery counts time, not retries: the deadline passed to _run ends it.
        self._delivery_backoff = Backoff(
            retries=sys.maxsize, base=backoff, longest_asked=write_behind_retry_seconds
        )
        self._delivery_seconds = write_behind_retry_seconds
        self._message_page_size = message_page_size
        self._write_behind: SenderT | None = self._write_behind_sender(max_pending) if write_behind else None
        self._open(sent_headers, timeout)

    def _attempts(
        self, call: calls.Call[T], backoff: Backoff | None, deadline: float | None
    ) -> calls.Attempts[T]:
        """The retry schedule of one call: the repository's own, or the write-behind's ``backoff``."""
        return calls.Attempts(
            call,
            self._backoff if backoff is None else backoff,
            self.url,
            refreshable=self._token_provider is not None,
            deadline=deadline,
        )

    def _write_behind_sender(self, max_pending: int) -> SenderT:
        raise NotImplementedError

    def _open(self, headers: dict[str, str], timeout: float) -> None:
        """Builds the transport (connecting now or on the first call)."""
        raise NotImplementedError
