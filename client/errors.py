"""The exceptions the client raises, and how gql's failures become them.

Every failure is a ``strands.types.exceptions.SessionException``, so code written for Strands' own
stores keeps working; the subclass and ``code`` say what went wrong.
"""

import math
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

INVALID_RESPONSE = "INVALID_RESPONSE"
"""The ``code`` of an answer the client could not turn into Strands objects (``SessionDataError``)."""

TOKEN_PROVIDER_FAILED = "TOKEN_PROVIDER_FAILED"
"""The ``code`` of a token provider that raised or returned no usable token."""

RATE_LIMITED = "RATE_LIMITED"

LIMIT_CODES = frozenset(
    {
        "PAYLOAD_TOO_LARGE",
        "DOCUMENT_TOO_LARGE",
        "TOO_MANY_TOKENS",
        "QUERY_TOO_DEEP",
        "TOO_MANY_ALIASES",
        "QUERY_TOO_COSTLY",
        "BATCH_TOO_LARGE",
        "MESSAGE_TOO_LARGE",
        "JSON_TOO_DEEP",
    }
)
"""Codes of a request the server refused for its size or shape: the same request fails the same way."""

TIMEOUT_CODES = frozenset({"REQUEST_TIMEOUT", "STATEMENT_TIMEOUT"})

RETRYABLE_CODES = frozenset({"SERVICE_UNAVAILABLE", RATE_LIMITED, *TIMEOUT_CODES})

# The server refuses these before executing anything, so resending cannot repeat a write.
NOT_EXECUTED_CODES = frozenset({"UNAUTHENTICATED", RATE_LIMITED})

# Statuses a proxy or load balancer in front of the server answers with when trying again may help.
RETRYABLE_HTTP_STATUSES = frozenset({502, 503, 504})

# What a refusal in plain text (a proxy's, not the server's JSON) means.
_CODES_BY_HTTP_STATUS = {
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    429: RATE_LIMITED,
}


