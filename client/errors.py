"""The exceptions the client raises, and how gql's failures become them.

Every failure is a ``strands.types.exceptions.SessionException``, so code written for Strands' own
stores keeps working; the subclass and ``code`` say what went wrong.
"""

from typing import Any

from gql.transport.exceptions import (
    TransportClosed,
    TransportConnectionFailed,
    TransportQueryError,
    TransportServerError,
)
from strands.types.exceptions import SessionException

TRANSPORT_FAILED = "TRANSPORT_FAILED"
"""The ``code`` of a failure to exchange a request with the server at all (no GraphQL error came back)."""

# Statuses a proxy or load balancer in front of the server answers with when trying again may help.
RETRYABLE_HTTP_STATUSES = frozenset({429, 502, 503, 504})


class GraphQLSessionError(SessionException):
    """A call to the session store failed.

    ``code`` is the server's ``extensions.code`` (``NOT_FOUND``, ``BAD_USER_INPUT``, ...) or
    ``TRANSPORT_FAILED``; ``operation`` names the GraphQL operation; ``field`` names the invalid
    argument of a ``BAD_USER_INPUT`` when the server said which. ``retryable`` is true when sending
    the same request again may succeed; the repositories do so only for calls that are safe to repeat.
    """

    def __init__(
        self, message: str, *, code: str, operation: str, field: str | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.operation = operation
        self.field = field
        self.retryable = retryable


class SessionNotFoundError(GraphQLSessionError):
    """NOT_FOUND: the thing, or the session or agent it belongs to, does not exist."""


class SessionAlreadyExistsError(GraphQLSessionError):
    """ALREADY_EXISTS: a create named something that exists; nothing changed."""


class SessionConflictError(GraphQLSessionError):
    """CONFLICT: the message id is stored with different content; nothing was overwritten."""


class SessionBadInputError(GraphQLSessionError):
    """BAD_USER_INPUT: the server refused an argument; ``field`` names it when known."""


class SessionUnauthenticatedError(GraphQLSessionError):
    """UNAUTHENTICATED: the request carried no valid credentials (see the ``headers`` argument)."""


class SessionForbiddenError(GraphQLSessionError):
    """FORBIDDEN: the credentials do not allow this operation."""


class SessionUnavailableError(GraphQLSessionError):
    """SERVICE_UNAVAILABLE: the server cannot reach its database; trying later may succeed."""


class SessionTransportError(GraphQLSessionError):
    """No GraphQL answer: the server could not be reached, timed out, or answered with something else.

    ``url`` is the server's address and ``__cause__`` the underlying error. ``never_sent`` is true
    when the connection was refused, so the server cannot have acted on the request.
    """

    def __init__(
        self, message: str, *, operation: str, url: str, retryable: bool, never_sent: bool = False
    ) -> None:
        super().__init__(message, code=TRANSPORT_FAILED, operation=operation, retryable=retryable)
        self.url = url
        self.never_sent = never_sent


ERRORS_BY_CODE: dict[str, type[GraphQLSessionError]] = {
    "NOT_FOUND": SessionNotFoundError,
    "ALREADY_EXISTS": SessionAlreadyExistsError,
    "CONFLICT": SessionConflictError,
    "BAD_USER_INPUT": SessionBadInputError,
    "UNAUTHENTICATED": SessionUnauthenticatedError,
    "FORBIDDEN": SessionForbiddenError,
    "SERVICE_UNAVAILABLE": SessionUnavailableError,
}

_CODES_BY_HTTP_STATUS = {401: "UNAUTHENTICATED", 403: "FORBIDDEN"}


def from_graphql_errors(errors: list[Any] | None, operation: str) -> GraphQLSessionError:
    """The exception for a response's ``errors``; the first error decides, as it caused the rest."""
    first = errors[0] if errors else {}
    if not isinstance(first, dict):
        first = {"message": str(first)}
    extensions = first.get("extensions") or {}
    code = str(extensions.get("code") or "INTERNAL_SERVER_ERROR")
    field = extensions.get("field")
    message = str(first.get("message") or "the server reported an error")
    where = f" ({field})" if field else ""
    error_type = ERRORS_BY_CODE.get(code, GraphQLSessionError)
    return error_type(
        f"{operation} failed with {code}{where}: {message}",
        code=code,
        operation=operation,
        field=field,
        retryable=code == "SERVICE_UNAVAILABLE",
    )


def from_failure(error: Exception, url: str, operation: str, attempts: int) -> GraphQLSessionError:
    """The exception to raise for what gql raised while executing ``operation``."""
    if isinstance(error, TransportQueryError):
        failure = from_graphql_errors(error.errors, operation)
    elif isinstance(error, TransportServerError) and error.code in _CODES_BY_HTTP_STATUS:
        code = _CODES_BY_HTTP_STATUS[error.code]
        failure = ERRORS_BY_CODE[code](
            f"{operation} failed with {code}: HTTP {error.code} from {url}", code=code, operation=operation
        )
    elif isinstance(error, TransportConnectionFailed) and isinstance(
        error.__cause__, (TypeError, ValueError)
    ):
        # gql wraps everything the HTTP client raises, including JSON encoding errors for values that
        # are not JSON (a set or a datetime in agent.state); no server saw this request.
        failure = SessionBadInputError(
            f"{operation} could not be sent: {error.__cause__}", code="BAD_USER_INPUT", operation=operation
        )
    else:
        failure = transport_error(error, url, operation, attempts)
    failure.__cause__ = error
    return failure


def closed_error(url: str, operation: str) -> SessionTransportError:
    return SessionTransportError(
        f"{operation} failed: the repository for {url} was closed",
        operation=operation,
        url=url,
        retryable=False,
    )


def transport_error(error: BaseException, url: str, operation: str, attempts: int) -> SessionTransportError:
    if isinstance(error, TransportClosed):
        return closed_error(url, operation)
    cause = error.__cause__ if isinstance(error, TransportConnectionFailed) and error.__cause__ else error
    detail = str(cause) or type(cause).__name__
    if isinstance(error, TransportServerError):
        detail = f"HTTP {error.code}: {detail}"
    tries = f" (after {attempts} attempts)" if attempts > 1 else ""
    retryable = isinstance(error, (TransportConnectionFailed, TimeoutError)) or (
        isinstance(error, TransportServerError) and error.code in RETRYABLE_HTTP_STATUSES
    )
    return SessionTransportError(
        f"{operation} failed: no GraphQL answer from {url}: {type(cause).__name__}: {detail}{tries}",
        operation=operation,
        url=url,
        retryable=retryable,
        never_sent=_connection_refused(error),
    )


def _connection_refused(error: BaseException) -> bool:
    """Whether the error chain holds a refused connection (both transports keep the OSError in it)."""
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in chain:  # chains can loop back on themselves
        chain.append(link)
        link = link.__cause__ or link.__context__
    return any(isinstance(link, ConnectionRefusedError) for link in chain)
