"""How gql's failures, and the server's error answers, become the exceptions of ``client.errors``."""

import math
from typing import Any

from gql.transport.exceptions import (
    TransportClosed,
    TransportConnectionFailed,
    TransportQueryError,
    TransportServerError,
)

from client.errors import (
    INVALID_RESPONSE,
    LIMIT_CODES,
    NOT_EXECUTED_CODES,
    RATE_LIMITED,
    RETRYABLE_CODES,
    TIMEOUT_CODES,
    GraphQLSessionError,
    SessionAlreadyExistsError,
    SessionBadInputError,
    SessionConflictError,
    SessionDataError,
    SessionForbiddenError,
    SessionLimitError,
    SessionNotFoundError,
    SessionRateLimitedError,
    SessionTimeoutError,
    SessionTransportError,
    SessionUnauthenticatedError,
    SessionUnavailableError,
)

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
