"""Where an import writes, how it shows progress, and the failures that stop it altogether."""

from dataclasses import dataclass
from typing import Protocol

from client.errors import TOKEN_PROVIDER_FAILED, TRANSPORT_FAILED, GraphQLSessionError
from client.repository import GraphQLSessionRepository
from client.storage import GraphQLStorage

STOPPING_CODES = frozenset(
    {
        "UNAUTHENTICATED",
        TOKEN_PROVIDER_FAILED,
        "FORBIDDEN",
        TRANSPORT_FAILED,
        "SERVICE_UNAVAILABLE",
        "RATE_LIMITED",
    }
)
"""Failures every later request would meet as well (the credentials, the server or its database gone,
retries used up): going on would only repeat them once per item."""


class ImportStopped(Exception):
    """The import ended early for a failure in ``STOPPING_CODES``; what it stored stays stored."""

    def __init__(self, error: GraphQLSessionError) -> None:
        super().__init__(f"{error.code}: {one_line(error)}")
        self.error = error


def one_line(error: GraphQLSessionError) -> str:
    """The error's message on one line, without the operation's name the client puts first."""
    text = str(error).splitlines()[0] if str(error) else error.code
    for prefix in (f"{error.operation} failed with {error.code}: ", f"{error.operation} failed: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def check(error: GraphQLSessionError) -> GraphQLSessionError:
    """``error`` back, to be reported for one item, or ``ImportStopped`` raised for it."""
    if error.code in STOPPING_CODES:
        raise ImportStopped(error) from error
    return error


class Progress(Protocol):
    def advance(self, messages: int) -> None:
        """``messages`` more were dealt with: imported, found stored, or skipped."""

    def session_done(self) -> None: ...


class NoProgress:
    def advance(self, messages: int) -> None:
        pass

    def session_done(self) -> None:
        pass


@dataclass(frozen=True)
class ImportTarget:
    """The session store an import writes to: ``repository`` for FileSessionManager sessions,
    ``storage`` (a ``GraphQLStorage`` over the same API) for snapshot directories."""

    repository: GraphQLSessionRepository
    dry_run: bool = False
    storage: GraphQLStorage | None = None
