"""The exceptions the client raises; ``client.failures`` turns gql's failures into them.

Every failure is a ``strands.types.exceptions.SessionException``, so code written for Strands' own
stores keeps working; the subclass and ``code`` say what went wrong.
"""

from typing import Any

from strands.types.exceptions import SessionException

TRANSPORT_FAILED = "TRANSPORT_FAILED"
"""The ``code`` of a failure to exchange a request with the server at all (no GraphQL error came back)."""

INVALID_RESPONSE = "INVALID_RESPONSE"
"""The ``code`` of an answer the client could not turn into Strands objects (``SessionDataError``)."""

TOKEN_PROVIDER_FAILED = "TOKEN_PROVIDER_FAILED"
"""The ``code`` of a token provider that raised or returned no usable token."""

RATE_LIMITED = "RATE_LIMITED"
RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"

LIMIT_CODES = frozenset(
    {
        "PAYLOAD_TOO_LARGE",
        "DOCUMENT_TOO_LARGE",
        "TOO_MANY_TOKENS",
        "QUERY_TOO_DEEP",
        "TOO_MANY_ALIASES",
        "QUERY_TOO_COSTLY",
        RESPONSE_TOO_LARGE,
        "BATCH_TOO_LARGE",
        "MESSAGE_TOO_LARGE",
        "OBJECT_TOO_LARGE",
        "JSON_TOO_DEEP",
        "JSON_TOO_LARGE",
    }
)
"""Codes of a request the server refused for its size or shape: the same request fails the same way."""

TIMEOUT_CODES = frozenset({"REQUEST_TIMEOUT", "STATEMENT_TIMEOUT"})

RETRYABLE_CODES = frozenset({"SERVICE_UNAVAILABLE", RATE_LIMITED, *TIMEOUT_CODES})

# The server refuses these before executing anything, so resending cannot repeat a write.
NOT_EXECUTED_CODES = frozenset({"UNAUTHENTICATED", RATE_LIMITED})


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
