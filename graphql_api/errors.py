"""The error codes clients see in ``extensions.code``, and how every failure maps to one.

Documented set (stable; clients may switch on them):

- ``BAD_REQUEST``: the HTTP request is not a GraphQL request (bad JSON, no query, wrong method).
- ``BAD_USER_INPUT``: an argument is invalid; ``extensions.field`` names it when known.
- ``NOT_FOUND``: the thing, or the parent it must live under, does not exist.
- ``ALREADY_EXISTS``: a create named something that exists; nothing changed.
- ``CONFLICT``: the same message id is stored with different content; nothing was overwritten.
- ``UNAUTHENTICATED``: no valid credentials (HTTP 401).
- ``FORBIDDEN``: the credentials do not allow the operation; nothing changed.
- ``RATE_LIMITED``: too many requests for this caller (HTTP 429, ``extensions.retryAfter`` seconds).
- Request limits, each its own code: ``PAYLOAD_TOO_LARGE`` (HTTP 413), ``REQUEST_TIMEOUT`` (HTTP
  408, the body arrived too slowly), ``DOCUMENT_TOO_LARGE``, ``TOO_MANY_TOKENS``, ``QUERY_TOO_DEEP``,
  ``TOO_MANY_ALIASES``, ``QUERY_TOO_COSTLY``, ``RESPONSE_TOO_LARGE`` (the answer would be over its
  byte budget; nothing of it is sent), ``BATCH_TOO_LARGE``, ``MESSAGE_TOO_LARGE``,
  ``OBJECT_TOO_LARGE``, ``JSON_TOO_DEEP``, ``JSON_TOO_LARGE`` (too many values in a JSON input, or
  content blocks in a message), ``STATEMENT_TIMEOUT``. Page sizes past the maximum are
  ``BAD_USER_INPUT``.
- ``GRAPHQL_PARSE_FAILED`` / ``GRAPHQL_VALIDATION_FAILED``: the document is not valid for the schema.
- ``SERVICE_UNAVAILABLE``: the database cannot be reached, or aborted the work to break a
  deadlock (or a dashboard's read replica is away, with SESSION_GRAPHQL_READ_REPLICA_FALLBACK=none);
  safe to retry later.
- ``INTERNAL_SERVER_ERROR``: anything else; the details are logged on the server with the
  request id that ``extensions.requestId`` carries, never sent.
"""

import logging
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from sqlalchemy.exc import DBAPIError, StatementError
from strawberry.extensions import SchemaExtension

from db.availability import QUERY_CANCELED, is_unavailable, sqlstate_of
from db.errors import AlreadyExistsError, ConflictError, InvalidDataError, JsonTooDeepError, NotFoundError
from graphql_api import request_ids

logger = logging.getLogger("graphql_api.errors")


class ErrorCode(StrEnum):
    BAD_REQUEST = "BAD_REQUEST"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    CONFLICT = "CONFLICT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    RATE_LIMITED = "RATE_LIMITED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    DOCUMENT_TOO_LARGE = "DOCUMENT_TOO_LARGE"
    TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
    QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
    TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
    QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"
    RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    OBJECT_TOO_LARGE = "OBJECT_TOO_LARGE"
    JSON_TOO_DEEP = "JSON_TOO_DEEP"
    JSON_TOO_LARGE = "JSON_TOO_LARGE"
    STATEMENT_TIMEOUT = "STATEMENT_TIMEOUT"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
    SUBSCRIBER_TOO_SLOW = "SUBSCRIBER_TOO_SLOW"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class InputError(ValueError):
    """An argument failed validation; ``field`` is its path in the request (``agent.agentId``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class LimitError(Exception):
    """A request went past one of the server's limits; ``code`` says which, ``extensions`` say more
    (``retryAfter``)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        field: str | None = None,
        *,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.extensions = extensions or {}


class ForbiddenError(Exception):
    """The caller's role or tenant does not allow the operation."""