class GraphQLSessionError(SessionException):
    """A call to the session store failed.

    ``code`` is the server's ``extensions.code`` (``NOT_FOUND``, ``BAD_USER_INPUT``, ...) or one of
    the client's own (``TRANSPORT_FAILED``, ``INVALID_RESPONSE``, ``TOKEN_PROVIDER_FAILED``);
    ``operation`` names the GraphQL operation; ``field`` names the invalid argument of a
    ``BAD_USER_INPUT`` when the server said which. ``request_id`` is the id the server logged the
    failure under (quote it to its operators; it is in the message too). ``retryable`` is true when
    sending the same request again may succeed; the repositories do so only for calls that are safe
    to repeat, or when ``never_executed`` says the server did nothing with it.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        operation: str,
        field: str | None = None,
        retryable: bool = False,
        never_executed: bool = False,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.operation = operation
        self.field = field
        self.retryable = retryable
        self.never_executed = never_executed
        self.request_id = request_id


class SessionNotFoundError(GraphQLSessionError):
    """NOT_FOUND: the thing, or the session or agent it belongs to, does not exist."""


class SessionAlreadyExistsError(GraphQLSessionError):
    """ALREADY_EXISTS: a create named something that exists; nothing changed."""


class SessionConflictError(GraphQLSessionError):
    """CONFLICT: the message id is stored with different content; nothing was overwritten."""


class SessionBadInputError(GraphQLSessionError):
    """BAD_USER_INPUT: the server refused an argument; ``field`` names it when known."""


class SessionUnauthenticatedError(GraphQLSessionError):
    """UNAUTHENTICATED: the request carried no valid credentials (see the repositories' ``token``).

    The server did nothing with the request.
    """


class SessionTokenProviderError(SessionUnauthenticatedError):
    """TOKEN_PROVIDER_FAILED: the ``token`` provider raised or returned no usable token; nothing was sent.

    ``__cause__`` is what the provider raised.
    """


class SessionForbiddenError(GraphQLSessionError):
    """FORBIDDEN: the credentials do not allow this operation; nothing changed."""


class SessionRateLimitedError(GraphQLSessionError):
    """RATE_LIMITED: the caller sent too many requests; the server did nothing with this one.

    ``retry_after`` is how many seconds the server asked the client to wait (None when it did not
    say). The repositories wait and resend, within their ``retries``; this is raised when those are
    used up or the server asks for a longer wait than the repository's ``timeout``.
    """

    def __init__(self, message: str, *, operation: str, retry_after: float | None, **details: Any) -> None:
        super().__init__(
            message, code=RATE_LIMITED, operation=operation, retryable=True, never_executed=True, **details
        )
        self.retry_after = retry_after


class SessionLimitError(GraphQLSessionError):
    """The request is larger or more complex than the server accepts; ``code`` names the limit.

    ``PAYLOAD_TOO_LARGE`` (the HTTP body), ``DOCUMENT_TOO_LARGE``, ``TOO_MANY_TOKENS``,
    ``QUERY_TOO_DEEP``, ``TOO_MANY_ALIASES``, ``QUERY_TOO_COSTLY`` (the GraphQL document),
    ``BATCH_TOO_LARGE`` (too many messages in one ``append_messages``), ``MESSAGE_TOO_LARGE``,
    ``JSON_TOO_DEEP`` (a value nested too deeply). Sending the same request again fails the same way.
    """


class SessionTimeoutError(GraphQLSessionError):
    """REQUEST_TIMEOUT or STATEMENT_TIMEOUT: the server gave up on the request, or on one database
    statement of it, after its time limit; trying later may succeed."""


class SessionUnavailableError(GraphQLSessionError):
    """SERVICE_UNAVAILABLE: the server cannot reach its database; trying later may succeed."""


class SessionDataError(GraphQLSessionError):
    """INVALID_RESPONSE: the server answered, but the client could not turn the answer into Strands
    objects (for one, a stored value nested too deeply for Strands' decoder); ``__cause__`` says why."""


class SessionTransportError(GraphQLSessionError):
    """No GraphQL answer: the server could not be reached, timed out, or answered with something else.

    ``url`` is the server's address and ``__cause__`` the underlying error. ``never_sent`` is true
    when the connection was refused, so the server cannot have acted on the request.
    """

    def __init__(
        self, message: str, *, operation: str, url: str, retryable: bool, never_sent: bool = False
    ) -> None:
        super().__init__(
            message,
            code=TRANSPORT_FAILED,
            operation=operation,
            retryable=retryable,
            never_executed=never_sent,
        )
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
    **{code: SessionLimitError for code in LIMIT_CODES},
    **{code: SessionTimeoutError for code in TIMEOUT_CODES},
}


def error_for_code(
    code: str,
    message: str,
    *,
    operation: str,
    field: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> GraphQLSessionError:
    """The exception for a failure the server (or a proxy) reported with ``code``."""
    if code == RATE_LIMITED:
        return SessionRateLimitedError(
            message, operation=operation, retry_after=retry_after, field=field, request_id=request_id
        )
    return ERRORS_BY_CODE.get(code, GraphQLSessionError)(
        message,
        code=code,
        operation=operation,
        field=field,
        retryable=code in RETRYABLE_CODES,
        never_executed=code in NOT_EXECUTED_CODES,
        request_id=request_id,
    )


def from_graphql_errors(errors: list[Any] | None, operation: str, attempts: int = 1) -> GraphQLSessionError:
    """The exception for a response's ``errors``; the first error decides, as it caused the rest."""
    first = errors[0] if errors else {}
    if not isinstance(first, dict):
        first = {"message": str(first)}
    extensions = first.get("extensions")
    if not isinstance(extensions, dict):
        extensions = {}
    code = str(extensions.get("code") or "INTERNAL_SERVER_ERROR")
    field = extensions.get("field")
    request_id = extensions.get("requestId")
    request_id = str(request_id) if request_id else None
    retry_after = seconds(extensions.get("retryAfter"))
    message = str(first.get("message") or "the server reported an error")
    where = f" ({field})" if field else ""
    return error_for_code(
        code,
        f"{operation} failed with {code}{where}: {message}"
        + _notes(retry_after=retry_after, attempts=attempts, request_id=request_id),
        operation=operation,
        field=field,
        request_id=request_id,
        retry_after=retry_after,
    )


def from_failure(error: Exception, url: str, operation: str, attempts: int) -> GraphQLSessionError:
    """The exception to raise for what gql raised while executing ``operation``."""
    if isinstance(error, TransportQueryError):
        failure = from_graphql_errors(error.errors, operation, attempts)
    elif isinstance(error, TransportServerError) and error.code in _CODES_BY_HTTP_STATUS:
        failure = _from_refusal(error, url, operation, attempts)
    elif isinstance(error, TransportConnectionFailed) and isinstance(
        error.__cause__, (TypeError, ValueError, RecursionError)
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


def _from_refusal(
    error: TransportServerError, url: str, operation: str, attempts: int
) -> GraphQLSessionError:
    """A 4xx without a GraphQL body (a proxy's, or a gateway's in front of the server)."""
    assert error.code is not None
    code = _CODES_BY_HTTP_STATUS[error.code]
    retry_after = _retry_after_header(error) if code == RATE_LIMITED else None
    notes = _notes(retry_after=retry_after, attempts=attempts)
    return error_for_code(
        code,
        f"{operation} failed with {code}: HTTP {error.code} from {url}{notes}",
        operation=operation,
        retry_after=retry_after,
    )


def _retry_after_header(error: TransportServerError) -> float | None:
    """The Retry-After header of a plain-text 429.

    Each transport chains the error it raises to its HTTP client's, which holds this response's
    headers: safe to read even while other threads use the transport, whose own
    ``response_headers`` is shared by all requests.
    """
    cause = error.__cause__
    headers = getattr(cause, "headers", None)  # aiohttp's ClientResponseError
    if headers is None:
        headers = getattr(getattr(cause, "response", None), "headers", None)  # httpx's HTTPStatusError
    return seconds(headers.get("Retry-After")) if headers is not None else None


def seconds(value: object) -> float | None:
    """A wait the server asked for (``retryAfter``, ``Retry-After``), or None if it is not a number
    of seconds (an HTTP date, say)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _notes(*, retry_after: float | None = None, attempts: int = 1, request_id: str | None = None) -> str:
    notes = []
    if retry_after is not None:
        notes.append(f"retry after {retry_after:g} s")
    if attempts > 1:
        notes.append(f"after {attempts} attempts")
    if request_id:
        notes.append(f"request id {request_id}")
    return f" ({'; '.join(notes)})" if notes else ""


def unreadable_answer(operation: str, error: Exception) -> SessionDataError:
    """The exception for an answer ``Call.read`` failed on; notes on ``error`` say where."""
    detail = str(error) or "no detail"
    if isinstance(error, RecursionError):
        detail += " (a stored value is nested too deeply for Strands to decode)"
    where = "".join(f" ({note})" for note in getattr(error, "__notes__", ()))
    failure = SessionDataError(
        f"{operation} failed: the client could not read the server's answer{where}: "
        f"{type(error).__name__}: {detail}",
        code=INVALID_RESPONSE,
        operation=operation,
    )
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