class Refusal(Exception):
    """A request refused before GraphQL runs: an HTTP status with a GraphQL error body."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extensions = extensions or {}

    def body(self) -> dict[str, Any]:
        extensions = {"code": self.code.value, **self.extensions}
        request_id = request_ids.current.get()
        if request_id is not None:
            extensions["requestId"] = request_id
        return {"errors": [{"message": self.message, "extensions": extensions}]}


_STORE_CODES: dict[type[Exception], ErrorCode] = {
    NotFoundError: ErrorCode.NOT_FOUND,
    AlreadyExistsError: ErrorCode.ALREADY_EXISTS,
    ConflictError: ErrorCode.CONFLICT,
    JsonTooDeepError: ErrorCode.JSON_TOO_DEEP,  # before InvalidDataError, which it is
    InvalidDataError: ErrorCode.BAD_USER_INPUT,
    InputError: ErrorCode.BAD_USER_INPUT,
    ForbiddenError: ErrorCode.FORBIDDEN,
}

# strawberry's limiters report plain validation errors; their wording is the only mark they carry
# (tests/test_limits.py pins each one, so a changed wording fails there, not silently here).
_VALIDATION_CODES = (
    ("exceeds maximum operation depth", ErrorCode.QUERY_TOO_DEEP),
    ("aliases found. Allowed:", ErrorCode.TOO_MANY_ALIASES),
)
_TOO_MANY_TOKENS_MARK = "tokens. Parsing aborted."

INTERNAL_MESSAGE = "Internal server error."
UNAVAILABLE_MESSAGE = "The database could not serve this request now; try again."
DATABASE_REFUSED_MESSAGE = "The database cannot store or compare a value of this request."
STATEMENT_TIMEOUT_MESSAGE = "The database took longer than the server allows for this request."


def validation_code(error: GraphQLError) -> ErrorCode:
    """The code of an error that validating the document reported."""
    for mark, code in _VALIDATION_CODES:
        if mark in error.message:
            return code
    return ErrorCode.GRAPHQL_VALIDATION_FAILED


def classify(error: GraphQLError) -> ErrorCode:
    """The code for one error of a response."""
    original = error.original_error
    if isinstance(error, GraphQLSyntaxError):
        if _TOO_MANY_TOKENS_MARK in error.message:
            return ErrorCode.TOO_MANY_TOKENS
        return ErrorCode.GRAPHQL_PARSE_FAILED
    given = (error.extensions or {}).get("code")
    if isinstance(given, str) and given in ErrorCode.__members__:
        return ErrorCode(given)  # tagged by ValidationErrorCodes or the document cache
    if original is None:
        # Past validation, graphql-core reports without a cause only the coercion of variable
        # values (no path: the document is fine, the values sent with it are not).
        return ErrorCode.BAD_USER_INPUT if error.path is None else ErrorCode.INTERNAL_SERVER_ERROR
    if isinstance(original, LimitError):
        return original.code
    for error_type, code in _STORE_CODES.items():
        if isinstance(original, error_type):
            return code
    if isinstance(original, RecursionError):
        return ErrorCode.JSON_TOO_DEEP
    state = sqlstate_of(original)
    if state == QUERY_CANCELED:
        return ErrorCode.STATEMENT_TIMEOUT
    if is_unavailable(original) or (state is not None and state.startswith("40")):
        # Class 40 is a deadlock or serialization failure: the same request can succeed again.
        return ErrorCode.SERVICE_UNAVAILABLE
    if state is not None and state.startswith("22"):
        # A data exception (a value PostgreSQL cannot take) is the input's fault wherever it happens.
        return ErrorCode.BAD_USER_INPUT
    if isinstance(original, GraphQLError):
        return classify(original)
    return ErrorCode.INTERNAL_SERVER_ERROR


def log_unexpected(errors: list[GraphQLError]) -> None:
    """Logs what no client caused, in full, with the request id the client was given.

    SERVICE_UNAVAILABLE is left to ``db.availability.OutageLog``, which says it once per outage.
    """
    for error in errors:
        if classify(error) is not ErrorCode.INTERNAL_SERVER_ERROR:
            continue
        original = error.original_error
        logger.error(
            "unexpected error in request %s at %s: %r",
            request_ids.described(),
            ".".join(str(p) for p in error.path or []) or "(operation)",
            original,
            exc_info=(type(original), original, original.__traceback__) if original else None,
        )


def with_code(error: GraphQLError) -> GraphQLError:
    """The error as the client should see it: a code always, internals never."""
    code = classify(error)
    extensions = dict(error.extensions or {})
    extensions["code"] = code.value
    message = error.message
    original = error.original_error
    if code is ErrorCode.INTERNAL_SERVER_ERROR:
        message = INTERNAL_MESSAGE
    elif code is ErrorCode.SERVICE_UNAVAILABLE:
        message = UNAVAILABLE_MESSAGE
    elif code is ErrorCode.STATEMENT_TIMEOUT:
        message = STATEMENT_TIMEOUT_MESSAGE
    elif code is ErrorCode.JSON_TOO_DEEP and isinstance(original, RecursionError):
        message = "The request nests values too deeply for the server to read."
    elif isinstance(original, (DBAPIError, StatementError)):
        # The driver's text quotes the statement and its parameters.
        message = DATABASE_REFUSED_MESSAGE
    elif isinstance(original, (InputError, LimitError)) and original.field is not None:
        extensions["field"] = original.field
    if isinstance(original, LimitError):
        extensions.update(original.extensions)
    request_id = request_ids.current.get()
    if request_id is not None:
        extensions["requestId"] = request_id
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


class ValidationErrorCodes(SchemaExtension):
    """Tags what validation reported with its code, while it is still known to come from there.

    Every other error gets its code from ``with_code`` as the response is written, whichever
    step raised it.
    """

    def on_validate(self) -> Iterator[None]:
        yield
        # In place: strawberry has already taken the list to answer with. Cached validation results
        # are shared by requests, which is harmless as a document's code never changes.
        for error in self.execution_context.pre_execution_errors or []:
            if not (error.extensions or {}).get("code"):
                error.extensions = {**(error.extensions or {}), "code": validation_code(error).value}
